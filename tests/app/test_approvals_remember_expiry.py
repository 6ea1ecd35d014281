"""The approve-and-remember dialog shows the approval's countdown and closes, saying why, when
the approval expires or is decided elsewhere (issue 12, defect 7)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from support.app import FIXED_NOW, frozen, screen_text, settle, talon_app, wait_until  # noqa: F401
from test_app_snapshots import populate

from talon_tui.app.screens.approvals import ApprovalsScreen, RememberScreen

SIZE = (120, 40)


def toasts(app) -> str:
    return "\n".join(str(n.message) for n in app._notifications)


async def open_dialog(pilot):
    app = pilot.app
    await settle(pilot)
    await pilot.press("3")
    await settle(pilot)
    assert isinstance(app.screen, ApprovalsScreen) and app.screen.approvals
    await pilot.press("a")
    await settle(pilot)
    assert isinstance(app.screen, RememberScreen)
    return app.screen


@pytest.mark.usefixtures("frozen")
async def test_remember_dialog_counts_down_and_closes_when_the_approval_expires(tmp_path):
    app, hosted = talon_app(tmp_path / "data", populate)
    async with app.run_test(size=SIZE) as pilot:
        dialog = await open_dialog(pilot)
        sid = hosted.sessions["_sid"]
        policy = (await hosted.engine.get_policy(sid)).to_doc()
        assert "120s left" in screen_text(app)
        app.clock = lambda: FIXED_NOW + timedelta(seconds=100)
        await wait_until(pilot, lambda: "20s left" in screen_text(app))
        app.clock = lambda: FIXED_NOW + timedelta(seconds=121)
        await wait_until(pilot, lambda: not dialog.is_attached)
        assert isinstance(app.screen, ApprovalsScreen)
        assert f"Approval {dialog.approval_id} expired" in toasts(app)
        assert "Nothing was approved or added to the policy" in toasts(app)
        assert (await hosted.engine.get_policy(sid)).to_doc() == policy


@pytest.mark.usefixtures("frozen")
async def test_remember_dialog_closes_when_the_approval_is_decided_elsewhere(tmp_path):
    app, hosted = talon_app(tmp_path / "data", populate)
    async with app.run_test(size=SIZE) as pilot:
        dialog = await open_dialog(pilot)
        await hosted.engine.decide_approval(dialog.approval_id, False, False)
        await wait_until(pilot, lambda: not dialog.is_attached)
        assert f"Approval {dialog.approval_id} is no longer waiting" in toasts(app)
        assert isinstance(app.screen, ApprovalsScreen)
