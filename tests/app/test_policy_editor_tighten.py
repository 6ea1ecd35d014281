"""One-key tighten works through every fixable warning of the override under the cursor, says
how many remain and what each press removed, and never reads as a grant (issue 12, defects 4
and 5)."""

from __future__ import annotations

import copy
import json

import pytest
from support.pipe import REPO
from support.policy_editor import EditorApp, loaded, make_workspace, screen_text, wait_for
from textual.widgets import DataTable

from talon_tui.app.screens.confirm import ConfirmScreen
from talon_tui.app.widgets.policy_diff import danger_consequences, narrowing_summary
from talon_tui.engine.engine import Engine

SIZE = (120, 40)
RISKY = json.loads((REPO / "sample_policies" / "risky.json").read_text())


@pytest.fixture
async def risky(tmp_path):
    ws = make_workspace(tmp_path)
    engine = Engine(tmp_path / "data")
    await engine.start()
    session, _ = await engine.create_session("risky", str(ws), copy.deepcopy(RISKY))
    yield engine, session.id
    await engine.stop()


def fixable(editor, index: int) -> list:
    return [a for a in editor.advice if a.override_index == index and a.tightened is not None]


async def press_t(pilot, editor) -> str:
    before = copy.deepcopy(editor.policy_doc)
    await pilot.press("t")
    await wait_for(
        pilot,
        lambda: editor.policy_doc != before or isinstance(pilot.app.screen, ConfirmScreen),
        "the tightening",
    )
    assert not isinstance(pilot.app.screen, ConfirmScreen), screen_text(pilot.app)
    return str(editor.query_one("#editor-status").render())


async def select_override(pilot, editor, index: int) -> None:
    table = editor.query_one("#overrides", DataTable)
    table.focus()
    table.move_cursor(row=index, animate=False)
    await pilot.pause()


@pytest.mark.slow
async def test_t_applies_every_fixable_warning_of_the_override_in_turn(risky):
    engine, sid = risky
    app = EditorApp(engine, sid)
    async with app.run_test(size=SIZE) as pilot:
        editor = await loaded(pilot)
        await select_override(pilot, editor, 0)
        assert len(fixable(editor, 0)) == 3  # the root '/', max_bytes, ttl_seconds
        said = []
        for left in (2, 1, 0):
            said.append(await press_t(pilot, editor))
            assert len(fixable(editor, 0)) == left
        c = editor.policy_doc["overrides"][0]["constraints"]
        assert c["roots"] == ["~/projects"]
        assert c["max_bytes"] == 1048576 and c["ttl_seconds"] == 60
        assert "roots: removes /" in said[0] and "2 more warnings on #0 t can fix" in said[0]
        assert "max_bytes: 104,857,600 → 1,048,576" in said[1] and "1 more warning" in said[1]
        assert "nothing more t can fix on #0" in said[2] and "by hand" in said[2]
        await pilot.press("t")  # the home-directory root: only a hand edit helps
        await pilot.pause()
        status = str(editor.query_one("#editor-status").render())
        assert "No one-key tightening left for override #0" in status


@pytest.mark.slow
async def test_tightening_http_fetch_says_what_it_removes_and_asks_nothing(risky):
    engine, sid = risky
    app = EditorApp(engine, sid)
    async with app.run_test(size=SIZE) as pilot:
        editor = await loaded(pilot)
        await select_override(pilot, editor, 2)
        said = [await press_t(pilot, editor) for _ in range(len(fixable(editor, 2)))]
        assert "domains: removes *.com" in said[0]
        assert fixable(editor, 2) == []
        c = editor.policy_doc["overrides"][2]["constraints"]
        assert c["domains"] == ["*.example.com"] and c["methods"] == ["GET"]
        assert c["schemes"] == ["https"] and c["allow_private_addresses"] is False


def test_narrowing_grants_nothing_new_and_is_described_as_a_removal():
    http = RISKY["overrides"][2]
    narrower = copy.deepcopy(http)
    narrower["constraints"]["domains"] = ["*.example.com", "10.0.0.5"]
    assert danger_consequences([http], [narrower]) == []
    assert narrowing_summary(http, narrower) == ["domains: removes *.com"]
    docker = RISKY["overrides"][3]
    read_only = copy.deepcopy(docker)
    read_only["constraints"]["mounts"][0]["read_only"] = True
    assert danger_consequences([docker], [read_only]) == []
    # widening still warns, once per new power
    assert len(danger_consequences([read_only], [docker])) == 1
    assert "change and delete" in danger_consequences([read_only], [docker])[0]
    wider = copy.deepcopy(http)
    wider["constraints"]["domains"].append("internal.corp")
    assert ["internal.corp" in line for line in danger_consequences([http], [wider])] == [True]
