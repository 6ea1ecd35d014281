"""`talon serve`: the headless engine and the agent pipe, in the foreground.

SIGTERM/SIGINT: stop accepting, deny intents still waiting for an approval, let in-flight
intents finish (bounded), record `engine.stopped`, write the final checkpoint, remove the
socket, exit 0. Never imports textual.

Limits: each is a flag (serve_flags.py, `talon serve --help`, SECURITY.md "Limits on the
pipe"); a flag not given falls back to its environment variable, then to the default.
Tuning by environment only (tests, benchmarks): TALON_PIPE_IDLE_TIMEOUT (s), TALON_PIPE_RATE and
TALON_PIPE_BURST (requests/s per agent), TALON_APPROVAL_TIMEOUT (s), TALON_CHECKPOINT_EVERY.

Exports (`--export`, `--approval-webhook`, or the same keys in `<data>/talon.toml` /
`--config FILE`): the exporters follow the audit log file from their cursors in a process of
their own (talon_tui/engine/export/worker.py), never on the intent path; at shutdown they get
EXPORT_DRAIN_SECONDS to send the last events.
"""

from __future__ import annotations

import argparse
import asyncio
import grp
import os
import pwd
import signal
import sys

from talon_tui.engine import pipe
from talon_tui.engine.core.paths import DataDir, resolve_data_dir
from talon_tui.engine.engine import Engine
from talon_tui.engine.errors import TalonError
from talon_tui.engine.export import (
    ApprovalWebhook,
    ExportConfig,
    ExportConfigError,
    ExportProcess,
    SinkError,
    build_config,
)
from talon_tui.engine.runtime import limits

from .common import fail
from .serve_flags import env_number, limit

STOP_GRACE_SECONDS = 10.0
EXPORT_DRAIN_SECONDS = 5.0


def socket_group_id(name: str | None) -> int | None:
    """`--socket-group NAME|GID` as a gid (None without the option); exit 2 if unknown."""
    if name is None:
        return None
    try:
        return int(name) if name.isdigit() else grp.getgrnam(name).gr_gid
    except KeyError:
        fail(f"--socket-group {name}: no such group")


def agent_uid_set(names: list[str] | None) -> frozenset[int] | None:
    """`--agent-uid UID|USER` (repeatable) as a set of uids (None without the option)."""
    if not names:
        return None
    uids = set()
    for name in names:
        try:
            uids.add(int(name) if name.isdigit() else pwd.getpwnam(name).pw_uid)
        except KeyError:
            fail(f"--agent-uid {name}: no such user")
    return frozenset(uids)


def _checkpoint_every() -> int:
    """TALON_CHECKPOINT_EVERY, at most the 1,000 events `talon audit verify` allows unsigned."""
    from talon_tui.engine.audit.checkpoint import MAX_UNSIGNED_EVENTS

    every = int(env_number("TALON_CHECKPOINT_EVERY", MAX_UNSIGNED_EVENTS, int))
    if every > MAX_UNSIGNED_EVENTS:
        fail(
            f"TALON_CHECKPOINT_EVERY must be at most {MAX_UNSIGNED_EVENTS}: verify names a "
            "longer stretch without a checkpoint as damage"
        )
    return every


def cmd_serve(args: argparse.Namespace) -> int:
    data = DataDir(resolve_data_dir(args.data_dir))
    gid = socket_group_id(args.socket_group)
    agent_uids = agent_uid_set(args.agent_uid)
    try:
        tool_limits = limits.ToolLimits(
            threads=int(limit(args, "tool-threads")),
            per_session=int(limit(args, "tools-per-session")),
            per_agent=int(limit(args, "tools-per-agent")),
            queue_per_session=int(limit(args, "tool-queue-per-session")),
        )
        approval_limits = limits.ApprovalLimits(
            per_session=int(limit(args, "approvals-per-session")),
            per_agent=int(limit(args, "approvals-per-agent")),
            params_bytes_per_session=int(limit(args, "approval-params-bytes")),
        )
    except ValueError as exc:
        fail(str(exc))
    if limit(args, "max-unsent-total-bytes") < limit(args, "max-unsent-bytes"):
        fail("--max-unsent-total-bytes must be at least --max-unsent-bytes")
    try:
        exports = build_config(
            data.root,
            getattr(args, "config", None),
            getattr(args, "export", None),
            getattr(args, "approval_webhook", None),
            getattr(args, "approval_webhook_key_file", None),
        )
    except ExportConfigError as exc:
        fail(str(exc))
    try:
        return asyncio.run(
            _serve(data, args, tool_limits, approval_limits, gid, agent_uids, exports)
        )
    except TalonError as exc:
        fail(exc.message)
    except PermissionError as exc:
        fail(
            f"cannot set up {data.root} ({exc}); with --socket-group, the engine's user must "
            "belong to that group"
        )


