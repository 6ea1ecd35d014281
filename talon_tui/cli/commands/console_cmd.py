"""`talon` / `talon console` / `talon demo`: open the console.

If no engine runs on the data dir, the console hosts the Engine in-process and serves the agent
pipe so agents can connect; if one already runs (engine.lock held), it attaches to it as an
admin client over the pipe. Either way the screens see one `EngineAPI`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from talon_tui.engine.core.paths import DataDir, resolve_data_dir
from talon_tui.engine.errors import TalonError

from .common import fail


@dataclass
class Hosted:
    """The engine interface the console uses and what was started to provide it."""

    api: Any
    mode: str  # in-process | attached
    engine: Any = None
    pipe: Any = None
    services: list[Any] = field(default_factory=list)


def _admin_token(data: DataDir) -> str:
    from talon_tui.client import ClientError, read_admin_token

    try:
        return read_admin_token(data.root)
    except ClientError as exc:
        raise TalonError(f"an engine runs on {data.root} but {exc.message}") from None


async def attach(data_dir: Path) -> Any:
    """An `AdminClient` on the engine that holds `engine.lock` on `data_dir`, or a `TalonError`
    in one line when it does not answer (a stale socket, an engine still starting or hung)."""
    from talon_tui.client import AdminClient, ClientError

    data = DataDir(data_dir)
    token = _admin_token(data)
    try:
        return await AdminClient.connect(data_dir, socket_path=data.socket_path, admin_token=token)
    except (ClientError, OSError) as exc:
        raise TalonError(
            f"an engine holds {data.lock_path} but does not answer on {data.socket_path} "
            f"({exc}); if `talon serve` is still starting, retry; if it hangs, stop it"
        ) from None


@contextlib.asynccontextmanager
async def hosted_engine(
    data_dir: Path, *, docker_runtime: str | None = None
) -> AsyncIterator[Hosted]:
    """Start the in-process Engine and its pipe server, or attach to the running one."""
    from talon_tui.engine.engine import Engine
    from talon_tui.engine.pipe.server import PipeServer
    from talon_tui.engine.runtime.store import EngineLocked

    data = DataDir(data_dir)
    engine = Engine(data_dir, docker_runtime=docker_runtime)
    try:
        await engine.start()
    except EngineLocked:
        client = await attach(data_dir)
        try:
            yield Hosted(api=client, mode="attached")
        finally:
            await client.close()
        return
    pipe = PipeServer(engine, data.socket_path)
    try:
        await pipe.start()
        yield Hosted(api=engine, mode="in-process", engine=engine, pipe=pipe)
    finally:
        with contextlib.suppress(TalonError, OSError):
            await pipe.stop(grace=2.0)
        await engine.stop("console closed")


async def console_app(
    hosted: Hosted,
    data_dir: Path,
    *,
    readonly: bool = False,
    theme: str | None = None,
    demo: bool = False,
) -> Any:
    """The console app over `hosted.api` (the CLI and the attach tests build it here)."""
    from talon_tui.app.app import create_app

    services = []
    if demo:
        from talon_tui.demo import demo_services

        services = await demo_services(hosted.api, data_dir)
    return create_app(hosted.api, readonly=readonly, theme=theme, services=services)


async def run_console(
    data_dir: Path,
    *,
    readonly: bool,
    theme: str | None,
    demo: bool = False,
    docker_runtime: str | None = None,
) -> None:
    async with hosted_engine(data_dir, docker_runtime=docker_runtime) as hosted:
        app = await console_app(hosted, data_dir, readonly=readonly, theme=theme, demo=demo)
        await app.run_async()


def _run(data_dir: Path, args: argparse.Namespace, demo: bool) -> int:
    try:
        asyncio.run(
            run_console(
                data_dir,
                readonly=bool(getattr(args, "readonly", False)),
                theme=getattr(args, "theme", None),
                demo=demo,
                docker_runtime=getattr(args, "docker_runtime", None),
            )
        )
    except TalonError as exc:
        fail(str(exc), code=1)
    return 0


def cmd_console(args: argparse.Namespace) -> int:
    return _run(resolve_data_dir(args.data_dir), args, demo=False)


def default_demo_dir() -> Path:
    """The demo never touches the user's real data: its own platform data dir."""
    import platformdirs

    return Path(platformdirs.user_data_dir("talon-demo", appauthor=False))


def cmd_demo(args: argparse.Namespace) -> int:
    data_dir = Path(args.data_dir).expanduser().absolute() if args.data_dir else default_demo_dir()
    if not sys.stdout.isatty():
        print(f"talon demo: data dir {data_dir}", file=sys.stderr)
    return _run(data_dir, args, demo=True)
