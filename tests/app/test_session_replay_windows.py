"""The session replay reads its steps in windows (issue 16, scale): ←/→ step exactly one step
across window edges both ways, and a jump lands on its mark from any window, with the lanes of
that window's runs and the diff of a policy change read with it."""

from __future__ import annotations

import pytest
from support.app import settle, talon_app, wait_until
from support.session_log import record

from talon_tui.app.screens import session_replay
from talon_tui.app.screens.session_replay import SessionReplayScreen
from talon_tui.engine.errors import TalonError
from talon_tui.engine.policy.models import ToolIntent

SIZE = (120, 40)


async def _recorded(h) -> None:
    rec = await record(h.engine, h.data_dir / "ws-rec")
    sid = rec.session_id
    for n in range(3):  # more runs after the policy change, a denial in each
        run_id = await h.engine.begin_run(sid, "agent:a", f"more {n}")
        for path in ("work/a.txt", "nope/x", "work/a.txt"):
            intent = ToolIntent(tool="file.read", params={"path": path}, origin="agent")
            try:
                await h.engine.submit(sid, "agent:a", intent, run_id=run_id)
            except TalonError:
                pass  # a denial is part of the recording
        await h.engine.end_run(sid, "agent:a", run_id, "ok")
    await h.engine.durable()
    h.sessions["rec"] = sid


@pytest.mark.slow
@pytest.mark.parametrize("window", [3, 7])
async def test_steps_cross_windows_both_ways_and_jumps_land(tmp_path, monkeypatch, window):
    monkeypatch.setattr(session_replay, "WINDOW", window)
    app, hosted = talon_app(tmp_path / "data", _recorded)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        sid = hosted.sessions["rec"]
        await app.go("session-replay", sid)
        await settle(pilot)
        screen = app.screen
        assert isinstance(screen, SessionReplayScreen)
        await wait_until(pilot, lambda: screen.timeline is not None)
        whole = await hosted.engine.session_timeline(sid, max_markers=10_000)
        every = [m.seq for m in whole.markers]
        assert len(every) > 4 * window
        forward = [screen.current.seq]
        for _ in range(len(every) - 1):
            await pilot.press("right")
            await settle(pilot)
            forward.append(screen.current.seq)
        assert forward == every  # one step at a time, none skipped, none twice
        backward = [screen.current.seq]
        for _ in range(len(every) - 1):
            await pilot.press("left")
            await settle(pilot)
            backward.append(screen.current.seq)
        assert backward == every[::-1]

        # from the start, the last denial is one jump back from the end of the session
        denials = [m.seq for m in whole.markers if m.kind == "denial"]
        await pilot.press("D")  # nothing before the first step
        await settle(pilot)
        assert screen.current.seq == every[0]
        for seq in denials:
            await pilot.press("d")
            await settle(pilot)
            assert screen.current.seq == seq and screen.current.kind == "denial"
            assert screen.current.target  # its intent, read back if it began before the window
            assert screen.current.run_id in {lane.run_id for lane in screen.lanes}
        policies = [m.seq for m in whole.markers if m.kind == "policy"]
        await pilot.press("P")
        await settle(pilot)
        assert screen.current.seq == policies[-1]
        assert screen.policies[policies[-1]].diff  # read with the window it is in
        assert '+          "secret"' in screen._detail().plain


async def test_a_long_what_if_says_how_many_it_does_not_list(tmp_path):
    async def setup(h):
        sid = await h.session("writer", {"version": 1, "overrides": []}, {})
        run_id = await h.engine.begin_run(sid, "agent:a", "many writes")
        for i in range(230):
            intent = ToolIntent(
                tool="file.write", params={"path": f"work/{i}.txt", "content": "x"}, origin="agent"
            )
            try:
                await h.engine.submit(sid, "agent:a", intent, run_id=run_id)
            except TalonError:
                pass  # denied by default
        await h.engine.end_run(sid, "agent:a", run_id, "ok")
        h.sessions["w"] = sid

    app, hosted = talon_app(tmp_path / "data", setup)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await app.go("session-replay", hosted.sessions["w"])
        await settle(pilot)
        screen = app.screen
        assert isinstance(screen, SessionReplayScreen)
        await wait_until(pilot, lambda: screen.timeline is not None)
        allow = {
            "version": 1,
            "overrides": [
                {"tool": "file.write", "allow": True, "constraints": {"roots": ["work"]}}
            ],
        }
        screen.apply_what_if({"label": "writes", "policy": allow})
        await settle(pilot)
        await wait_until(pilot, lambda: screen.what_if is not None)
        text = screen._detail().plain
        assert "what if writes: 230 decision(s) would change" in text
        assert "… 30 more (talon replay --session lists all)" in text
