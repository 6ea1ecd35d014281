"""Session replay, run comparison and approval previews in the console (issue 16), over a
real Engine with a recorded session: two runs, a denial, an approval wait and a policy change
between the runs."""

from __future__ import annotations

import asyncio

from support.app import screen_text, settle, talon_app, wait_until
from support.session_log import WHAT_IF, record

from talon_tui.app.screens.approvals import ApprovalsScreen
from talon_tui.app.screens.confirm import ConfirmScreen
from talon_tui.app.screens.run_compare import RunCompareScreen
from talon_tui.app.screens.session_detail import SessionDetailScreen
from talon_tui.app.screens.session_replay import ZOOMS, SessionReplayScreen
from talon_tui.engine.policy.models import ToolIntent

SIZE = (120, 40)


async def _recorded(h) -> None:
    rec = await record(h.engine, h.data_dir / "ws-rec")
    h.sessions["rec"] = rec.session_id
    for i, run_id in enumerate(rec.runs):
        h.sessions[f"run{i}"] = run_id


async def test_session_timeline_steps_zooms_and_jumps(tmp_path):
    app, hosted = talon_app(tmp_path / "data", _recorded)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await app.go("session", hosted.sessions["rec"])
        await settle(pilot)
        assert isinstance(app.screen, SessionDetailScreen)
        await pilot.press("R")
        await settle(pilot)
        screen = app.screen
        assert isinstance(screen, SessionReplayScreen)
        await wait_until(pilot, lambda: screen.timeline is not None)
        text = screen_text(app)
        assert hosted.sessions["run0"] in text and hosted.sessions["run1"] in text
        assert "2 runs" in text and "reads the log, nothing executes" in text
        # the first step is the session's first policy; → steps exactly one step on
        assert screen.current.kind == "policy"
        first = screen.current.seq
        await pilot.press("right")
        await settle(pilot)
        assert screen.current.seq > first and screen.current.kind == "decision"
        await pilot.press("left")
        await settle(pilot)
        assert screen.current.seq == first
        # jumps: next denial, next approval (its wait), next policy change (its diff)
        await pilot.press("d")
        await settle(pilot)
        assert screen.current.kind == "denial" and screen.current.target == "secret/s.txt"
        assert "why" in screen_text(app)
        await pilot.press("a")
        await settle(pilot)
        assert screen.current.kind == "approval" and screen.current.wait_ms is not None
        assert "waited" in screen_text(app)
        await pilot.press("p")
        await settle(pilot)
        assert screen.current.kind == "policy" and screen.current.run_id is None
        assert "policy set by operator" in screen_text(app)
        assert '+          "secret"' in screen._detail().plain  # the diff, scrolled below
        first_approval = await hosted.engine.session_jump(hosted.sessions["rec"], "approval", -1)
        assert first_approval is not None and screen.current.seq > first_approval
        assert screen.timeline.counts == {"denial": 1, "approval": 1, "policy": 2}
        await pilot.press("D")
        await settle(pilot)
        assert screen.current.kind == "denial"
        # executions show the output check
        while screen.current.kind != "execution":
            await pilot.press("right")
            await settle(pilot)
        assert "✓ recorded output matches its sha256" in screen_text(app)
        # zoom: session -> run -> minute and back out
        for level in (1, 2, 2):
            await pilot.press("z")
            await settle(pilot)
            assert ZOOMS[screen.zoom] == ZOOMS[level]
            assert f"zoom {ZOOMS[level]}" in screen_text(app)
        await pilot.press("Z")
        await settle(pilot)
        assert ZOOMS[screen.zoom] == "run"


async def test_session_what_if_grouped_by_override(tmp_path):
    app, hosted = talon_app(tmp_path / "data", _recorded)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await app.go("session-replay", hosted.sessions["rec"])
        await settle(pilot)
        screen = app.screen
        assert isinstance(screen, SessionReplayScreen)
        screen.apply_what_if({"label": "reads only", "policy": WHAT_IF})
        await settle(pilot)
        await wait_until(pilot, lambda: screen.what_if is not None)
        text = screen_text(app)
        assert "what if reads only: 4 decision(s) would change" in text
        assert "override #0 file.read: 1" in text
        assert "no override (deny by default): 3" in text


async def test_compare_two_runs_from_the_session(tmp_path):
    app, hosted = talon_app(tmp_path / "data", _recorded)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await app.go("session", hosted.sessions["rec"])
        await settle(pilot)
        screen = app.screen
        assert isinstance(screen, SessionDetailScreen)
        await pilot.press("c")
        first = screen.selected_run()
        await pilot.press("down")
        await settle(pilot)
        second = screen.selected_run()
        assert {first, second} == {hosted.sessions["run0"], hosted.sessions["run1"]}
        await pilot.press("c")
        await settle(pilot)
        cmp = app.screen
        assert isinstance(cmp, RunCompareScreen)
        await wait_until(pilot, lambda: cmp.comparison is not None)
        text = screen_text(app)
        assert "3 of 4 steps differ" in text
        assert "decision, output" in text and "missing" in text


POLICY = {
    "version": 1,
    "overrides": [
        {
            "tool": "file.write",
            "allow": True,
            "approval": "always",
            "constraints": {"roots": ["drafts"], "max_bytes": 65536},
        }
    ],
}


async def test_write_preview_taken_again_at_decision(tmp_path):
    async def setup(h):
        sid = await h.session("writer", POLICY, {"drafts/plan.md": "one\ntwo\n"})
        intent = ToolIntent(
            tool="file.write", params={"path": "drafts/plan.md", "content": "one\nTWO\n"}
        )
        h.tasks.append(asyncio.ensure_future(h.engine.submit(sid, "agent:w", intent)))

    app, hosted = talon_app(tmp_path / "data", setup)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await wait_until(pilot, lambda: len(hosted.engine.approvals) == 1)
        await pilot.press("3")
        await settle(pilot)
        screen = app.screen
        assert isinstance(screen, ApprovalsScreen)
        await wait_until(pilot, lambda: screen.preview is not None)
        text = screen_text(app)
        assert "-two" in text and "+TWO" in text and "total size 8 bytes" in text
        # the file changes between the preview and the decision: y shows the new effect first
        target = hosted.data_dir / "ws" / "0" / "drafts" / "plan.md"
        target.write_text("one\ntwo\nthree\n")
        await pilot.press("y")
        await settle(pilot)
        await wait_until(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        assert "-three" in screen_text(app) and "effect changed" in screen_text(app).lower()
        assert target.read_text() == "one\ntwo\nthree\n"  # nothing written before the answer
        await pilot.press("y")
        await settle(pilot)
        await wait_until(pilot, lambda: target.read_text() == "one\nTWO\n")
