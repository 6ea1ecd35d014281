"""Keys that arrive in one burst act on the row the cursor reached: `down enter` typed together
opens the second row, in every list where enter opens something (issue 12, defect 3). A
priority binding runs before the keys already sent to the focused table. `Pilot.press` waits for
the app to go idle after each key, which hides the race, so `burst` sends the keys the way a
terminal delivers a fast typist's input: all queued before the app handles the first one."""

from __future__ import annotations

import pytest
from support.app import Hosted, frozen, settle, talon_app  # noqa: F401
from support.audit_screen import ScreenApp, wait_for
from test_app_snapshots import populate
from textual import events
from textual.pilot import Pilot
from textual.widgets import DataTable

from talon_tui.app.screens.audit import AuditScreen, EventDetailScreen
from talon_tui.app.screens.run_timeline import RunTimelineScreen
from talon_tui.app.screens.session_detail import SessionDetailScreen
from talon_tui.app.widgets.audit_list import AuditList

SIZE = (120, 40)


async def three_sessions(h: Hosted) -> None:
    for label in ("alpha", "bravo", "charlie"):
        await h.session(label, None)


async def burst(pilot: Pilot, *keys: str) -> None:
    """Queue every key before the app handles any (as a terminal read of one chunk does)."""
    app = pilot.app
    for key in keys:
        event = events.Key(key, None)
        event.set_sender(app)
        app.post_message(event)
    await settle(pilot)


def row_key(table: DataTable, row: int) -> str:
    return table.coordinate_to_cell_key((row, 0)).row_key.value


@pytest.mark.slow
@pytest.mark.usefixtures("frozen")
async def test_down_enter_in_one_burst_opens_the_second_session(tmp_path):
    app, _ = talon_app(tmp_path / "data", three_sessions, pipe=False)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("2")
        await settle(pilot)
        table = app.screen.query_one(DataTable)
        assert table.row_count == 3 and table.cursor_row == 0
        second = row_key(table, 1)
        await burst(pilot, "down", "enter")
        await settle(pilot)
        assert isinstance(app.screen, SessionDetailScreen)
        assert app.screen.session_id == second


@pytest.mark.usefixtures("frozen")
async def test_down_down_enter_in_one_burst_opens_the_third_session(tmp_path):
    app, _ = talon_app(tmp_path / "data", three_sessions, pipe=False)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("2")
        await settle(pilot)
        third = row_key(app.screen.query_one(DataTable), 2)
        await burst(pilot, "down", "down", "enter")
        await settle(pilot)
        assert isinstance(app.screen, SessionDetailScreen)
        assert app.screen.session_id == third


@pytest.mark.slow
@pytest.mark.usefixtures("frozen")
async def test_tab_down_enter_in_one_burst_opens_the_run_of_the_focused_table(tmp_path):
    """The dashboard's enter is a priority binding too: after a burst that moves focus to the
    denials table, enter opens the denial's run, not whatever the old focus held."""
    app, hosted = talon_app(tmp_path / "data", populate)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        running = app.screen.query_one("#running", DataTable)
        running.focus()
        await settle(pilot)
        await burst(pilot, "tab", "enter")
        await settle(pilot)
        assert isinstance(app.screen, RunTimelineScreen)
        assert app.screen.run_id == hosted.sessions["_run"]


@pytest.mark.slow
async def test_up_enter_in_one_burst_shows_the_event_above(tmp_path):
    """The audit list's enter is the list's own binding: keys reach it in the order typed."""
    app = ScreenApp(tmp_path / "data", lambda e, s, r: AuditScreen(e))
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(
            pilot,
            lambda: (
                isinstance(app.screen, AuditScreen) and app.screen.query_one(AuditList).complete
            ),
            "the audit list to index the log",
        )
        audit_list = app.screen.query_one(AuditList)
        assert len(audit_list.offsets) >= 2
        first = audit_list.selected_event
        await burst(pilot, "up", "enter")  # it follows the tail: the cursor is on the last
        await wait_for(pilot, lambda: isinstance(app.screen, EventDetailScreen), "the detail")
        assert app.screen.event["seq"] == first["seq"] - 1
