"""Talon: govern what local AI agents may do."""

import sys

# httpx's package imports its optional command line (`httpx._main`: click, rich and pygments)
# whenever click is installed, and the mcp SDK installs click (through uvicorn). Talon never
# runs httpx's command line, so it stays out: httpx then defines its fallback `main` (which
# only says the CLI is not installed), and every `talon` process that reaches httpx (`talon
# serve`, the admin verbs, `talon mcp`) skips about 0.1 s of imports (bench/startup_bench.py).
sys.modules.setdefault("httpx._main", None)  # type: ignore[arg-type]  # None: "not importable"

__version__ = "0.1.0"
