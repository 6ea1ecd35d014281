"""A closed session's policy opens read-only and says why, instead of taking edits up to the
save and then refusing them (issue 12, defect 8)."""

from __future__ import annotations

import copy

import pytest
from support.policy_editor import BASE_POLICY, EditorApp, loaded, make_workspace, shown, wait_for

from talon_tui.app.messages import EngineEvent
from talon_tui.app.widgets.override_form import OverrideFormScreen
from talon_tui.engine.api import BusMessage
from talon_tui.engine.engine import Engine

SIZE = (120, 40)


@pytest.fixture
async def world(tmp_path):
    engine = Engine(tmp_path / "data")
    await engine.start()
    session, _ = await engine.create_session(
        "gone", str(make_workspace(tmp_path)), copy.deepcopy(BASE_POLICY)
    )
    yield engine, session.id
    await engine.stop()


async def test_closed_session_opens_read_only_and_says_why(world):
    engine, sid = world
    await engine.close_session(sid)
    app = EditorApp(engine, sid)
    async with app.run_test(size=SIZE) as pilot:
        editor = await loaded(pilot)
        assert editor.readonly
        text = await shown(pilot, "READ-ONLY: session closed", "this session is closed")
        footer = text.splitlines()[-1]
        for word in ("add", "edit", "tighten", "save"):
            assert f" {word} " not in footer + " "
        for key in ("a", "e", "d", "space", "t", "ctrl+s"):
            await pilot.press(key)
            await pilot.pause()
            assert app.screen is editor and not editor.dirty
        await pilot.press("enter")  # shows the override, read-only
        form = await wait_for(
            pilot,
            lambda: app.screen if isinstance(app.screen, OverrideFormScreen) else None,
            "the read-only view",
        )
        assert form.check_action("apply", ()) is False


async def test_closing_the_session_while_editing_turns_the_editor_read_only(world):
    engine, sid = world
    app = EditorApp(engine, sid)
    async with app.run_test(size=SIZE) as pilot:
        editor = await loaded(pilot)
        await pilot.press("space")  # an unsaved change
        await wait_for(pilot, lambda: editor.dirty, "the change")
        await engine.close_session(sid)
        # the app shell forwards the engine's bus to the screen; this app shows the editor alone
        closed = await engine.query_audit(session_id=sid, types=["session.closed"])
        editor.post_message(EngineEvent(BusMessage(kind="audit", payload=closed[-1])))
        await wait_for(pilot, lambda: editor.readonly, "the close to reach the editor")
        await shown(pilot, "READ-ONLY: session closed", "this session is closed")
        assert not editor.dirty  # the change that can never be saved is not shown as pending
