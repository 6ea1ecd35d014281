"""The limit flags of `talon serve` (SECURITY.md, "Limits on the pipe"): one table, so the
parser, the environment fallbacks and the help agree. Imports only `engine.runtime.limits` (cheap:
the parser is built for every verb)."""

from __future__ import annotations

import argparse
import os

from talon_tui.engine.runtime import limits as L

from .common import fail

#: flag -> (environment variable, default, kind, help)
LIMIT_FLAGS: dict[str, tuple[str, float, type, str]] = {
    "max-connections": (
        "TALON_PIPE_MAX_CONNECTIONS",
        L.DEFAULT_MAX_CONNECTIONS,
        int,
        "authenticated connections at once",
    ),
    "max-connections-per-agent": (
        "TALON_MAX_CONNECTIONS_PER_AGENT",
        L.DEFAULT_MAX_CONNECTIONS_PER_AGENT,
        int,
        "authenticated connections of one agent key at once",
    ),
    "hello-timeout": (
        "TALON_HELLO_TIMEOUT",
        L.DEFAULT_HELLO_TIMEOUT,
        float,
        "seconds a new connection has to say hello",
    ),
    "max-unauth-per-uid": (
        "TALON_MAX_UNAUTH_PER_UID",
        L.DEFAULT_MAX_UNAUTH_PER_UID,
        int,
        "connections without a hello per peer uid (past it the oldest is closed)",
    ),
    "max-unauth": (
        "TALON_MAX_UNAUTH",
        L.DEFAULT_MAX_UNAUTH,
        int,
        "connections without a hello in all",
    ),
    "max-unsent-bytes": (
        "TALON_MAX_UNSENT_BYTES",
        L.DEFAULT_MAX_UNSENT,
        int,
        "unsent reply bytes per connection before its requests stop being read",
    ),
    "max-unsent-total-bytes": (
        "TALON_MAX_UNSENT_TOTAL_BYTES",
        L.DEFAULT_MAX_UNSENT_TOTAL,
        int,
        "unsent reply bytes of all connections (past it the worst reader is closed)",
    ),
    "tool-threads": (
        "TALON_TOOL_THREADS",
        L.DEFAULT_TOOL_THREADS,
        int,
        "threads for blocking tools (shell.exec, http.fetch, docker.run, file.write)",
    ),
    "tools-per-session": (
        "TALON_TOOLS_PER_SESSION",
        L.DEFAULT_TOOLS_PER_SESSION,
        int,
        "blocking tool calls running at once per session",
    ),
    "tools-per-agent": (
        "TALON_TOOLS_PER_AGENT",
        L.DEFAULT_TOOLS_PER_AGENT,
        int,
        "blocking tool calls running at once per agent key",
    ),
    "tool-queue-per-session": (
        "TALON_TOOL_QUEUE_PER_SESSION",
        L.DEFAULT_TOOL_QUEUE_PER_SESSION,
        int,
        "tool calls of one session waiting for a thread (more: RATE_LIMITED)",
    ),
    "approvals-per-session": (
        "TALON_APPROVALS_PER_SESSION",
        L.DEFAULT_APPROVALS_PER_SESSION,
        int,
        "intents waiting for an approval per session (more: RATE_LIMITED)",
    ),
    "approvals-per-agent": (
        "TALON_APPROVALS_PER_AGENT",
        L.DEFAULT_APPROVALS_PER_AGENT,
        int,
        "intents waiting for an approval per agent key (more: RATE_LIMITED)",
    ),
    "approval-params-bytes": (
        "TALON_APPROVAL_PARAMS_BYTES",
        L.DEFAULT_APPROVAL_PARAMS_BYTES,
        int,
        "bytes of params of one session's intents waiting for an approval",
    ),
    "aggregate-seconds": (
        "TALON_AGGREGATE_SECONDS",
        L.DEFAULT_AUDIT_AGGREGATE_SECONDS,
        float,
        "interval of the aggregated pipe.rejected and approval.refused events",
    ),
}


def add_limit_flags(p: argparse.ArgumentParser) -> None:
    group = p.add_argument_group("limits (flag, else $TALON_…, else the default)")
    for flag, (env, default, kind, help_) in LIMIT_FLAGS.items():
        group.add_argument(
            f"--{flag}",
            metavar="N" if kind is int else "SECONDS",
            help=f"{help_} (${env}; default {int(default) if kind is int else f'{default:g}'})",
        )


def positive_number(raw: str | None, where: str, default: float, kind: type = float) -> float:
    """`raw`, the text of `where` (a flag or an environment variable), as a positive `kind`;
    `default` when it is None; exit 2 when it is not a positive number."""
    if raw is None:
        return default
    try:
        value = kind(raw)
    except ValueError:
        fail(f"{where}={raw!r} is not {'an integer' if kind is int else 'a number'}")
    if value <= 0:
        fail(f"{where} must be positive")
    return value


def env_number(name: str, default: float, kind: type = float) -> float:
    """The environment variable `name` as a positive `kind`, `default` when unset or empty."""
    return positive_number(os.environ.get(name) or None, name, default, kind)


def limit(args: argparse.Namespace, flag: str) -> float:
    """The flag's value, else its environment variable's, else the default; exit 2 when it is
    not a positive number."""
    env, default, kind, _ = LIMIT_FLAGS[flag]
    raw = getattr(args, flag.replace("-", "_"), None)
    if raw is None:
        return env_number(env, default, kind)
    return positive_number(raw, f"--{flag}", default, kind)
