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
import os
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
    try:
        return asyncio.run(_serve(data, args.docker_runtime))
    except TalonError as exc:
        fail(exc.message)


async def _serve(data: DataDir, docker_runtime: str | None) -> int:
    pipe.check_socket_dir(data.run_dir)  # before anything creates or fixes the directory
    engine = Engine(
        data.root,
        docker_runtime=docker_runtime,
        approval_timeout=_env_number("TALON_APPROVAL_TIMEOUT", 120.0),
        checkpoint_every=_checkpoint_every(),
    )
    await engine.start()
    server = pipe.PipeServer(
        engine,
        data.socket_path,
        max_connections=int(
            _env_number("TALON_PIPE_MAX_CONNECTIONS", pipe.DEFAULT_MAX_CONNECTIONS, int)
        ),
        idle_timeout=_env_number("TALON_PIPE_IDLE_TIMEOUT", pipe.DEFAULT_IDLE_TIMEOUT),
        rate=_env_number("TALON_PIPE_RATE", pipe.DEFAULT_RATE),
        burst=_env_number("TALON_PIPE_BURST", pipe.DEFAULT_BURST),
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
    print(
        f"talon serve: listening on {data.socket_path} (data {data.root}; "
        f"admin token in {token_where}); SIGINT/SIGTERM stops",
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
