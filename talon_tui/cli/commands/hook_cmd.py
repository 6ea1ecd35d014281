"""`talon hook …`: the agent hook itself (fast path), its install/uninstall, and a dry test.

`talon hook claude-code|codex` runs once per tool call of the agent, so `cli.main` hands it
straight to `run_hook_verb` before building the full parser; this module imports only the
standard library and `talon_tui.hooks` at module level (checked with `python -X importtime`
in tests/cli/test_hook_imports.py).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from types import SimpleNamespace

from talon_tui.hooks import runner

TYPE_CHECKING = False  # typing, argparse and the data dir module load only off the hook path
if TYPE_CHECKING:
    import argparse
    from typing import Any

KEY_ENV = "TALON_AGENT_KEY"


HOOK_OPTIONS = {
    "--key-file": "key_file",
    "--data-dir": "data_dir",
    "--wait": "wait",
    "--gateway-server": "gateway_server",
}


def _hook_parser(agent: str) -> argparse.ArgumentParser:
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


def parse_hook_args(argv: list[str]) -> SimpleNamespace:
    """The hook's few options, parsed without argparse (its import costs the hook start-up);
    raises ValueError naming a bad one."""
    ns = SimpleNamespace(
        key_file=None, data_dir=None, wait=runner.DEFAULT_WAIT_SECONDS, gateway_server="talon"
    )
    it = iter(argv)
    for arg in it:
        name, eq, value = arg.partition("=")
        if name not in HOOK_OPTIONS:
            raise ValueError(f"unknown option {arg!r} (see `talon hook claude-code --help`)")
        if not eq:
            value = next(it, "")
        if not value:
            raise ValueError(f"{name} needs a value")
        setattr(ns, HOOK_OPTIONS[name], value)
    ns.wait = float(ns.wait)
    if not 1 <= ns.wait <= 3600:
        raise ValueError("--wait must be between 1 and 3600 seconds")
    return ns


def _options(agent: str, args: Any) -> runner.HookOptions:
    key = None
    if args.key_file:
        try:
            key = Path(args.key_file).read_text(encoding="ascii").strip()
        except (OSError, UnicodeDecodeError) as exc:
            raise runner.HookError(
                f"cannot read the agent key file {args.key_file} ({exc})"
            ) from None
    else:
        key = os.environ.get(KEY_ENV, "").strip() or None
    if args.data_dir:  # as `talon hook install` writes it: the socket is <data>/run/agent.sock
        data = Path(args.data_dir).expanduser().absolute()
        sock = str(data / "run" / "agent.sock")
    else:
        from talon_tui.engine.core.paths import DataDir, resolve_data_dir

        data = resolve_data_dir(None)
        sock = os.environ.get("TALON_SOCKET") or str(DataDir(data).socket_path)
    return runner.HookOptions(
        agent=agent,
        agent_key=key,
        data_dir=str(data),
        socket_path=sock,
        wait_seconds=args.wait,
        key_file=str(Path(args.key_file).absolute()) if args.key_file else None,
        gateway_server=args.gateway_server,
    )


def run_hook_verb(agent: str, argv: list[str]) -> int:
    """`talon hook claude-code|codex [options]`: read stdin, answer, exit 0 or 2 (never 1)."""
    if "-h" in argv or "--help" in argv:
        _hook_parser(agent).print_help()
        return 0
    raw = b""
    try:
        raw = sys.stdin.buffer.read(runner.MAX_STDIN_BYTES + 1)
        opts = _options(agent, parse_hook_args(argv))
    except (runner.HookError, OSError, ValueError) as exc:
        return runner.emit(runner.run_failed(agent, raw, str(exc)))
    return runner.emit(runner.run(opts, raw))


# --------------------------------------------------------------------------- install


def _project(args: argparse.Namespace) -> Path:
    return Path(args.project or os.getcwd()).absolute()


def _settings(args: argparse.Namespace) -> Path:
    from talon_tui.hooks.install import settings_path

    return settings_path(args.agent, args.scope, Path.home(), _project(args))


def cmd_hook_install(args: argparse.Namespace) -> int:
    import asyncio

    from talon_tui.client import AdminClient
    from talon_tui.engine.core.paths import resolve_data_dir, write_private
    from talon_tui.engine.errors import TalonError
    from talon_tui.hooks.install import InstallError, disabled_warnings, hook_command, install

    from .common import fail

    data = resolve_data_dir(args.data_dir)

    async def issue() -> str:
        client = await AdminClient.connect(str(data))
        try:
            return await client.issue_agent_key(args.session)
        finally:
            await client.close()

    try:
        key = asyncio.run(issue())
    except TalonError as exc:
        fail(f"{exc.code}: {exc.message}" if exc.code else exc.message)
    key_dir = data / "hooks"
    key_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(key_dir, 0o700)
    key_file = key_dir / f"{args.agent}-{args.session}.key"
    write_private(key_file, key.encode("ascii"))
    wait = int(args.wait)
    command = hook_command(args.agent, key_file, data, wait)
    try:
        lines = install(_settings(args), args.agent, command, wait + 30)
    except (InstallError, OSError) as exc:
        fail(str(exc))
    print(f"agent key for session {args.session} written to {key_file} (0600)")
    for line in lines:
        print(line)
    for line in disabled_warnings(args.agent, _settings(args), Path.home()):
        print(line, file=sys.stderr)
    return 0


def cmd_hook_uninstall(args: argparse.Namespace) -> int:
    import shlex

    from talon_tui.hooks.install import InstallError, uninstall

    from .common import fail

    path = _settings(args)
    key_files: list[str] = []
    try:
        doc = json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}
        for entries in (doc.get("hooks") or {}).values():
            for entry in entries if isinstance(entries, list) else []:
                for h in entry.get("hooks", []) if isinstance(entry, dict) else []:
                    words = shlex.split(str(h.get("command", ""))) if isinstance(h, dict) else []
                    if "hook" in words and "--key-file" in words:
                        key_files.append(words[words.index("--key-file") + 1])
        lines = uninstall(path)
    except (InstallError, OSError, ValueError, IndexError, AttributeError) as exc:
        fail(f"{path}: {exc}")
    for line in lines:
        print(line)
    for kf in dict.fromkeys(key_files):
        if Path(kf).name.endswith(".key") and Path(kf).parent.name == "hooks":
            Path(kf).unlink(missing_ok=True)
            print(f"removed the agent key file {kf}")
    return 0


def cmd_hook_test(args: argparse.Namespace) -> int:
    """What Talon would answer the agent for one tool call (`--dry`: the mapping only)."""
    from talon_tui.hooks.mapping import BadToolInput, Protected, plan_call

    from .common import fail

    try:
        tool_input: Any = json.loads(args.input)
    except ValueError as exc:
        fail(f"--input is not JSON ({exc})")
    cwd = str(Path(args.cwd or os.getcwd()).absolute())
    opts = _options(args.agent, args)
    try:
        plan = plan_call(
            args.tool,
            tool_input,
            cwd,
            Protected(opts.data_dir, [opts.key_file] if opts.key_file else []),
            gateway_server=args.gateway_server,
        )
    except BadToolInput as exc:
        fail(f"malformed {args.tool} input: {exc}")
    print(f"{args.agent} {args.tool} in {cwd}")
    if plan.unparseable:
        print(f"  not judged command by command: {plan.unparseable}")
    if plan.deny:
        print(f"  refused before the policy: {plan.deny}")
    if plan.passthrough:
        print("  Talon's own MCP gateway decides this call")
    for intent in plan.intents:
        print(f"  -> {intent.tool} {json.dumps(intent.params, ensure_ascii=False)[:300]}")
    if args.dry:
        return 0
    payload = {
        "hook_event_name": "PreToolUse",
        "session_id": "talon-hook-test",
        "cwd": cwd,
        "tool_name": args.tool,
        "tool_input": tool_input,
        "tool_use_id": "talon-hook-test",
    }
    answer = runner.run(opts, json.dumps(payload).encode())
    print(f"answer (exit {answer.exit_code}): {answer.stdout or '(nothing: allowed)'}")
    denied = '"deny"' in answer.stdout or answer.exit_code == 2
    return 1 if denied else 0
