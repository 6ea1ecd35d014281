"""The dashboard's audit tile says how long ago the log was last signed, and keeps counting
(issue 12: checkpoints are signed every 10 s, so a growing age means the signer stopped)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from support.app import FIXED_NOW, frozen, screen_text, settle, talon_app, wait_until  # noqa: F401

from talon_tui.app.screens.dashboard import DashboardScreen


@pytest.mark.usefixtures("frozen")
async def test_chain_tile_shows_the_age_of_the_last_signature(tmp_path):
    app, _ = talon_app(tmp_path / "data", pipe=False)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        dashboard = app.screen
        assert isinstance(dashboard, DashboardScreen) and dashboard.status is not None
        if dashboard.status.last_checkpoint_seq is None:
            assert "not signed yet" in screen_text(app)
        signed = FIXED_NOW - timedelta(seconds=4)
        dashboard.status.last_checkpoint_seq = 7
        dashboard.status.last_checkpoint_ts = signed.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        await wait_until(pilot, lambda: "signed 4s ago (16:59:56)" in screen_text(app))
        app.clock = lambda: FIXED_NOW + timedelta(seconds=90)
        await wait_until(pilot, lambda: "signed 1m ago" in screen_text(app))
