"""`talon mcp add|list|remove|approve`: third-party MCP servers the engine's broker runs.

Each verb connects to the running engine as an admin client (ops `mcp.server.add`,
`mcp.server.list`, `mcp.server.remove`, `mcp.tool.approve`). `add_arguments(action, parser)`
declares each verb's arguments, for whichever module owns the `mcp` argparse tree.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from .common import fail, line, print_rows

if TYPE_CHECKING:
    from talon_tui.client import AdminClient
    from talon_tui.engine.api import McpServerInfo


def run_admin(args: argparse.Namespace, body: Callable[[AdminClient], Awaitable[int]]) -> int:
    from .admin_cmd import run_admin as run

    return run(args, body)


#: action -> (function, one-line help)
ACTIONS: dict[str, tuple[str, str]] = {
    "add": ("cmd_mcp_add", "register a stdio MCP server the broker runs: add NAME -- CMD ARGS…"),
    "list": ("cmd_mcp_list", "list registered MCP servers, their status and their tools' pins"),
    "remove": ("cmd_mcp_remove", "stop and forget a registered MCP server"),
    "approve": ("cmd_mcp_approve", "re-approve a quarantined tool after showing what changed"),
}


def add_arguments(action: str, p: argparse.ArgumentParser) -> None:
    """Declare the arguments of `talon mcp <action>` on `p`."""
    if action == "add":
        p.add_argument("name", help="server name (a-z, 0-9, - and _)")
        p.add_argument(
            "--env",
            action="append",
            default=[],
            metavar="VAR=value|VAR=secret:NAME",
            help="a variable the server gets (repeatable); secret:NAME injects a secret of "
            "`talon secret` by reference. Nothing else of the environment reaches it",
        )
        p.add_argument(
            "command",
            nargs=argparse.REMAINDER,
            help="[--env …] -- then the program and its arguments",
        )
    elif action == "list":
        p.add_argument("--json", action="store_true", help="print JSON")
    elif action == "remove":
        p.add_argument("name")
    elif action == "approve":
        p.add_argument("name", help="server name")
        p.add_argument("tool", help="the upstream tool's name (echo, not notes__echo)")
        p.add_argument("--yes", action="store_true", help="approve without asking")


def parse_env(items: list[str]) -> dict[str, Any]:
    """`VAR=value` and `VAR=secret:NAME` items as the op's env object."""
    env: dict[str, Any] = {}
    for item in items:
        var, sep, value = item.partition("=")
        if not sep or not var:
            fail(f"--env {item!r}: give VAR=value or VAR=secret:NAME")
        if var in env:
            fail(f"--env {var} is given twice")
        env[var] = {"secret": value[7:]} if value.startswith("secret:") else value
    return env


def split_command(rest: list[str]) -> tuple[list[str], list[str]]:
    """What follows NAME: `--env` items, then `--` and the server's argv (argparse stops
    parsing options at the first positional, so the options after NAME are read here; it
    drops a `--` that directly follows NAME)."""
    envs: list[str] = []
    i = 0
    while i < len(rest):
        item = rest[i]
        if item == "--env" and i + 1 < len(rest):
            envs.append(rest[i + 1])
            i += 2
        elif item.startswith("--env="):
            envs.append(item[6:])
            i += 1
        else:
            break
    if i < len(rest) and rest[i] == "--":
        i += 1
    elif envs and i < len(rest):
        fail(f"unexpected {rest[i]!r}: give the server's command after --")
    return envs, rest[i:]


def cmd_mcp_add(args: argparse.Namespace) -> int:
    more_env, command = split_command(list(args.command))
    if not command:
        fail("give the server's command after --, e.g. talon mcp add notes -- python server.py")
    args.env = [*args.env, *more_env]
    env = parse_env(args.env)

    async def body(c: AdminClient) -> int:
        server = await c.add_mcp_server(args.name, command, env)
        print(f"registered {line(server.name)}: {line(' '.join(server.command))}")
        for var, kind in server.env.items():
            print(f"  env {line(var)} ({line(kind)})")
        print("the broker starts it on first use; allow its tools with an mcp.call override")
        return 0

    return run_admin(args, body)


def _server_lines(s: McpServerInfo) -> list[str]:
    out = [
        f"{line(s.name)}  {line(s.status)}  restarts {s.restarts}  {line(' '.join(s.command), 60)}"
    ]
    if s.last_error:
        out.append(f"  last error: {line(s.last_error, 100)}")
    for t in s.tools:
        mark = "QUARANTINED (changed)" if t.status == "quarantined" else "pinned"
        out.append(f"  {line(t.tool):<24} {mark}  {t.sha256[:19]}")
    if not s.tools:
        out.append("  (no tools pinned yet: listed on first use)")
    return out


def cmd_mcp_list(args: argparse.Namespace) -> int:
    async def body(c: AdminClient) -> int:
        return print_rows(
            await c.list_mcp_servers(),
            args.json,
            lambda s: "\n".join(_server_lines(s)),
            "no MCP servers registered (talon mcp add NAME -- CMD ARGS…)",
        )

    return run_admin(args, body)


def cmd_mcp_remove(args: argparse.Namespace) -> int:
    async def body(c: AdminClient) -> int:
        await c.remove_mcp_server(args.name)
        print(f"removed {line(args.name)} (stopped; its pins are forgotten)")
        return 0

    return run_admin(args, body)


def cmd_mcp_approve(args: argparse.Namespace) -> int:
    async def body(c: AdminClient) -> int:
        servers = {s.name: s for s in await c.list_mcp_servers()}
        server = servers.get(args.name)
        if server is None:
            fail(f"no MCP server named {args.name!r} is registered")
        pin = next((t for t in server.tools if t.tool == args.tool), None)
        if pin is None:
            fail(f"server {args.name} has no pinned tool {args.tool!r}")
        if pin.status != "quarantined":
            fail(f"tool {args.tool!r} of {args.name} is not quarantined; nothing to approve")
        print(f"{line(args.name)} tool {line(args.tool)} changed since it was pinned:")
        print("\n".join(line(d) for d in pin.diff()))
        if not args.yes:
            if not sys.stdin.isatty():
                fail("not approved: give --yes to approve without a terminal")
            answer = input("approve this content for the tool? [y/N] ").strip().lower()
            if answer not in ("y", "yes"):
                print("not approved; the tool stays quarantined")
                return 1
        approved = await c.approve_mcp_tool(args.name, args.tool)
        print(f"approved: {line(args.tool)} pinned at {approved.sha256}")
        return 0

    return run_admin(args, body)


def register(actions: Any, common: Callable[[argparse.ArgumentParser, str], None]) -> None:
    """Add `add`, `list`, `remove` and `approve` to the `mcp` verb's subparsers (called by
    `mcp_cmd.add_parsers`)."""
    for action, (func, help_) in ACTIONS.items():
        p = actions.add_parser(action, help=help_, description=help_)
        p.set_defaults(_handler=("mcp_servers_cmd", func))
        common(p, "mcp")
        add_arguments(action, p)
