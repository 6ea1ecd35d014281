"""The run timeline's step detail view (every value in full, literal, capped for 1 MB values)
and the session detail's Runs and Audit tabs opening their detail views."""

from __future__ import annotations

import time

import pytest
from support.app import (
    HOSTILE_ANSI,
    HOSTILE_BIG,
    HOSTILE_LINK,
    HOSTILE_MARKUP,
    frozen,  # noqa: F401
    settle,
    talon_app,
    wait_until,
)
from textual.widgets import TabbedContent, TextArea

from talon_tui.app.screens.audit import EventDetailScreen
from talon_tui.app.screens.run_timeline import (
    FULL_MAX,
    RunTimelineScreen,
    Step,
    StepDetailScreen,
    full_value,
    step_document,
)
from talon_tui.app.screens.session_detail import SessionDetailScreen
from talon_tui.app.widgets.audit_list import AuditList
from talon_tui.app.widgets.runs_list import RunsList
from talon_tui.client import AsyncAgentClient, PolicyDeniedError

SIZE = (120, 40)
HOSTILE = HOSTILE_MARKUP + HOSTILE_LINK + HOSTILE_ANSI


def test_full_value_is_literal_and_caps_a_megabyte_with_a_note():
    text = full_value(HOSTILE + HOSTILE_BIG, "run_1")
    assert HOSTILE_MARKUP in text.replace("\n", "") and "\\x1b[2J" in text
    assert "\x1b" not in text
    assert FULL_MAX - len(HOSTILE) <= text.count("A") < FULL_MAX
    assert f"… {len(HOSTILE_BIG) + len(HOSTILE) - FULL_MAX:,} more characters" in text
    assert "talon audit export --run run_1" in text
    assert max(len(line) for line in text.split("\n")[:-1]) <= 100
    small = full_value({"b": 1, "a": "x"}, "run_1")
    assert small == '{\n  "a": "x",\n  "b": 1\n}'


def test_step_document_has_every_value():
    step = Step(intent_id="int_1", seq=1, ts="t", tool="file.read", params={"path": "p" * 5000})
    step.reason, step.decision, step.status, step.output = "r" * 3000, "ALLOW", "ok", {"n": 1}
    doc = step_document(step, "run_1")
    flat = doc.replace("\n", "")
    assert "p" * 5000 in flat and "r" * 3000 in flat
    assert "── params.path" in doc and "── output (as recorded)" in doc


@pytest.mark.slow
@pytest.mark.usefixtures("frozen")
async def test_enter_on_a_step_shows_the_full_values_and_a_1mb_value_stays_fast(tmp_path):
    async def setup(h):
        await h.session("reader", {"version": 1, "overrides": []})

    app, hosted = talon_app(tmp_path / "data", setup)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        agent = await AsyncAgentClient.connect(
            hosted.keys["reader"], socket_path=hosted.socket_path
        )
        long_path = "notes/" + HOSTILE + "B" * 4000
        with pytest.raises(PolicyDeniedError) as denied:
            await agent.intent("file.read", {"path": long_path})
        with pytest.raises(PolicyDeniedError):
            await agent.intent(
                "file.write",
                {"path": "x.md", "content": HOSTILE_BIG[: (1 << 20) - 2000]},
                run_id=None,
            )
        await agent.close()
        await app.push_screen(RunTimelineScreen(hosted.engine, denied.value.run_id))
        await wait_until(pilot, lambda: bool(app.screen.steps))
        await pilot.press("enter")
        await wait_until(pilot, lambda: isinstance(app.screen, StepDetailScreen))
        text = app.screen.query_one(TextArea).text
        assert "B" * 4000 in text.replace("\n", "")
        assert HOSTILE_MARKUP in text and "\\x1b[2J" in text and "\x1b" not in text
        await pilot.press("escape")
        await settle(pilot)
        assert isinstance(app.screen, RunTimelineScreen)

        # the 1 MB content of the other run: capped, with the note, and quick to open
        runs = await hosted.engine.list_runs(hosted.sessions["reader"])
        big_run = next(r.run_id for r in runs if r.run_id != denied.value.run_id)
        await app.push_screen(RunTimelineScreen(hosted.engine, big_run))
        await wait_until(pilot, lambda: bool(app.screen.steps))
        started = time.perf_counter()
        await pilot.press("enter")
        await wait_until(pilot, lambda: isinstance(app.screen, StepDetailScreen))
        await pilot.press("pagedown", "ctrl+end")
        await settle(pilot)
        assert time.perf_counter() - started < 5  # generous on 2 shared cores; ~0.2 s alone
        text = app.screen.query_one(TextArea).text
        assert "more characters not shown" in text and len(text) < 2 * FULL_MAX


@pytest.mark.slow
@pytest.mark.usefixtures("frozen")
async def test_session_detail_runs_and_audit_tabs_open_their_details(tmp_path):
    async def setup(h):
        await h.session("reader", {"version": 1, "overrides": []})

    app, hosted = talon_app(tmp_path / "data", setup)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        agent = await AsyncAgentClient.connect(
            hosted.keys["reader"], socket_path=hosted.socket_path
        )
        with pytest.raises(PolicyDeniedError) as denied:
            await agent.intent("file.read", {"path": "a.md"})
        sid = hosted.sessions["reader"]
        await app.go("session", sid)
        await settle(pilot)
        screen = app.screen
        assert isinstance(screen, SessionDetailScreen)
        runs = screen.query_one(RunsList)
        await wait_until(pilot, lambda: bool(runs.rows))
        # live: a new run appears at the top without a reload
        with pytest.raises(PolicyDeniedError) as again:
            await agent.intent("file.read", {"path": "b.md"})
        await wait_until(pilot, lambda: runs.rows[0].run_id == again.value.run_id)
        await pilot.press("G", "enter")
        await wait_until(pilot, lambda: isinstance(app.screen, RunTimelineScreen))
        assert app.screen.run_id == denied.value.run_id
        await pilot.press("escape")
        await settle(pilot)
        # `/` filters the runs
        await pilot.press("slash", *again.value.run_id[-6:])
        await settle(pilot)
        assert [r.run_id for r in runs.rows] == [again.value.run_id]
        await pilot.press("escape")
        # the Audit tab: enter shows the event JSON
        await pilot.press("right_square_bracket", "right_square_bracket")
        await settle(pilot)
        assert screen.query_one(TabbedContent).active == "audit"
        audit = screen.query_one(AuditList)
        await wait_until(pilot, lambda: audit.complete and len(audit.offsets) > 0)
        audit.focus()
        await pilot.press("enter")
        await wait_until(pilot, lambda: isinstance(app.screen, EventDetailScreen))
        assert app.screen.event["session_id"] == sid
        await agent.close()
