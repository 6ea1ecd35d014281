"""The `talon` command line: one parser for every verb, each verb's handler in `commands/`.

`main` sends `talon hook claude-code|codex` (one process per agent tool call) straight to its
handler before anything else is imported: not even argparse, so the hook starts fast.
"""

from __future__ import annotations

import sys

TYPE_CHECKING = False  # typing is not imported at run time (the hook path starts fast)
if TYPE_CHECKING:
    from collections.abc import Sequence
    from typing import Any

HOOK_AGENTS = ("claude-code", "codex")


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["hook"] and args[1:2] and args[1] in HOOK_AGENTS:
        from talon_tui.hooks.command import run_hook_verb

        return run_hook_verb(args[1], args[2:])
    from .main import main as full_main

    return full_main(args)


def __getattr__(name: str) -> Any:
    if name == "VERBS":
        from .main import VERBS

        return VERBS
    raise AttributeError(name)


__all__ = ["VERBS", "main"]
