"""`talon hook install|uninstall|test`: the agent's hook entries written and removed, and a
dry run of one tool call.

The hook itself (`talon hook claude-code|codex`, once per agent tool call) is
`talon_tui.hooks.command`: `cli.main` hands it there before anything else is imported.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shlex
import sys
from pathlib import Path
from typing import Any

from talon_tui.client import AdminClient
from talon_tui.engine.core.paths import resolve_data_dir, write_private
from talon_tui.engine.errors import TalonError
from talon_tui.hooks import runner
from talon_tui.hooks.command import hook_options, run_hook_verb
from talon_tui.hooks.install import (
    InstallError,
    disabled_warnings,
    hook_command,
    install,
    settings_path,
    uninstall,
)
from talon_tui.hooks.mapping import BadToolInput, Protected, plan_call

from .common import fail

__all__ = ["cmd_hook_install", "cmd_hook_test", "cmd_hook_uninstall", "run_hook_verb"]


# --------------------------------------------------------------------------- install


def _project(args: argparse.Namespace) -> Path:
    return Path(args.project or os.getcwd()).absolute()


def _settings(args: argparse.Namespace) -> Path:
    return settings_path(args.agent, args.scope, Path.home(), _project(args))


def cmd_hook_install(args: argparse.Namespace) -> int:
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
    try:
        tool_input: Any = json.loads(args.input)
    except ValueError as exc:
        fail(f"--input is not JSON ({exc})")
    cwd = str(Path(args.cwd or os.getcwd()).absolute())
    opts = hook_options(args.agent, args)
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
