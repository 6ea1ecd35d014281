"""`talon` entry point (DESIGN section 8).

The parser knows every verb; each verb's handler lives in `talon_tui.cli.commands.<module>` and is
imported only when that verb runs, so headless verbs never import textual. Exit codes: 0 ok,
1 check failed (denied, chain broken), 2 usage or input error.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any

from . import HOOK_AGENTS

# verb path -> (module, function, one-line help)
VERBS: dict[tuple[str, ...], tuple[str, str, str]] = {
    ("console",): ("console_cmd", "cmd_console", "open the console on the data dir (default)"),
    ("demo",): ("console_cmd", "cmd_demo", "open the console on a demo dir with a live demo agent"),
    ("serve",): ("serve_cmd", "cmd_serve", "run the headless engine and agent pipe (foreground)"),
    ("doctor",): (
        "doctor_cmd",
        "cmd_doctor",
        "check the data dir's owner and modes and who the agents run as",
    ),
    ("status",): ("admin_cmd", "cmd_status", "show the running engine's state and limits"),
    ("session", "create"): (
        "admin_cmd",
        "cmd_session_create",
        "create a session, print its agent key",
    ),
    ("session", "list"): ("admin_cmd", "cmd_session_list", "list sessions"),
    ("session", "close"): ("admin_cmd", "cmd_session_close", "close a session"),
    ("policy", "set"): ("admin_cmd", "cmd_policy_set", "replace a session's policy from a file"),
    ("policy", "show"): ("admin_cmd", "cmd_policy_show", "print a session's policy"),
    ("policy", "lint"): (
        "policy_cmd",
        "cmd_policy_lint",
        "check a policy file and list warnings (offline)",
    ),
    ("agent", "intent"): ("agent_cmd", "cmd_agent_intent", "submit one tool intent as an agent"),
    ("agent", "run"): (
        "agent_cmd",
        "cmd_agent_run",
        "submit a run of intents from a JSON Lines file",
    ),
    ("approvals",): (
        "admin_cmd",
        "cmd_approvals",
        "list, show, approve, remember, deny or watch approvals",
    ),
    ("audit", "verify"): (
        "audit_cmd",
        "cmd_audit_verify",
        "verify the hash chain and signatures (offline)",
    ),
    ("audit", "head"): (
        "audit_cmd",
        "cmd_audit_head",
        "print the signed head, a witness to keep off the machine (offline)",
    ),
    ("audit", "tail"): (
        "admin_cmd",
        "cmd_audit_tail",
        "print recent audit events, --follow for live",
    ),
    ("audit", "export"): ("audit_cmd", "cmd_audit_export", "export events as JSON Lines (offline)"),
    ("replay",): (
        "replay_cmd",
        "cmd_replay",
        "replay a run from the log without executing (offline)",
    ),
    ("hook", "claude-code"): (
        "hook_cmd",
        "run_hook_verb",
        "answer one Claude Code hook event (stdin) with Talon's decision",
    ),
    ("hook", "codex"): (
        "hook_cmd",
        "run_hook_verb",
        "answer one Codex hook event (stdin) with Talon's decision",
    ),
    ("hook", "install"): (
        "hook_cmd",
        "cmd_hook_install",
        "write Talon's hooks into Claude Code's or Codex's settings",
    ),
    ("hook", "uninstall"): ("hook_cmd", "cmd_hook_uninstall", "remove Talon's hooks again"),
    ("hook", "test"): ("hook_cmd", "cmd_hook_test", "show what Talon would answer a tool call"),
}
#: verbs that run once per agent tool call: `talon_tui.cli.main` dispatches them before this
#: module (and argparse) is even imported


class _Parser(argparse.ArgumentParser):
    """argparse that prints one clear line and exits 2 on usage errors.

    `defer(fill)`: `fill(self)` adds the rest of this parser's arguments just before it parses
    or prints help, so a verb whose arguments need an import (`serve`'s limit flags) costs
    nothing when another verb runs: the parser is built for every verb."""

    _fill: Callable[[argparse.ArgumentParser], None] | None = None

    def defer(self, fill: Callable[[argparse.ArgumentParser], None]) -> None:
        self._fill = fill

    def _filled(self) -> None:
        fill, self._fill = self._fill, None
        if fill is not None:
            fill(self)

    def parse_known_args(self, args: Any = None, namespace: Any = None) -> Any:
        self._filled()
        return super().parse_known_args(args, namespace)

    def format_usage(self) -> str:
        self._filled()
        return super().format_usage()

    def format_help(self) -> str:
        self._filled()
        return super().format_help()

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"talon: {message} (see `{self.prog} --help`)\n")


# verbs that connect to a running engine (they check who listens before sending a credential)
CONNECTING = {"console", "session", "policy", "agent", "approvals", "audit", "doctor", "mcp"}


def _common(p: argparse.ArgumentParser, verb: str = "") -> None:
    p.add_argument(
        "--data-dir", help="data directory (default: $TALON_DATA_DIR or the user data dir)"
    )
    if verb in CONNECTING:
        p.add_argument(
            "--engine-user",
            help="the user a separately run engine runs as (sets $TALON_ENGINE_UID); a "
            "listener running as anyone else but you or root gets no credential",
        )


def _json(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="print JSON")


def _session_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("session_id", help="session id (sess_…)")


def _serve_rest(p: argparse.ArgumentParser) -> None:
    """`serve`'s limit flags and the flags after them (deferred: `_Parser.defer`). The limit
    flags' defaults come from `engine.runtime.limits`, which imports asyncio and
    concurrent.futures, so only a `serve` parse or help imports it."""
    from .commands.serve_flags import add_limit_flags

    add_limit_flags(p)
    p.add_argument(
        "--export",
        action="append",
        metavar="KIND=TARGET",
        help="send the audit log on: otlp=URL (OTLP/HTTP, to URL/v1/logs), "
        "syslog=HOST:PORT[/tcp][,format=cef], jsonl=PATH; ,events=heads sends only the "
        "signed checkpoints (repeatable)",
    )
    p.add_argument(
        "--config", help="TOML file with export, approval_webhook, approval_webhook_key_file"
    )
    p.add_argument("--approval-webhook", metavar="URL", help="POST each waiting approval here")
    p.add_argument(
        "--approval-webhook-key-file", metavar="FILE", help="HMAC-SHA256 key signing the POSTs"
    )


MCP_HELP = "serve Talon's tools to an MCP client over stdio (Claude, Cursor, Codex)"


def _mcp_rest(p: argparse.ArgumentParser) -> None:
    """`mcp`'s flags and actions (deferred: `_Parser.defer`): `mcp_cmd` imports the MCP client
    table and its verbs the admin client, which no other verb needs."""
    from .commands import mcp_cmd

    mcp_cmd.add_parsers(p, _common, _Parser)


def build_parser() -> argparse.ArgumentParser:
    lines = []
    for path, (_, _, help_) in VERBS.items():
        lines.append(f"  {' '.join(path):<17} {help_}")
    lines.append(f"  {'mcp':<17} serve Talon's tools to an MCP client (install, uninstall)")
    parser = _Parser(
        prog="talon",
        description="Govern what local AI agents may do.",
        epilog="verbs:\n"
        + "\n".join(lines)
        + "\n\nconsole and demo take --readonly (no action that changes state) and --theme NAME"
        + "\n(talon-dark, talon-light, talon-high-contrast; a theme picked in the palette is kept"
        + "\nin console.json under the user config dir, or $TALON_CONFIG_DIR)"
        + "\n\nexit codes: 0 ok, 1 check failed, 2 usage or input error",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version="talon 0.1.0")
    sub = parser.add_subparsers(dest="verb", metavar="VERB", parser_class=_Parser)
    groups: dict[str, argparse._SubParsersAction] = {}

    def leaf(path: tuple[str, ...]) -> _Parser:
        module, func, help_ = VERBS[path]
        if len(path) == 1:
            p = sub.add_parser(path[0], help=help_, description=help_)
        else:
            if path[0] not in groups:
                g = sub.add_parser(path[0], help=f"{path[0]} commands")
                groups[path[0]] = g.add_subparsers(
                    dest="action", metavar="ACTION", required=True, parser_class=_Parser
                )
            p = groups[path[0]].add_parser(path[1], help=help_, description=help_)
        p.set_defaults(_handler=(module, func))
        _common(p, path[0])
        return p

    for console_verb in (("console",), ("demo",)):
        p = leaf(console_verb)
        p.add_argument(
            "--readonly", action="store_true", help="hide every action that changes state"
        )
        p.add_argument(
            "--theme",
            metavar="NAME",
            help="theme for this start: talon-dark (default), talon-light, talon-high-contrast; "
            "a theme picked in the palette is kept in console.json (user config dir)",
        )
        p.add_argument(
            "--docker-runtime",
            help="container runtime for every docker.run of the in-process engine (e.g. runsc)",
        )

    p = leaf(("serve",))
    p.add_argument("--docker-runtime", help="container runtime for every docker.run (e.g. runsc)")
    p.add_argument(
        "--socket-group",
        help="let this group's members connect as agents (root and run/ 0710, socket 0660); "
        "everything else in the data dir stays private to the engine's user",
    )
    p.add_argument(
        "--agent-uid",
        action="append",
        help="only agents running as this uid or user may connect (repeatable)",
    )
    p.defer(_serve_rest)

    p = leaf(("status",))
    _json(p)

    p = leaf(("doctor",))
    _json(p)

    p = leaf(("session", "create"))
    p.add_argument("label")
    p.add_argument("--workspace", help="absolute directory the session's paths are relative to")
    p.add_argument("--policy", help="policy file to start with")
    _json(p)
    p = leaf(("session", "list"))
    _json(p)
    p = leaf(("session", "close"))
    _session_arg(p)

    p = leaf(("policy", "set"))
    _session_arg(p)
    p.add_argument("file", help="policy JSON file")
    p = leaf(("policy", "show"))
    _session_arg(p)
    p = leaf(("policy", "lint"))
    p.add_argument("file", help="policy JSON file")
    p.add_argument("--workspace", help="workspace to judge roots against")
    _json(p)

    p = leaf(("agent", "intent"))
    p.add_argument("--key", required=True, help="agent key (or - to read it from stdin)")
    p.add_argument("--tool", required=True)
    p.add_argument("--params", default="{}", help="JSON object of tool params")
    p.add_argument("--run-id")
    _json(p)
    p = leaf(("agent", "run"))
    p.add_argument("--key", required=True, help="agent key (or - to read it from stdin)")
    p.add_argument("file", help="JSON Lines file: one {tool, params} per line")
    _json(p)

    p = leaf(("approvals",))
    p.add_argument(
        "action",
        nargs="?",
        choices=["list", "show", "approve", "deny", "remember", "watch"],
        default="list",
        help="remember ID: approve and add the narrowest override; watch: print approvals as "
        "they arrive",
    )
    p.add_argument("approval_id", nargs="?")
    p.add_argument(
        "--remember", action="store_true", help="with approve: add the narrowest override"
    )
    _json(p)

    p = leaf(("audit", "verify"))
    p.add_argument(
        "--expect-head",
        metavar="SEQ:HASH",
        help="a witness from `talon audit head`: fail unless the log holds it, signed",
    )
    _json(p)
    p = leaf(("audit", "head"))
    _json(p)
    p = leaf(("audit", "tail"))
    p.add_argument("-n", "--lines", type=int, default=20)
    p.add_argument("--follow", "-f", action="store_true")
    _json(p)
    p = leaf(("audit", "export"))
    p.add_argument("--session")
    p.add_argument("--run")
    p.add_argument("--output", "-o", help="file to write (default stdout)")

    p = sub.add_parser("mcp", help=MCP_HELP, description=MCP_HELP)
    p.defer(_mcp_rest)
    for agent in HOOK_AGENTS:
        p = leaf(("hook", agent))
        p.add_argument("--key-file", help="file holding the agent key (default $TALON_AGENT_KEY)")
        p.add_argument("--wait", type=float, help="seconds a decision may wait for an approval")
        p.add_argument("--gateway-server", default="talon")
    for verb in ("install", "uninstall"):
        p = leaf(("hook", verb))
        p.add_argument("agent", choices=HOOK_AGENTS)
        if verb == "install":
            p.add_argument("--session", required=True, help="session id (sess_…)")
            p.add_argument(
                "--wait",
                type=int,
                default=150,
                help="seconds a decision may wait for an approval (the hook timeout is 30 s more)",
            )
        p.add_argument("--scope", choices=["user", "project"], default="user")
        p.add_argument("--project", help="project directory for --scope project (default: cwd)")
    p = leaf(("hook", "test"))
    p.add_argument("--agent", choices=HOOK_AGENTS, default="claude-code")
    p.add_argument("--tool", required=True, help="the agent's tool name, e.g. Bash or Read")
    p.add_argument("--input", required=True, help="the tool input as JSON")
    p.add_argument("--cwd", help="the agent's working directory (default: cwd)")
    p.add_argument("--key-file", help="file holding the agent key (default $TALON_AGENT_KEY)")
    p.add_argument("--wait", type=float, default=150.0)
    p.add_argument("--gateway-server", default="talon")
    p.add_argument("--dry", action="store_true", help="show the mapping only; ask no engine")

    p = leaf(("replay",))
    p.add_argument("run_id", nargs="?")
    p.add_argument("--session", help="replay a whole session on one time axis")
    p.add_argument("--diff", metavar="RUN_B", help="compare RUN_ID with RUN_B step by step")
    p.add_argument("--policy", help="what-if: policy file to re-evaluate the run against")
    _json(p)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    if args_list[:1] == ["hook"] and args_list[1:2] and args_list[1] in HOOK_AGENTS:
        # the package's `main` (cli/__init__.py) sends hook verbs there before importing
        # this module; this is the same path for a caller of this `main`, and imports the hook
        # runner only here: no other verb needs it
        from talon_tui.hooks.command import run_hook_verb

        return run_hook_verb(args_list[1], args_list[2:])
    parser = build_parser()
    if not args_list or (
        args_list[0].startswith("--") and args_list[0] not in ("--help", "-h", "--version")
    ):
        args_list = ["console", *args_list]
    args = parser.parse_args(args_list)
    handler = getattr(args, "_handler", None)
    if handler is None:
        parser.print_help()
        return 2
    module, func = handler
    engine_user = getattr(args, "engine_user", None)
    if engine_user:
        os.environ["TALON_ENGINE_UID"] = engine_user
    fn = getattr(importlib.import_module(f"talon_tui.cli.commands.{module}"), func)
    try:
        return int(fn(args) or 0)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    sys.exit(main())
