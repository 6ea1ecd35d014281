"""The console at 80x24: snapshots of the dashboard, sessions, approvals with a waiting intent
and help (deterministic: fixed clock, ids and data dir), and Pilot checks that every footer key
fits, that `enter` shows where it works, and that approval toasts do not pile up."""

from __future__ import annotations

import pytest
from support.app import fixed_data_dir, frozen, screen_text, settle, talon_app  # noqa: F401
from test_app_snapshots import populate
from textual.widgets import DataTable, Footer
from textual.widgets._footer import FooterKey

from talon_tui.app.screens.approvals import ApprovalsScreen
from talon_tui.app.screens.dashboard import DashboardScreen
from talon_tui.app.screens.sessions import SessionsScreen
from talon_tui.engine.api import BusMessage

SMALL = (80, 24)


def _snap(snap_compare, name, keys=()):
    app, _ = talon_app(fixed_data_dir(f"small-{name}"), populate)

    async def run_before(pilot):
        await settle(pilot)
        for key in keys:
            await pilot.press(key)
            await settle(pilot)

    assert snap_compare(app, terminal_size=SMALL, run_before=run_before)


@pytest.mark.slow
@pytest.mark.usefixtures("frozen")
def test_dashboard_small(snap_compare):
    _snap(snap_compare, "dashboard")


@pytest.mark.slow
@pytest.mark.usefixtures("frozen")
def test_sessions_small(snap_compare):
    _snap(snap_compare, "sessions", ["2"])


@pytest.mark.slow
@pytest.mark.usefixtures("frozen")
def test_approvals_small(snap_compare):
    _snap(snap_compare, "approvals", ["3"])


@pytest.mark.slow
@pytest.mark.usefixtures("frozen")
def test_help_small(snap_compare):
    _snap(snap_compare, "help", ["2", "question_mark"])


@pytest.mark.slow
@pytest.mark.usefixtures("frozen")
def test_remember_confirmation_small(snap_compare):
    _snap(snap_compare, "remember", ["3", "a"])


def footer_keys(app) -> list[FooterKey]:
    footer = app.screen.query_one(Footer)
    return [k for k in footer.query(FooterKey) if k.display]


@pytest.mark.slow
@pytest.mark.usefixtures("frozen")
async def test_every_footer_key_fits_at_80_columns(tmp_path):
    app, _ = talon_app(tmp_path / "data", populate)
    async with app.run_test(size=SMALL) as pilot:
        await settle(pilot)
        for key, screen_type in (
            ("1", DashboardScreen),
            ("2", SessionsScreen),
            ("3", ApprovalsScreen),
        ):
            await pilot.press(key)
            await settle(pilot)
            assert isinstance(app.screen, screen_type)
            keys = footer_keys(app)
            shown = {k.description for k in keys}
            assert {"jump", "keys"} <= shown, shown
            for footer_key in keys:
                region = footer_key.region
                assert region.width and region.right <= SMALL[0], (
                    f"{screen_type.__name__}: {footer_key.description!r} is cut off"
                )
            last_line = screen_text(app).splitlines()[-1]
            assert "? keys" in last_line


@pytest.mark.slow
@pytest.mark.usefixtures("frozen")
async def test_enter_is_in_the_footer_where_it_opens_something(tmp_path):
    app, _ = talon_app(tmp_path / "data", populate)
    async with app.run_test(size=SMALL) as pilot:
        await settle(pilot)
        await pilot.press("2")
        await settle(pilot)
        assert "open" in {k.description for k in footer_keys(app)}
        await pilot.press("slash")  # the filter has focus: enter filters, it opens nothing
        await settle(pilot)
        assert "open" not in {k.description for k in footer_keys(app)}
        await pilot.press("escape")
        await settle(pilot)
        assert app.screen.focused is app.screen.query_one(DataTable)
        await pilot.press("enter")
        await settle(pilot)
        assert type(app.screen).__name__ == "SessionDetailScreen"


@pytest.mark.slow
@pytest.mark.usefixtures("frozen")
async def test_a_denial_on_the_dashboard_opens_its_run(tmp_path):
    app, hosted = talon_app(tmp_path / "data", populate)
    async with app.run_test(size=SMALL) as pilot:
        await settle(pilot)
        denials = app.screen.query_one("#denials", DataTable)
        assert denials.row_count == 1
        denials.focus()
        await settle(pilot)
        assert "open run" in {k.description for k in footer_keys(app)}
        await pilot.press("enter")
        await settle(pilot)
        assert type(app.screen).__name__ == "RunTimelineScreen"
        assert app.screen.run_id == hosted.sessions["_run"]


def _requested(n: int) -> BusMessage:
    approval = {"tool": "file.write", "subject": f"agent:{n}", "params": {"path": f"d/{n}.md"}}
    return BusMessage(kind="approval", payload={"action": "requested", "approval": approval})


@pytest.mark.usefixtures("frozen")
async def test_approval_toasts_are_coalesced(tmp_path):
    app, _ = talon_app(tmp_path / "data", pipe=False)
    async with app.run_test(size=SMALL) as pilot:
        await settle(pilot)
        for n in range(5):
            app.dispatch_bus(_requested(n))
        await settle(pilot)
        toasts = [n for n in app._notifications if n.title.startswith("Approval")]
        assert [t.title for t in toasts] == ["Approval needed"]
        assert "d/0.md" in toasts[0].message
        assert app.pending_approvals == 5
        # when the first toast goes away, the other four become one "N waiting" toast
        app._announce_waiting()
        await settle(pilot)
        toasts = [n for n in app._notifications if n.title.startswith("Approval")]
        assert [t.title for t in toasts] == ["Approval needed", "Approvals waiting"]
        assert "5 intents waiting" in toasts[1].message
        assert app.approval_toasts == 2
