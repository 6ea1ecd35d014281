"""Fixtures and helpers for the console tests: a real in-process Engine (and its real pipe) on
a data dir, hosted on the app's own event loop; a fixed clock and ids so snapshots are
deterministic; helpers that wait on workers and messages instead of sleeping.

Import what you need: `from support.app import *` style is avoided on purpose.
"""

from __future__ import annotations

import asyncio
import html
import itertools
import re
import secrets
import shutil
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from textual.pilot import Pilot
from textual.widgets import Input

from support.clock import fixed
from talon_tui.app.app import TalonApp, create_app
from talon_tui.engine.core import ids
from talon_tui.engine.core.paths import DataDir
from talon_tui.engine.engine import Engine
from talon_tui.engine.pipe.server import PipeServer

FIXED_NOW = datetime(2026, 11, 25, 17, 0, 0, tzinfo=UTC)
SNAP_ROOT = Path("/tmp/talon-console-snapshots")

HOSTILE_MARKUP = "[bold green]ALLOW[/]"
HOSTILE_LINK = "[link=http://x]y[/link]"
HOSTILE_ANSI = "\x1b[2J"
HOSTILE_BIG = "A" * (1 << 20)


@pytest.fixture
def frozen(monkeypatch):
    """Fixed clock, counting ids and counting random tokens (agent keys, admin token)."""
    tokens = itertools.count(1)
    ids.set_clock(fixed(FIXED_NOW))  # tests/conftest.py puts the system clock back
    monkeypatch.setattr(secrets, "token_urlsafe", lambda n=32: f"tok{next(tokens):040d}")
    monkeypatch.setattr(Input, "cursor_blink", False)
    return FIXED_NOW


def fixed_data_dir(name: str) -> Path:
    """A data dir at a fixed path (it is shown on screen), emptied first."""
    path = SNAP_ROOT / name
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    return path


Setup = Callable[["Hosted"], Awaitable[None]]


@dataclass
class Hosted:
    """The engine and pipe a test app runs on, plus what the setup made (keys, ids)."""

    engine: Engine
    data_dir: Path
    pipe: PipeServer | None = None
    keys: dict[str, str] = field(default_factory=dict)  # label -> agent key
    sessions: dict[str, str] = field(default_factory=dict)  # label -> session id
    tasks: list[asyncio.Task] = field(default_factory=list)

    @property
    def socket_path(self) -> Path:
        return DataDir(self.data_dir).socket_path

    async def session(
        self, label: str, policy: dict[str, Any] | None = None, files: dict[str, str] | None = None
    ) -> str:
        workspace = self.data_dir / "ws" / str(len(self.sessions))
        workspace.mkdir(parents=True, exist_ok=True)
        for rel, text in (files or {}).items():
            (workspace / rel).parent.mkdir(parents=True, exist_ok=True)
            (workspace / rel).write_text(text)
        session, key = await self.engine.create_session(label, str(workspace), policy)
        self.keys[label] = key
        self.sessions[label] = session.id
        return session.id


def talon_app(
    data_dir: Path,
    setup: Setup | None = None,
    *,
    readonly: bool = False,
    theme: str | None = None,
    pipe: bool = True,
) -> tuple[TalonApp, Hosted]:
    """A console over a real Engine on `data_dir`, started on the app's loop (so it works for
    `run_test` and for `snap_compare`, which runs the app in a loop of its own)."""
    engine = Engine(data_dir, approval_timeout=120.0)
    hosted = Hosted(engine=engine, data_dir=data_dir)

    async def startup() -> None:
        await engine.start()
        if pipe:
            hosted.pipe = PipeServer(engine, hosted.socket_path)
            await hosted.pipe.start()
        if setup is not None:
            await setup(hosted)

    async def shutdown() -> None:
        for task in hosted.tasks:
            task.cancel()
        if hosted.pipe is not None:
            await hosted.pipe.stop(grace=1.0)
        await engine.stop("test over", grace=1.0)

    app = create_app(engine, readonly=readonly, theme=theme, startup=startup, shutdown=shutdown)
    app.refresh_interval = 0  # reload on every event: tests wait on workers, not timers
    return app, hosted


SETTLE_GROUPS = {"load", "change", "decide", "nav", "verify", "default", "preview"}


async def settle(pilot: Pilot, rounds: int = 100) -> None:
    """Wait until the console's short-lived workers (screen loads, decisions, navigation) are
    done and the message queues are empty. Long-lived workers (the engine event consumer, the
    demo agents, other screens' watchers) are not waited for."""
    app = pilot.app
    for _ in range(rounds):
        await pilot.pause()
        busy = [w for w in app.workers if w.group in SETTLE_GROUPS and not w.is_finished]
        if not busy:
            await pilot.pause()
            return
        await asyncio.wait_for(app.workers.wait_for_complete(busy), timeout=30)
    raise AssertionError("workers did not settle")


async def wait_until(pilot: Pilot, condition: Callable[[], bool], rounds: int = 400) -> None:
    """Process messages and workers until `condition()` holds (events arrive asynchronously
    from the engine's bus; each round waits on the app's queues, never on a fixed sleep)."""
    for _ in range(rounds):
        if condition():
            return
        await settle(pilot)
        await asyncio.sleep(0)  # let the engine's tasks (pipe, executor callbacks) run
    raise AssertionError("condition not reached")


def screen_text(app: TalonApp) -> str:
    """Everything visible on the screen as plain text, one line per terminal row (read back
    from the SVG screenshot, so it is exactly what the terminal would show)."""
    svg = app.export_screenshot()
    rows: dict[int, list[tuple[float, str]]] = {}
    for m in _SVG_TEXT.finditer(svg):
        x, row, text = float(m.group(1)), int(m.group(2)), html.unescape(m.group(3))
        rows.setdefault(row, []).append((x, text))
    out = []
    for row in sorted(rows):
        line = ""
        for x, text in sorted(rows[row]):
            line = line.ljust(round(x / 12.2)) + text
        out.append(line.replace("\xa0", " ").rstrip())
    return "\n".join(out)


_SVG_TEXT = re.compile(
    r'<text class="[^"]*" x="([\d.]+)" y="[\d.]+" textLength="[\d.]+" '
    r'clip-path="url\(#[^)]*line-(\d+)\)">([^<]*)</text>'
)
