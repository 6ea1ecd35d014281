"""Hook benchmark (issue 11): wall time of one `talon hook claude-code` process per allowed Read,
against a real `talon serve`, beside `python -c pass` measured in the same run.

The hook is one process per agent tool call, so its start-up is what the agent waits for. The
command timed is exactly what `talon hook install` writes into the agent's settings
(`<python> -m talon_tui.cli hook claude-code --key-file K --data-dir D`). Interleaved runs,
so that machine load hits both the same way. Target: p50 <= 50 ms per allowed Read.

The package's bytecode is compiled first (`compileall`, as `pip install` does): with
PYTHONDONTWRITEBYTECODE set and no `__pycache__`, every hook run would recompile its modules.

    .venv/bin/python bench/hook_bench.py [--n 40]
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import REPO, make_session, start_serve, stop_serve


def timed(argv: list[str], stdin: bytes) -> tuple[float, bytes]:
    started = time.perf_counter()
    done = subprocess.run(argv, input=stdin, capture_output=True, cwd=REPO, check=False)
    return (time.perf_counter() - started) * 1000, done.stdout


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=40, help="runs of each command")
    args = parser.parse_args()
    import compileall

    compileall.compile_dir(str(REPO / "talon_tui"), quiet=1)
    with tempfile.TemporaryDirectory(prefix="talon-hook-bench-") as tmp:
        root = Path(tmp)
        ws = root / "ws"
        (ws / "work").mkdir(parents=True)
        (ws / "work" / "a.txt").write_text("hello\n")
        data = root / "data"
        serve = start_serve(data, lift_rate_limit=False)
        try:
            key_file = root / "agent.key"
            key_file.write_text(make_session(data, ws, "hook-bench"))
            from talon_tui.hooks.install import hook_command

            hook = shlex.split(hook_command("claude-code", key_file, data, 150))
            payload = json.dumps(
                {
                    "session_id": "bench",
                    "transcript_path": "/dev/null",
                    "cwd": str(ws),
                    "permission_mode": "default",
                    "hook_event_name": "PreToolUse",
                    "tool_name": "Read",
                    "tool_input": {"file_path": str(ws / "work" / "a.txt")},
                    "tool_use_id": "toolu_bench",
                }
            ).encode()
            baseline = [sys.executable, "-c", "pass"]
            for _ in range(3):  # warm the page cache and the engine
                timed(hook, payload)
                timed(baseline, b"")
            hook_ms: list[float] = []
            base_ms: list[float] = []
            for _ in range(args.n):
                ms, out = timed(hook, payload)
                if b'"allow"' not in out:
                    raise SystemExit(f"the hook did not allow the Read: {out!r}")
                hook_ms.append(ms)
                base_ms.append(timed(baseline, b"")[0])
        finally:
            stop_serve(serve)
    figures = {
        "command": shlex.join(hook[:4]) + " …",
        "n": args.n,
        "cpus": os.cpu_count(),
        "loadavg_1m": round(os.getloadavg()[0], 2),
        "hook_allowed_read_ms": {
            "p50": round(statistics.median(hook_ms), 1),
            "p90": round(pct(hook_ms, 90), 1),
            "min": round(min(hook_ms), 1),
        },
        "python_c_pass_ms": {
            "p50": round(statistics.median(base_ms), 1),
            "p90": round(pct(base_ms, 90), 1),
            "min": round(min(base_ms), 1),
        },
    }
    figures["hook_minus_python_p50_ms"] = round(
        figures["hook_allowed_read_ms"]["p50"] - figures["python_c_pass_ms"]["p50"], 1
    )
    print(json.dumps(figures, indent=2))
    print("target: hook p50 <= 50 ms per allowed Read")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