async def _serve(
    data: DataDir,
    args: argparse.Namespace,
    tool_limits: limits.ToolLimits,
    approval_limits: limits.ApprovalLimits,
    socket_gid: int | None = None,
    agent_uids: frozenset[int] | None = None,
    exports: ExportConfig | None = None,
) -> int:
    exports = exports or ExportConfig()
    pipe.check_socket_dir(data.run_dir)  # before anything creates or fixes the directory
    aggregate = limit(args, "aggregate-seconds")
    # every number is read before the engine starts: a bad one exits 2 with nothing running
    idle_timeout = env_number("TALON_PIPE_IDLE_TIMEOUT", pipe.DEFAULT_IDLE_TIMEOUT)
    rate = env_number("TALON_PIPE_RATE", pipe.DEFAULT_RATE)
    burst = env_number("TALON_PIPE_BURST", pipe.DEFAULT_BURST)
    engine = Engine(
        data.root,
        docker_runtime=args.docker_runtime,
        approval_timeout=env_number("TALON_APPROVAL_TIMEOUT", 120.0),
        checkpoint_every=_checkpoint_every(),
        tool_limits=tool_limits,
        approval_limits=approval_limits,
        aggregate_seconds=aggregate,
    )
    await engine.start()
    try:
        data.set_socket_group(socket_gid)
    except BaseException:
        await engine.stop("data dir setup failed")
        raise
    server = pipe.PipeServer(
        engine,
        data.socket_path,
        max_connections=int(limit(args, "max-connections")),
        max_connections_per_agent=int(limit(args, "max-connections-per-agent")),
        idle_timeout=idle_timeout,
        rate=rate,
        burst=burst,
        socket_group=socket_gid,
        agent_uids=agent_uids,
        hello_timeout=limit(args, "hello-timeout"),
        max_unauth_per_uid=int(limit(args, "max-unauth-per-uid")),
        max_unauth=int(limit(args, "max-unauth")),
        max_unsent=int(limit(args, "max-unsent-bytes")),
        max_unsent_total=int(limit(args, "max-unsent-total-bytes")),
        reject_interval=aggregate,
    )
    try:
        await server.start()
    except BaseException:
        await engine.stop("pipe failed to start")
        raise
    try:
        exporter = ExportProcess(exports.exports, data.audit_log, data.root / "export")
        exporter.start(EXPORT_DRAIN_SECONDS)
    except (SinkError, OSError) as exc:
        await server.stop(grace=0)
        await engine.stop("export failed to start")
        fail(f"export: {exc}")
    engine.export_status = exporter.status
    webhook_task = None
    if exports.approval_webhook and exports.approval_webhook_key:
        webhook = ApprovalWebhook(exports.approval_webhook, exports.approval_webhook_key)
        webhook.start()
        webhook_task = asyncio.create_task(_feed_webhook(engine, webhook))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    received: list[str] = []
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, lambda s=sig: (received.append(s.name), stop.set()))
    token_where = (
        "$TALON_ADMIN_TOKEN" if os.environ.get("TALON_ADMIN_TOKEN") else data.admin_token_path
    )
    shared = f", socket open to group {socket_gid}" if socket_gid is not None else ""
    print(
        f"talon serve: listening on {data.socket_path} (data {data.root}; "
        f"admin token in {token_where}{shared}); SIGINT/SIGTERM stops",
        flush=True,
    )
    await stop.wait()
    print(f"talon serve: {received[0] if received else 'stop'}: shutting down", file=sys.stderr)
    server.stop_accepting()
    engine.deny_waiting()
    await server.stop(grace=STOP_GRACE_SECONDS)
    await engine.stop(f"signal {received[0]}" if received else "stop")
    if webhook_task is not None:
        webhook_task.cancel()
    await loop.run_in_executor(None, exporter.stop, EXPORT_DRAIN_SECONDS + 5)
    print("talon serve: stopped (final checkpoint written)", file=sys.stderr, flush=True)
    return 0


async def _feed_webhook(engine: Engine, webhook: ApprovalWebhook) -> None:
    """Hand each approval that starts waiting to the webhook's thread; settle it when decided
    or expired, so a failing delivery stops retrying it."""
    try:
        async for msg in engine.subscribe():
            if msg.kind != "approval":
                continue
            approval = msg.payload.get("approval") or {}
            if msg.payload.get("action") == "requested":
                webhook.waiting(approval)
            else:
                webhook.settled(str(approval.get("approval_id", "")))
    finally:
        webhook.stop()
