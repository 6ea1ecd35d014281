"""Shared set-up for the policy editor tests: a real in-process Engine on a temporary data dir,
a tiny app that shows only the editor, deterministic ids, and waiting on conditions."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

from textual.app import App
from textual.widgets import Select

from support.clock import CountingIds, TestClock
from support.ui import no_blink, screen_text  # noqa: F401  (re-exported to the tests)
from talon_tui.app.screens.policy_editor import PolicyEditorScreen
from talon_tui.app.widgets.chips import ChipInput
from talon_tui.app.widgets.override_form import OverrideFormScreen
from talon_tui.engine.core import ids
from talon_tui.engine.engine import Engine

BASE_POLICY: dict[str, Any] = {
    "version": 1,
    "overrides": [
        {
            "tool": "file.read",
            "allow": True,
            "approval": "never",
            "constraints": {"roots": ["work"], "max_bytes": 1048576, "ttl_seconds": 60},
        }
    ],
}


def make_workspace(root: Path) -> Path:
    ws = root / "ws"
    (ws / "work").mkdir(parents=True, exist_ok=True)
    (ws / "docs").mkdir(exist_ok=True)
    (ws / "docs" / "a.txt").write_text("hello\n")
    (ws / "work" / "b.txt").write_text("work\n")
    return ws


def fixed_ids(monkeypatch) -> None:
    """Make ids count instead of drawing random hex (tests/conftest.py restores the clock)."""
    del monkeypatch
    ids.set_clock(TestClock(new_id=CountingIds(shared=True)))


class EditorApp(App[None]):
    """Shows the policy editor alone (as the app shell pushes it)."""

    def __init__(self, engine: Any, session_id: str, **kwargs: Any) -> None:
        super().__init__()
        self.engine = engine
        self.session_id = session_id
        self.kwargs = kwargs

    def on_mount(self) -> None:
        self.push_screen(PolicyEditorScreen(self.engine, self.session_id, **self.kwargs))


class SnapshotEditorApp(App[None]):
    """For snapshot tests (which run their own event loop): starts the Engine inside the app,
    creates a session with `policy`, records `intents`, then pushes the editor."""

    def __init__(
        self, data_dir: Path, workspace: Path, policy: dict[str, Any], **kwargs: Any
    ) -> None:
        super().__init__()
        self.data_dir = data_dir
        self.workspace = workspace
        self.policy = policy
        self.kwargs = kwargs
        self.engine: Engine | None = None

    async def on_mount(self) -> None:
        self.engine = Engine(self.data_dir)
        await self.engine.start()
        session, _ = await self.engine.create_session("demo", str(self.workspace), self.policy)
        await self.push_screen(PolicyEditorScreen(self.engine, session.id, **self.kwargs))

    async def on_unmount(self) -> None:
        if self.engine is not None:
            await self.engine.stop()


async def wait_for(pilot: Any, predicate: Callable[[], Any], what: str, timeout: float = 10.0):
    """Let the app run until `predicate()` holds (the engine works in a thread pool)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        value = predicate()
        if value:
            # let a newly pushed screen lay out and paint what it now holds
            await pilot.wait_for_scheduled_animations()
            await pilot.pause(0.05)
            return value
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await pilot.pause(0.02)


async def loaded(pilot: Any) -> PolicyEditorScreen:
    screen = await wait_for(
        pilot,
        lambda: isinstance(pilot.app.screen, PolicyEditorScreen) and pilot.app.screen.loads > 0,
        "the editor to load",
    )
    del screen
    return pilot.app.screen


async def shown(pilot: Any, *needles: str, timeout: float = 10.0) -> str:
    """The screen's text once it shows every one of `needles` (fails after `timeout`)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        text = screen_text(pilot.app)
        if all(n in text for n in needles):
            return text
        if loop.time() > deadline:
            missing = [n for n in needles if n not in text]
            raise AssertionError(f"screen never showed {missing!r}; it shows:\n{text}")
        await pilot.pause(0.02)


async def open_form(pilot, key: str = "a") -> OverrideFormScreen:
    await pilot.press(key)
    return await wait_for(
        pilot,
        lambda: pilot.app.screen if isinstance(pilot.app.screen, OverrideFormScreen) else None,
        "the override form",
    )


async def type_chip(pilot, form: OverrideFormScreen, field: str, value: str) -> ChipInput:
    chips = form.query_one(f"#f-{field}", ChipInput)
    chips.input.focus()
    await pilot.pause()
    await pilot.press(*value, "enter")
    await pilot.pause()
    return chips


async def set_tool(pilot, form: OverrideFormScreen, tool: str) -> None:
    form.query_one("#f-tool", Select).value = tool
    await pilot.pause()


async def back_to_editor(pilot) -> PolicyEditorScreen:
    return await wait_for(
        pilot,
        lambda: pilot.app.screen if isinstance(pilot.app.screen, PolicyEditorScreen) else None,
        "the editor",
    )
