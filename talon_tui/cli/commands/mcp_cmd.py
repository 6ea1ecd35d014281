"""`talon mcp`: the stdio MCP server (no action), `install` and `uninstall` of an MCP client's
config entry.

This module owns the `mcp` verb's argparse tree below the `mcp` parser itself (`add_parsers`:
`cli.main` makes that parser and fills it through here only when `mcp` runs or prints help, so
other verbs never import this module). The third-party server verbs
(`add`, `list`, `remove`, `approve`) live in the sibling module `mcp_servers_cmd`: when it
exists, its `register(actions, common)` adds them to the same tree (actions: the `mcp`
subparsers; common: a function adding `--data-dir` and `--engine-user` to a parser).
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import sys
from collections.abc import Callable

from talon_tui.mcp import clients

from .common import fail, line

#: the sibling module with the upstream-server verbs (add, list, remove, approve)
SERVERS_MODULE = "talon_tui.cli.commands.mcp_servers_cmd"


def add_parsers(
    p: argparse.ArgumentParser,
    common: Callable[[argparse.ArgumentParser, str], None],
    parser_class: type,
) -> None:
    """Fill the `talon mcp` parser `p`: its flags and its actions."""
    p.set_defaults(_handler=("mcp_cmd", "cmd_mcp_serve"))
    common(p, "mcp")
    p.add_argument("--key-file", help="file holding the agent key (else $TALON_AGENT_KEY)")
    actions = p.add_subparsers(dest="action", metavar="ACTION", parser_class=parser_class)

    names = ", ".join(clients.CLIENTS)
    i = actions.add_parser(
        "install",
        help=f"write an MCP client's config entry for talon mcp ({names})",
        description="Write the client's config entry (backup first) with a fresh agent key.",
    )
    i.set_defaults(_handler=("mcp_cmd", "cmd_mcp_install"))
    common(i, "mcp")
    i.add_argument("client", choices=list(clients.CLIENTS))
    i.add_argument("--session", required=True, help="session id (sess_…) the client acts in")
    i.add_argument("--name", default="talon", help="the entry's name (default talon)")
    i.add_argument("--config", help="config file to edit (default: the client's own)")
    i.add_argument(
        "--project",
        help="claude-code: write <dir>/.mcp.json (project scope) instead of ~/.claude.json",
    )

    u = actions.add_parser(
        "uninstall",
        help="remove talon mcp's entry from an MCP client's config (restores the file)",
    )
    u.set_defaults(_handler=("mcp_cmd", "cmd_mcp_uninstall"))
    common(u, "mcp")
    u.add_argument("client", choices=list(clients.CLIENTS))
    u.add_argument("--name", default="talon")
    u.add_argument("--config", help="config file to edit (default: the client's own)")
    u.add_argument("--project", help="claude-code: the project directory used at install")

    try:
        servers = importlib.import_module(SERVERS_MODULE)
    except ModuleNotFoundError as exc:
        if exc.name != SERVERS_MODULE:
            raise
        return
    servers.register(actions, common)


def cmd_mcp_serve(args: argparse.Namespace) -> int:
    from talon_tui.mcp import gateway

    try:
        key = gateway.read_key(args.key_file)
    except (ValueError, OSError) as exc:
        fail(str(exc))
    return gateway.main(key, args.data_dir)


def _target(args: argparse.Namespace) -> clients.Target:
    try:
        return clients.target(args.client, config=args.config, project=args.project)
    except clients.ConfigError as exc:
        fail(str(exc))


def cmd_mcp_install(args: argparse.Namespace) -> int:
    from talon_tui.client import AdminClient
    from talon_tui.engine.errors import TalonError

    target = _target(args)

    async def issue() -> str:
        async with await AdminClient.connect(args.data_dir) as admin:
            return await admin.issue_agent_key(args.session)

    try:
        key = asyncio.run(issue())
    except TalonError as exc:
        fail(f"{exc.code}: {exc.message}" if exc.code else exc.message)
    entry = clients.server_entry(command=sys.executable, data_dir=args.data_dir, agent_key=key)
    try:
        change = clients.install(target, args.name, entry)
    except clients.ConfigError as exc:
        fail(str(exc))
    _report(change)
    return 0


def cmd_mcp_uninstall(args: argparse.Namespace) -> int:
    target = _target(args)
    try:
        change = clients.uninstall(target, args.name)
    except clients.ConfigError as exc:
        fail(str(exc))
    _report(change)
    return 0


def _report(change: clients.Change) -> None:
    print(line(change.summary))
    for diff_line in change.diff:
        print(line(diff_line))
