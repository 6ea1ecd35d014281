"""The console shows the tool pool's limits and use (issue 9, item 6): the dashboard's agents
tile reads `tools running/threads`, with `+N` for calls waiting for a slot."""

from __future__ import annotations

import asyncio
import os
import shutil

import pytest
from support.app import screen_text, settle, talon_app

from talon_tui.app.screens.dashboard import DashboardScreen
from talon_tui.engine.policy.models import ToolIntent

SLEEP = os.path.realpath(shutil.which("sleep") or "/bin/sleep")
POLICY = {
    "version": 1,
    "overrides": [
        {
            "tool": "shell.exec",
            "allow": True,
            "approval": "never",
            "constraints": {"commands": [SLEEP]},
        }
    ],
}


async def _until(pilot, condition, timeout: float = 60.0) -> None:
    """Wait (in real time: the sleeps run in tool threads) until `condition()` holds."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "condition not reached"
        await settle(pilot)
        await asyncio.sleep(0.05)


@pytest.mark.slow
async def test_dashboard_shows_tools_running_and_queued(tmp_path):
    async def setup(h):
        sid = await h.session("busy", POLICY)
        for _ in range(6):
            intent = ToolIntent(tool="shell.exec", params={"argv": [SLEEP, "3"]})
            h.tasks.append(asyncio.ensure_future(h.engine.submit(sid, "agent:busy", intent)))

    app, hosted = talon_app(tmp_path / "data", setup, pipe=False)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        await _until(pilot, lambda: hosted.engine.tools.running == 4)
        assert isinstance(app.screen, DashboardScreen)
        await app.screen.load()
        await settle(pilot)
        # the session holds its share (4 of 16 threads); 2 more wait
        assert "tools 4/16+2" in screen_text(app)
        await _until(pilot, lambda: all(t.done() for t in hosted.tasks))
        await app.screen.load()
        await settle(pilot)
        assert "tools 0/16" in screen_text(app)
