"""Issue 9.4 in the console: the policy editor shows and edits an override's secret grants
(chips, like domains), a new grant is a dangerous power the operator confirms, and a denial's
"fix safely" that grants a secret is added as its own override, never merged."""

from __future__ import annotations

import copy

import pytest
from support.policy_editor import (
    BASE_POLICY,
    EditorApp,
    back_to_editor,
    loaded,
    make_workspace,
    open_form,
    set_tool,
    shown,
    type_chip,
    wait_for,
)
from textual.widgets import DataTable

from talon_tui.app.screens.confirm import ConfirmScreen
from talon_tui.app.widgets.chips import Chip, ChipInput
from talon_tui.app.widgets.override_form import OverrideFormScreen, constraint_summary
from talon_tui.app.widgets.policy_diff import PolicyDiffScreen, danger_consequences
from talon_tui.engine.engine import Engine
from talon_tui.engine.policy import evaluate as policy_engine
from talon_tui.engine.policy.models import ToolIntent

SIZE = (120, 40)


@pytest.fixture
async def world(tmp_path):
    ws = make_workspace(tmp_path)
    engine = Engine(tmp_path / "data")
    await engine.start()
    session, _ = await engine.create_session("demo", str(ws), copy.deepcopy(BASE_POLICY))
    yield engine, session.id, tmp_path
    await engine.stop()


@pytest.mark.slow
async def test_grant_a_secret_through_the_form_confirm_and_save(world):
    engine, sid, _ = world
    app = EditorApp(engine, sid)
    async with app.run_test(size=SIZE) as pilot:
        editor = await loaded(pilot)
        form = await open_form(pilot)
        await set_tool(pilot, form, "http.fetch")
        assert form.query_one("#g-secrets").display
        await type_chip(pilot, form, "domains", "api.example.com")
        chips = await type_chip(pilot, form, "secrets", "gh_token")
        assert chips.values == ["gh_token"]
        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen), "confirmation")
        await shown(pilot, "send the secret gh_token to api.example.com")
        await pilot.press("y")
        editor = await back_to_editor(pilot)
        await wait_for(pilot, lambda: editor.dirty, "the change")
        added = editor.policy_doc["overrides"][-1]
        assert added["constraints"]["secrets"] == ["gh_token"]
        assert added["constraints"]["domains"] == ["api.example.com"]
        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: isinstance(app.screen, PolicyDiffScreen), "the diff")
        await shown(pilot, "gh_token")
        await pilot.press("y")
        await wait_for(pilot, lambda: not editor.dirty, "the save")
    policy = await engine.get_policy(sid)
    assert policy.overrides[-1].constraints.secrets == ["gh_token"]


@pytest.mark.slow
async def test_remove_a_grant_with_its_chip(world):
    engine, sid, _ = world
    doc = copy.deepcopy(BASE_POLICY)
    doc["overrides"].append(
        {
            "tool": "http.fetch",
            "constraints": {"domains": ["api.example.com"], "secrets": ["gh_token", "npm"]},
        }
    )
    await engine.set_policy(sid, doc)
    app = EditorApp(engine, sid)
    async with app.run_test(size=SIZE) as pilot:
        editor = await loaded(pilot)
        await shown(pilot, "secrets gh_token, npm")
        editor.query_one("#overrides", DataTable).move_cursor(row=1)
        form = await open_form(pilot, "e")
        chips = form.query_one("#f-secrets", ChipInput)
        assert chips.values == ["gh_token", "npm"]
        first = chips.query(Chip).first()
        first.focus()
        await pilot.press("delete")
        await pilot.pause()
        assert chips.values == ["npm"]
        await pilot.press("ctrl+s")
        editor = await back_to_editor(pilot)
        assert editor.policy_doc["overrides"][1]["constraints"]["secrets"] == ["npm"]


@pytest.mark.slow
async def test_bad_secret_name_is_shown_under_its_field(world):
    engine, sid, _ = world
    app = EditorApp(engine, sid)
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot)
        form = await open_form(pilot)
        await set_tool(pilot, form, "http.fetch")
        await type_chip(pilot, form, "domains", "api.example.com")
        await type_chip(pilot, form, "secrets", "../etc/passwd")
        await pilot.press("ctrl+s")
        await pilot.pause()
        assert isinstance(app.screen, OverrideFormScreen)
        assert form.query_one("#err-secrets").display


@pytest.mark.slow
async def test_fix_that_grants_a_secret_is_its_own_override(world):
    engine, sid, _ = world
    doc = copy.deepcopy(BASE_POLICY)
    doc["overrides"].append({"tool": "http.fetch", "constraints": {"domains": ["*.example.com"]}})
    await engine.set_policy(sid, doc)
    intent = ToolIntent(
        tool="http.fetch",
        params={
            "url": "https://api.example.com/",
            "headers": {"Authorization": {"secret_ref": "gh_token"}},
        },
    )
    decision = policy_engine.evaluate(intent, (await engine.get_policy(sid)))
    assert decision.code == "CONSTRAINT_VIOLATION"
    fix = decision.suggested_fix
    app = EditorApp(engine, sid)
    async with app.run_test(size=SIZE) as pilot:
        editor = await loaded(pilot)
        editor.fix_safely(fix)
        form = await wait_for(
            pilot,
            lambda: app.screen if isinstance(app.screen, OverrideFormScreen) else None,
            "the form",
        )
        await shown(pilot, "Added as its own override")
        del form
        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen), "confirmation")
        await pilot.press("y")
        editor = await back_to_editor(pilot)
        await wait_for(pilot, lambda: editor.dirty, "the change")
        overrides = editor.policy_doc["overrides"]
        # the wildcard override is untouched: the secret never reaches *.example.com
        assert overrides[1]["constraints"]["domains"] == ["*.example.com"]
        assert overrides[1]["constraints"]["secrets"] == []
        assert overrides[2]["constraints"]["domains"] == ["api.example.com"]
        assert overrides[2]["constraints"]["secrets"] == ["gh_token"]


def test_summary_and_consequences_name_the_grant():
    o = {
        "tool": "http.fetch",
        "allow": True,
        "constraints": {"domains": ["a.example"], "secrets": ["tok"], "methods": ["GET"]},
    }
    assert "secrets tok" in constraint_summary(o).plain
    said = danger_consequences([], [o])
    assert any("secret tok to a.example" in s for s in said)
    assert danger_consequences([o], [o]) == []


@pytest.mark.slow
async def test_domain_chip_shows_the_form_matching_uses(world):
    """Issue 15.6 in the console: a full-width or look-alike entry shows what it matches."""
    engine, sid, _ = world
    app = EditorApp(engine, sid)
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot)
        form = await open_form(pilot)
        await set_tool(pilot, form, "http.fetch")
        chips = form.query_one("#f-domains", ChipInput)
        chips.input.focus()
        await pilot.press(*"*.github.ｉｏ")
        await shown(pilot, "matched as *.github.io")
        chips.input.value = ""
        await pilot.press(*"аррӏе.com")
        await shown(pilot, "matched as xn--80ak6aa92e.com")
