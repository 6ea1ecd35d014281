"""The file the hook command runs: `<python> -I -S <this file> hook claude-code|codex [options]`.

`talon hook install` writes that command into the agent's settings; the agent starts it once
per tool call, so Python's own start-up is most of the hook's cost. `-I` (isolated: no
`PYTHON*` variables, no user site-packages, neither the current nor this file's directory on
`sys.path`) and `-S` (no `site`: no `.pth` files, among them an editable install's import
finder) take about two thirds of that start-up away. This file then puts the directory that
holds `talon_tui` on `sys.path`, after the standard library, and after it each `--path DIR`
that `talon hook install` wrote: the environment's site-packages, where `site` would have
found Talon's dependencies (a PostToolUse report hashes with `engine.core.canon`, which
imports orjson). Then it runs the hook verb.

Fails closed: anything that goes wrong before the hook runs exits 2 with the reason on stderr,
which blocks the call in Claude Code and Codex (any other non-zero exit lets it through). A
missing file exits 2 too: Python's own "can't open file".
"""

import os
import sys

AGENTS = ("claude-code", "codex")


def _refuse(reason: str) -> int:
    try:
        sys.stderr.write(f"Talon: {reason}; the call is denied\n")
    except OSError:
        pass  # no stderr: exit 2 still blocks the call
    return 2


def main(argv: list[str]) -> int:
    extra: list[str] = []
    while argv[:1] == ["--path"] and len(argv) > 1:  # where the environment's packages live
        extra.append(argv[1])
        argv = argv[2:]
    if argv[:1] != ["hook"] or argv[1:2] == [] or argv[1] not in AGENTS:
        return _refuse(
            f"usage: {os.path.basename(__file__)} [--path DIR]… hook claude-code|codex [options]"
        )
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    for path in (root, *extra):
        if path not in sys.path:
            sys.path.append(path)
    try:
        from talon_tui.hooks.command import run_hook_verb

        return run_hook_verb(argv[1], argv[2:])
    except BaseException as exc:  # noqa: BLE001 - whatever it is, the call is denied
        return _refuse(f"talon hook could not run ({type(exc).__name__}: {exc})")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
