"""The approvals screen with the approval caps full (issue 15, item 7): every session holds as
many waiting intents as it may, each with params near the byte budget, and the screen still
opens and moves between rows quickly. The engine refuses one more intent at once."""

from __future__ import annotations

import asyncio
import time

import pytest
from support.app import settle, talon_app, wait_until
from textual.widgets import DataTable

from talon_tui.app.screens.approvals import ApprovalsScreen
from talon_tui.engine.errors import ErrorCode, TalonError
from talon_tui.engine.policy.models import ToolIntent
from talon_tui.engine.runtime.limits import (
    DEFAULT_APPROVAL_PARAMS_BYTES,
    DEFAULT_APPROVALS_PER_SESSION,
)

SIZE = (120, 40)
SESSIONS = 3
POLICY = {
    "version": 1,
    "overrides": [
        {
            "tool": "file.write",
            "allow": True,
            "approval": "always",
            "constraints": {"roots": ["drafts"], "max_bytes": 1 << 20},
        }
    ],
}
# each intent's params just under its share of the session's byte budget
# (a control character every 100: canonical JSON writes it as 6 bytes, the screen escapes it)
CONTENT = ("z" * 99 + "\x1b") * (
    (DEFAULT_APPROVAL_PARAMS_BYTES // DEFAULT_APPROVALS_PER_SESSION - 200) // 105
)


@pytest.mark.slow
async def test_approvals_screen_stays_fast_with_the_caps_full(tmp_path):
    async def setup(h):
        for s in range(SESSIONS):
            sid = await h.session(f"s{s}", POLICY)
            for i in range(DEFAULT_APPROVALS_PER_SESSION):
                intent = ToolIntent(
                    tool="file.write",
                    params={"path": f"drafts/{i}.md", "content": CONTENT},
                    origin="agent",
                )
                # two agent keys: each holds its own cap (16), together the session's (32)
                h.tasks.append(
                    asyncio.ensure_future(h.engine.submit(sid, f"agent:{s}-{i % 2}", intent))
                )

    app, hosted = talon_app(tmp_path / "data", setup)
    full = SESSIONS * DEFAULT_APPROVALS_PER_SESSION
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await wait_until(pilot, lambda: len(hosted.engine.approvals) == full)
        # the cap is full: one more is refused at once, nothing is queued
        sid = hosted.sessions["s0"]
        more = ToolIntent(tool="file.write", params={"path": "drafts/x.md", "content": "x"})
        with pytest.raises(TalonError) as refused:
            await asyncio.wait_for(hosted.engine.submit(sid, "agent:s0-0", more), timeout=5)
        assert refused.value.code == ErrorCode.RATE_LIMITED
        assert len(hosted.engine.approvals) == full

        started = time.perf_counter()
        await pilot.press("3")
        await settle(pilot)
        assert isinstance(app.screen, ApprovalsScreen)
        table = app.screen.query_one(DataTable)
        await wait_until(pilot, lambda: table.row_count == full)
        opened = time.perf_counter() - started
        started = time.perf_counter()
        for _ in range(20):
            await pilot.press("down")
        await settle(pilot)
        moved = (time.perf_counter() - started) / 20
        assert table.cursor_row == 20
        # what grows with the waiting intents and their params: the rows and the detail pane
        screen = app.screen
        started = time.perf_counter()
        screen._show()
        rows = time.perf_counter() - started
        started = time.perf_counter()
        for _ in range(10):
            screen._show_detail()
        detail = (time.perf_counter() - started) / 10
        # generous bounds for a shared, loaded 2-core machine (most of a key press is
        # Textual repainting 120x40 cells, the same with one approval or a hundred)
        assert opened < 10.0, f"the approvals screen took {opened:.2f} s to open"
        assert moved < 1.0, f"moving one row took {moved * 1000:.0f} ms"
        assert rows < 0.5, f"listing {full} approvals took {rows * 1000:.0f} ms"
        assert detail < 0.05, f"the detail of a 256 KiB intent took {detail * 1000:.0f} ms"
