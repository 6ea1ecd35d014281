"""`talon serve`: the headless engine and the agent pipe, in the foreground.

SIGTERM/SIGINT: stop accepting, deny intents still waiting for an approval, let in-flight
intents finish (bounded), record `engine.stopped`, write the final checkpoint, remove the
socket, exit 0. Never imports textual.

Tuning (environment, mainly for tests and benchmarks): TALON_PIPE_MAX_CONNECTIONS,
TALON_PIPE_IDLE_TIMEOUT (s), TALON_PIPE_RATE and TALON_PIPE_BURST (requests/s per agent),
TALON_APPROVAL_TIMEOUT (s), TALON_CHECKPOINT_EVERY.
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

from .common import fail

STOP_GRACE_SECONDS = 10.0


def _env_number(name: str, default: float, kind: type = float) -> float:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = kind(raw)
    except ValueError:
        fail(f"{name}={raw!r} is not a number")
    if value <= 0:
        fail(f"{name} must be positive")
    return value


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

    every = int(_env_number("TALON_CHECKPOINT_EVERY", MAX_UNSIGNED_EVENTS, int))
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
        return asyncio.run(_serve(data, args.docker_runtime, gid, agent_uids))
    except TalonError as exc:
        fail(exc.message)
    except PermissionError as exc:
        fail(
            f"cannot set up {data.root} ({exc}); with --socket-group, the engine's user must "
            "belong to that group"
        )


async def _serve(
    data: DataDir,
    docker_runtime: str | None,
    socket_gid: int | None = None,
    agent_uids: frozenset[int] | None = None,
) -> int:
    pipe.check_socket_dir(data.run_dir)  # before anything creates or fixes the directory
    engine = Engine(
        data.root,
        docker_runtime=docker_runtime,
        approval_timeout=_env_number("TALON_APPROVAL_TIMEOUT", 120.0),
        checkpoint_every=_checkpoint_every(),
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
        max_connections=int(
            _env_number("TALON_PIPE_MAX_CONNECTIONS", pipe.DEFAULT_MAX_CONNECTIONS, int)
        ),
        idle_timeout=_env_number("TALON_PIPE_IDLE_TIMEOUT", pipe.DEFAULT_IDLE_TIMEOUT),
        rate=_env_number("TALON_PIPE_RATE", pipe.DEFAULT_RATE),
        burst=_env_number("TALON_PIPE_BURST", pipe.DEFAULT_BURST),
        socket_group=socket_gid,
        agent_uids=agent_uids,
    )
    try:
        await server.start()
    except BaseException:
        await engine.stop("pipe failed to start")
        raise
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
    print("talon serve: stopped (final checkpoint written)", file=sys.stderr, flush=True)
    return 0
