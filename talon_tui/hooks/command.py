"""The hook verb itself: `talon hook claude-code|codex [options]`, argv in, exit code out.

Both ways in land here: the `talon` script (`talon_tui.cli.main` sends the hook verb here before
anything else is imported) and `script.py`, the file the command that `talon hook install`
writes runs. It imports only the standard library and `talon_tui.hooks` (no pathlib, no
argparse but for `--help`, no `json`: see jsonio), checked with `python -X importtime` in
tests/cli/test_hook_script.py and tests/cli/test_hook_install.py.
"""

from __future__ import annotations

import os
import sys

from . import runner

TYPE_CHECKING = False  # typing and argparse load only off the hook path
if TYPE_CHECKING:
    import argparse
    from typing import Any

KEY_ENV = "TALON_AGENT_KEY"
AGENTS = runner.AGENTS

HOOK_OPTIONS = {
    "--key-file": "key_file",
    "--data-dir": "data_dir",
    "--wait": "wait",
    "--gateway-server": "gateway_server",
}


class HookArgs:
    """The hook's options as given on its command line."""

    __slots__ = ("data_dir", "gateway_server", "key_file", "wait")

    def __init__(self) -> None:
        self.key_file: str | None = None
        self.data_dir: str | None = None
        self.wait: float = runner.DEFAULT_WAIT_SECONDS
        self.gateway_server = "talon"


def hook_parser(agent: str) -> argparse.ArgumentParser:
    """The parser behind `--help` only (argparse costs the hook start-up)."""
    import argparse

    p = argparse.ArgumentParser(
        prog=f"talon hook {agent}",
        description=f"Answer one {agent} hook event (JSON on stdin) with Talon's decision.",
    )
    p.add_argument("--key-file", help=f"file holding the agent key (default ${KEY_ENV})")
    p.add_argument(
        "--data-dir", help="data directory (default: $TALON_DATA_DIR or the user data dir)"
    )
    p.add_argument(
        "--wait",
        type=float,
        default=runner.DEFAULT_WAIT_SECONDS,
        help="seconds a decision may wait for an approval (below the agent's hook timeout)",
    )
    p.add_argument(
        "--gateway-server",
        default="talon",
        help="MCP server name of Talon's own gateway (its tools are not judged twice)",
    )
    return p


def parse_hook_args(argv: list[str]) -> HookArgs:
    """The hook's few options, parsed without argparse; raises ValueError naming a bad one."""
    ns = HookArgs()
    it = iter(argv)
    for arg in it:
        name, eq, value = arg.partition("=")
        if name not in HOOK_OPTIONS:
            raise ValueError(f"unknown option {arg!r} (see `talon hook claude-code --help`)")
        if not eq:
            value = next(it, "")
        if not value:
            raise ValueError(f"{name} needs a value")
        if name == "--wait":
            ns.wait = float(value)
        else:
            setattr(ns, HOOK_OPTIONS[name], value)
    if not 1 <= ns.wait <= 3600:
        raise ValueError("--wait must be between 1 and 3600 seconds")
    return ns


def _absolute(path: str) -> str:
    """`~` expanded and made absolute, `..` kept (the kernel resolves it after symlinks)."""
    path = os.path.expanduser(path)
    return path if os.path.isabs(path) else os.path.join(os.getcwd(), path)


def hook_options(agent: str, args: Any) -> runner.HookOptions:
    """The runner's options from parsed ones (`HookArgs` or `talon hook test`'s namespace);
    raises HookError when the key file cannot be read."""
    key = None
    if args.key_file:
        try:
            with open(args.key_file, "rb") as fh:
                key = fh.read(65536).decode("ascii").strip()
        except (OSError, UnicodeDecodeError) as exc:
            raise runner.HookError(
                f"cannot read the agent key file {args.key_file} ({exc})"
            ) from None
    else:
        key = os.environ.get(KEY_ENV, "").strip() or None
    if args.data_dir:  # as `talon hook install` writes it: the socket is <data>/run/agent.sock
        data = _absolute(args.data_dir)
        sock = os.path.join(data, "run", "agent.sock")
    else:
        from ..engine.core.paths import DataDir, resolve_data_dir

        root = resolve_data_dir(None)
        data = str(root)
        sock = os.environ.get("TALON_SOCKET") or str(DataDir(root).socket_path)
    return runner.HookOptions(
        agent=agent,
        agent_key=key,
        data_dir=data,
        socket_path=sock,
        wait_seconds=float(args.wait),
        key_file=_absolute(args.key_file) if args.key_file else None,
        gateway_server=args.gateway_server,
    )


def run_hook_verb(agent: str, argv: list[str]) -> int:
    """`talon hook claude-code|codex [options]`: read stdin, answer, exit 0 or 2 (never 1)."""
    if "-h" in argv or "--help" in argv:
        hook_parser(agent).print_help()
        return 0
    raw = b""
    try:
        raw = sys.stdin.buffer.read(runner.MAX_STDIN_BYTES + 1)
        opts = hook_options(agent, parse_hook_args(argv))
    except (runner.HookError, OSError, ValueError) as exc:
        return runner.emit(runner.run_failed(agent, raw, str(exc)))
    return runner.emit(runner.run(opts, raw))
