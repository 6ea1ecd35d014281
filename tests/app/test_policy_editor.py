"""Pilot tests of the policy editor against the real in-process Engine."""

from __future__ import annotations

import copy
import re

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
from textual.widgets import DataTable, OptionList

from talon_tui.app.screens.confirm import ConfirmScreen
from talon_tui.app.screens.policy_editor import PolicyEditorScreen
from talon_tui.app.widgets.advisor_panel import AdvisorPanel
from talon_tui.app.widgets.chips import ChipInput
from talon_tui.app.widgets.override_form import OverrideFormScreen
from talon_tui.app.widgets.policy_diff import (
    PolicyDiffScreen,
    SimulationScreen,
    danger_consequences,
)
from talon_tui.engine.engine import Engine
from talon_tui.engine.errors import PolicyDenied
from talon_tui.engine.policy.evaluate import evaluate
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


async def policy_updates(engine, session_id):
    return [
        e
        for e in await engine.query_audit(session_id=session_id, types=["policy.updated"])
        if e["type"] == "policy.updated"
    ]


# --------------------------------------------------------------------------- add and save


@pytest.mark.slow
async def test_add_override_through_form_and_save(world):
    engine, sid, tmp_path = world
    before = len(await policy_updates(engine, sid))
    app = EditorApp(engine, sid)
    async with app.run_test(size=SIZE) as pilot:
        editor = await loaded(pilot)
        assert editor.query_one("#overrides", DataTable).row_count == 1
        form = await open_form(pilot)
        chips = await type_chip(pilot, form, "roots", "docs")
        assert chips.values == ["docs"]
        await pilot.press("ctrl+s")
        editor = await back_to_editor(pilot)
        assert editor.dirty
        assert editor.query_one("#overrides", DataTable).row_count == 2
        await shown(pilot, "unsaved changes")

        await pilot.press("ctrl+s")
        diff = await wait_for(
            pilot,
            lambda: app.screen if isinstance(app.screen, PolicyDiffScreen) else None,
            "the diff",
        )
        body = await shown(pilot, "saved policy", "new policy")
        assert re.search(r'│\+\s+"docs"', body), body
        assert "saved policy" in body and "new policy" in body
        del diff
        await pilot.press("y")
        await wait_for(pilot, lambda: not editor.dirty, "the save")

    policy = await engine.get_policy(sid)
    assert [o.constraints.roots for o in policy.overrides] == [["work"], ["docs"]]
    updates = await policy_updates(engine, sid)
    assert len(updates) == before + 1
    assert updates[-1]["data"]["actor"] == "operator"
    assert updates[-1]["data"]["policy"] == policy.to_doc()

    # On disk: a fresh engine on the same data dir reads the saved policy.
    await engine.stop()
    again = Engine(tmp_path / "data")
    await again.start()
    try:
        assert (await again.get_policy(sid)).to_doc() == policy.to_doc()
    finally:
        await again.stop()


@pytest.mark.slow
async def test_blank_allowlist_is_refused_and_policy_unchanged(world):
    engine, sid, _ = world
    saved = (await engine.get_policy(sid)).to_doc()
    app = EditorApp(engine, sid)
    async with app.run_test(size=SIZE) as pilot:
        editor = await loaded(pilot)
        form = await open_form(pilot)
        await pilot.press("ctrl+s")
        await pilot.pause()
        assert app.screen is form, "a blank allowlist must not leave the form"
        error = form.query_one("#err-roots")
        assert error.display
        await shown(pilot, "roots must not be empty")

        # Emptying an existing override's allowlist is refused the same way.
        await pilot.press("escape")
        await back_to_editor(pilot)
        form = await open_form(pilot, "e")
        chip = form.query_one("#f-roots", ChipInput).query(".chip").first()
        chip.focus()
        await pilot.press("delete")
        await pilot.pause()
        assert form.query_one("#f-roots", ChipInput).values == []
        await pilot.press("ctrl+s")
        await pilot.pause()
        assert app.screen is form
        assert form.query_one("#err-roots").display
        await pilot.press("escape")
        await back_to_editor(pilot)
        assert not editor.dirty
        assert editor.policy_doc == saved
    assert (await engine.get_policy(sid)).to_doc() == saved


@pytest.mark.slow
async def test_typing_a_url_proposes_its_exact_host(world):
    engine, sid, _ = world
    app = EditorApp(engine, sid)
    async with app.run_test(size=SIZE) as pilot:
        editor = await loaded(pilot)
        form = await open_form(pilot)
        await set_tool(pilot, form, "http.fetch")
        chips = form.query_one("#f-domains", ChipInput)
        chips.input.focus()
        await pilot.press(*"https://API.Example.com:8443/v1/items?q=1")
        await pilot.pause()
        await shown(pilot, "enter adds its exact host api.example.com")
        await pilot.press("enter")
        await pilot.pause()
        assert chips.values == ["api.example.com"]

        # A URL the fetch check refuses is not turned into an entry.
        await pilot.press(*"http://user@evil.example/")
        await pilot.press("enter")
        await pilot.pause()
        assert chips.values == ["api.example.com"]
        await shown(pilot, "user info")
        chips.input.value = ""
        await pilot.pause()

        await pilot.press("ctrl+s")
        editor = await back_to_editor(pilot)
        added = editor.policy_doc["overrides"][-1]
        assert added["tool"] == "http.fetch"
        assert added["constraints"]["domains"] == ["api.example.com"]
        assert added["constraints"]["methods"] == ["GET"]


@pytest.mark.slow
async def test_ttl_over_300_warns_inline_and_in_the_advisor(world):
    engine, sid, _ = world
    app = EditorApp(engine, sid)
    async with app.run_test(size=SIZE) as pilot:
        editor = await loaded(pilot)
        form = await open_form(pilot, "e")
        warning = form.query_one("#warn-ttl_seconds")
        assert not warning.display
        ttl = form.query_one("#f-ttl_seconds")
        ttl.focus()
        ttl.value = ""
        await pilot.press(*"900")
        await pilot.pause()
        assert warning.display
        await shown(pilot, "tokens would live 900 s (over 300 s)")
        await pilot.press("ctrl+s")
        editor = await back_to_editor(pilot)
        assert editor.policy_doc["overrides"][0]["constraints"]["ttl_seconds"] == 900
        assert any(a.field == "constraints.ttl_seconds" for a in editor.advice)


@pytest.mark.slow
async def test_tighten_applies_the_advisors_override(world):
    engine, sid, _ = world
    policy = copy.deepcopy(BASE_POLICY)
    policy["overrides"][0]["constraints"]["ttl_seconds"] = 1200
    await engine.set_policy(sid, policy)
    app = EditorApp(engine, sid)
    async with app.run_test(size=SIZE) as pilot:
        editor = await loaded(pilot)
        panel = editor.query_one(AdvisorPanel)
        index = next(n for n, a in enumerate(panel.advice) if a.field == "constraints.ttl_seconds")
        assert panel.advice[index].level == "warn"
        await shown(pilot, "1200 s")
        panel.query_one(OptionList).highlighted = index
        await pilot.press("t")
        await wait_for(pilot, lambda: editor.dirty, "the tightening")
        assert editor.policy_doc["overrides"][0]["constraints"]["ttl_seconds"] == 60
        assert not any(a.field == "constraints.ttl_seconds" for a in editor.advice)
        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: isinstance(app.screen, PolicyDiffScreen), "the diff")
        await pilot.press("y")
        await wait_for(pilot, lambda: not editor.dirty, "the save")
    assert (await engine.get_policy(sid)).overrides[0].constraints.ttl_seconds == 60


@pytest.mark.slow
async def test_danger_change_needs_confirmation_cancel_leaves_policy(world):
    engine, sid, _ = world
    saved = (await engine.get_policy(sid)).to_doc()
    app = EditorApp(engine, sid)
    async with app.run_test(size=SIZE) as pilot:
        editor = await loaded(pilot)
        form = await open_form(pilot)
        await set_tool(pilot, form, "shell.exec")
        await type_chip(pilot, form, "commands", "/usr/bin/wc")
        await type_chip(pilot, form, "roots", "work")
        await pilot.press("ctrl+s")
        confirm = await wait_for(
            pilot,
            lambda: app.screen if isinstance(app.screen, ConfirmScreen) else None,
            "the danger confirmation",
        )
        await shown(pilot, "dangerous power", "run the program /usr/bin/wc on this machine")
        del confirm
        await pilot.press("n")
        editor = await back_to_editor(pilot)
        await pilot.pause()
        assert not editor.dirty
        assert editor.policy_doc == saved
    assert (await engine.get_policy(sid)).to_doc() == saved


@pytest.mark.slow
async def test_danger_confirmed_and_enabling_a_disabled_danger_asks(world):
    engine, sid, _ = world
    policy = copy.deepcopy(BASE_POLICY)
    policy["overrides"].append(
        {
            "tool": "docker.run",
            "allow": True,
            "enabled": False,
            "constraints": {"images": ["sha256:" + "a" * 64], "network": True},
        }
    )
    await engine.set_policy(sid, policy)
    app = EditorApp(engine, sid)
    async with app.run_test(size=SIZE) as pilot:
        editor = await loaded(pilot)
        editor.query_one("#overrides", DataTable).move_cursor(row=1)
        await pilot.press("space")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen), "the confirmation")
        await shown(pilot, "get network access")
        await pilot.press("y")
        await back_to_editor(pilot)
        await wait_for(pilot, lambda: editor.dirty, "the toggle")
        assert editor.policy_doc["overrides"][1]["enabled"] is True


@pytest.mark.slow
async def test_delete_asks_and_removes(world):
    engine, sid, _ = world
    app = EditorApp(engine, sid)
    async with app.run_test(size=SIZE) as pilot:
        editor = await loaded(pilot)
        await pilot.press("d")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen), "the confirmation")
        await shown(pilot, "denied (deny by default)")
        await pilot.press("y")
        await back_to_editor(pilot)
        await wait_for(pilot, lambda: editor.dirty, "the delete")
        assert editor.policy_doc["overrides"] == []


# --------------------------------------------------------------------------- simulate


async def _denied_read(engine, sid, path="docs/a.txt") -> dict:
    with pytest.raises(PolicyDenied) as denied:
        await engine.submit(sid, "agent-1", ToolIntent(tool="file.read", params={"path": path}))
    return denied.value.details["suggested_fix"]


@pytest.mark.slow
async def test_simulate_shows_a_changed_decision(world):
    engine, sid, _ = world
    await _denied_read(engine, sid)
    app = EditorApp(engine, sid)
    async with app.run_test(size=SIZE) as pilot:
        editor = await loaded(pilot)
        await pilot.press("s")
        await wait_for(pilot, lambda: isinstance(app.screen, SimulationScreen), "simulation")
        await shown(pilot, "no recorded decision would change")
        await pilot.press("escape")
        await back_to_editor(pilot)

        form = await open_form(pilot, "e")
        await type_chip(pilot, form, "roots", "docs")
        await pilot.press("ctrl+s")
        await back_to_editor(pilot)
        await wait_for(pilot, lambda: editor.dirty, "the edit")
        await pilot.press("s")
        sim = await wait_for(
            pilot,
            lambda: app.screen if isinstance(app.screen, SimulationScreen) else None,
            "simulation",
        )
        await shown(pilot, "1 recorded decision would change")
        table = sim.query_one("#sim-table", DataTable)
        assert table.row_count == 1
        row = [str(getattr(c, "plain", c)) for c in table.get_row_at(0)]
        assert row[1] == "file.read"
        assert "DENY" in row[2] and "ALLOW" in row[2]
        assert "docs/a.txt" in row[3]
    # Simulating changed nothing.
    assert (await engine.get_policy(sid)).overrides[0].constraints.roots == ["work"]


# --------------------------------------------------------------------------- fix safely


@pytest.mark.slow
async def test_prefill_merges_into_the_same_tool_override_then_intent_is_allowed(world):
    """The fix differs from override #0 only in its roots (same approval and limits): merged,
    which allows exactly both, and the newly allowed root is listed."""
    engine, sid, _ = world
    fix = await _denied_read(engine, sid)
    policy = copy.deepcopy(BASE_POLICY)
    policy["overrides"][0]["approval"] = "untrusted"
    await engine.set_policy(sid, policy)
    app = EditorApp(engine, sid, prefill_override=fix)
    async with app.run_test(size=SIZE) as pilot:
        form = await wait_for(
            pilot,
            lambda: app.screen if isinstance(app.screen, OverrideFormScreen) else None,
            "the prefilled form",
        )
        await shown(pilot, "Fix safely: edit #0", 'roots: ["work"] → ["work", "docs"]')
        await shown(pilot, "Newly allowed (1):", "file.read of docs (and below it)")
        assert form.query_one("#f-roots", ChipInput).values == ["work", "docs"]
        await pilot.press("ctrl+s")
        editor = await back_to_editor(pilot)
        await wait_for(pilot, lambda: editor.dirty, "the merge")
        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: isinstance(app.screen, PolicyDiffScreen), "the diff")
        await shown(pilot, "Newly allowed (1):")
        await pilot.press("y")
        await wait_for(pilot, lambda: not editor.dirty, "the save")
    result = await engine.submit(
        sid, "agent-1", ToolIntent(tool="file.read", params={"path": "docs/a.txt"})
    )
    assert result["decision"] == "ALLOW"


@pytest.mark.slow
async def test_fix_for_another_host_lists_each_new_combination_and_no_cross_product(world):
    """The issue's example in the console: GET https://api.example.com (approval never) and a
    fix for POST http://attacker.example:8080 — its own override, and the notice lists
    exactly the two new combinations."""
    engine, sid, _ = world
    api_get = {
        "tool": "http.fetch",
        "approval": "never",
        "constraints": {"domains": ["api.example.com"], "methods": ["GET"]},
    }
    await engine.set_policy(sid, {"version": 1, "overrides": [api_get]})
    denied = ToolIntent(
        tool="http.fetch", params={"url": "http://attacker.example:8080/x", "method": "POST"}
    )
    with pytest.raises(PolicyDenied) as err:
        await engine.submit(sid, "agent-1", denied)
    app = EditorApp(engine, sid, prefill_override=err.value.details["suggested_fix"])
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(
            pilot,
            lambda: app.screen if isinstance(app.screen, OverrideFormScreen) else None,
            "the prefilled form",
        )
        await shown(pilot, "Fix safely: add override", "Newly allowed (2):")
        await shown(pilot, "POST http://attacker.example:80", "POST http://attacker.example:8080")
        await pilot.press("ctrl+s")
        editor = await back_to_editor(pilot)
        await wait_for(pilot, lambda: editor.dirty, "the add")
        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: isinstance(app.screen, PolicyDiffScreen), "the diff")
        await shown(pilot, "Newly allowed (2):")
        await pilot.press("y")
        await wait_for(pilot, lambda: not editor.dirty, "the save")
    saved = await engine.get_policy(sid)
    assert evaluate(denied, saved).decision == "ALLOW"
    assert saved.overrides[0].model_dump(mode="json")["constraints"]["methods"] == ["GET"]
    post_api = ToolIntent(
        tool="http.fetch", params={"url": "https://api.example.com/x", "method": "POST"}
    )
    with pytest.raises(PolicyDenied):
        await engine.submit(sid, "agent-1", post_api)


@pytest.mark.slow
async def test_prefill_with_a_looser_approval_adds_its_own_override(world):
    """Override #0 says approval never; the fix asks for untrusted: merging would either loosen
    the fix or tighten #0, so it is added as its own override with the stricter approval."""
    engine, sid, _ = world
    fix = await _denied_read(engine, sid)
    app = EditorApp(engine, sid, prefill_override=fix)
    async with app.run_test(size=SIZE) as pilot:
        form = await wait_for(
            pilot,
            lambda: app.screen if isinstance(app.screen, OverrideFormScreen) else None,
            "the prefilled form",
        )
        await shown(pilot, "Fix safely: add override", "Added as its own override #1")
        await shown(pilot, "file.read of docs (and below it)")
        assert form.query_one("#f-roots", ChipInput).values == ["docs"]
        await pilot.press("ctrl+s")
        editor = await back_to_editor(pilot)
        await wait_for(pilot, lambda: editor.dirty, "the add")
        overrides = editor.policy_doc["overrides"]
        assert overrides[0] == (await engine.get_policy(sid)).to_doc()["overrides"][0]
        assert overrides[1]["constraints"]["roots"] == ["docs"]
        assert overrides[1]["approval"] == "untrusted"


@pytest.mark.slow
async def test_prefill_without_same_tool_override_opens_add_form(world):
    engine, sid, _ = world
    fix = await _denied_read(engine, sid)
    await engine.set_policy(sid, {"version": 1, "overrides": []})
    app = EditorApp(engine, sid, prefill_override=fix)
    async with app.run_test(size=SIZE) as pilot:
        form = await wait_for(
            pilot,
            lambda: app.screen if isinstance(app.screen, OverrideFormScreen) else None,
            "the prefilled form",
        )
        await shown(pilot, "Fix safely: add override")
        assert form.query_one("#f-roots", ChipInput).values == ["docs"]
        await pilot.press("ctrl+s")
        editor = await back_to_editor(pilot)
        await wait_for(pilot, lambda: editor.dirty, "the add")
        assert editor.policy_doc["overrides"][0]["constraints"]["roots"] == ["docs"]


def test_danger_consequences_name_only_new_powers():
    shell = {"tool": "shell.exec", "allow": True, "constraints": {"commands": ["/bin/ls"]}}
    private = {
        "tool": "http.fetch",
        "constraints": {"domains": ["h.example"], "allow_private_addresses": True},
    }
    mount = {
        "tool": "docker.run",
        "constraints": {"images": ["sha256:" + "b" * 64], "mounts": ["/srv:/data:rw"]},
    }
    assert danger_consequences([], [shell])[0].startswith("Agents may run the program /bin/ls")
    assert danger_consequences([shell], [shell]) == []
    assert danger_consequences([], [{**shell, "enabled": False}]) == []
    assert "metadata" in danger_consequences([], [private])[0]
    assert "change and delete" in danger_consequences([], [mount])[0]


# --------------------------------------------------------------------------- hostile text


@pytest.mark.slow
async def test_policy_values_render_literally(world):
    engine, sid, _ = world
    huge = "A" * 1_000_000
    hostile = copy.deepcopy(BASE_POLICY)
    hostile["overrides"][0]["constraints"]["roots"] = [
        "[bold green]ALLOW[/]",
        "[link=https://evil.example]x[/link]",
        "clear\x1b[2Jscreen",
    ]
    hostile["overrides"][0]["note"] = huge
    await engine.set_policy(sid, hostile)
    app = EditorApp(engine, sid)
    async with app.run_test(size=(160, 48)) as pilot:
        editor = await loaded(pilot)
        text = await shown(
            pilot,
            "[bold green]ALLOW[/]",
            "[link=https://evil.example]x[/link]",
            "clear\\x1b[2Jscreen",
        )
        assert "\x1b" not in text
        assert "A" * 1000 not in text
        summary = editor.query_one("#overrides", DataTable).get_cell("0", "constraints")
        assert summary.plain.endswith("A…")
        assert len(summary.plain) < 300
        form = await open_form(pilot, "e")
        values = form.query_one("#f-roots", ChipInput).values
        assert "clear\x1b[2Jscreen" in values  # the value itself is kept exactly
        await shown(pilot, "Edit #0", "[bold green]ALLOW[/]", "clear\\x1b[2Jscreen")


# --------------------------------------------------------------------------- readonly, keys


async def test_readonly_hides_every_changing_action(world):
    engine, sid, _ = world
    saved = (await engine.get_policy(sid)).to_doc()
    app = EditorApp(engine, sid, readonly=True)
    async with app.run_test(size=SIZE) as pilot:
        editor = await loaded(pilot)
        for action in ("add", "edit", "delete", "toggle", "tighten", "save", "simulate"):
            assert editor.check_action(action, ()) is False
        assert editor.check_action("view", ()) is True
        footer = (await shown(pilot, "Policy · demo", "READ-ONLY")).splitlines()[-1]
        for word in ("add", "edit", "delete", "tighten", "save"):
            assert f" {word} " not in footer + " "
        for key in ("a", "e", "d", "space", "t", "ctrl+s"):
            await pilot.press(key)
            await pilot.pause()
            assert app.screen is editor
        await pilot.press("v")
        form = await wait_for(
            pilot,
            lambda: app.screen if isinstance(app.screen, OverrideFormScreen) else None,
            "the read-only view",
        )
        assert form.check_action("apply", ()) is False
        assert form.query_one("#f-roots", ChipInput).disabled
    assert (await engine.get_policy(sid)).to_doc() == saved


def test_every_editor_binding_has_an_id():
    for screen in (PolicyEditorScreen, OverrideFormScreen, PolicyDiffScreen, SimulationScreen):
        for binding in screen.BINDINGS:
            assert binding.id, f"{screen.__name__} {binding.key} has no id"


@pytest.mark.slow
async def test_through_the_real_app(world):
    from talon_tui.app.app import create_app

    engine, sid, _ = world
    app = create_app(engine)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await app.go("policy", sid)
        editor = await loaded(pilot)
        assert editor.session_id == sid
        await shown(pilot, "Policy · demo")
        await pilot.press("escape")
        await wait_for(
            pilot, lambda: not isinstance(app.screen, PolicyEditorScreen), "leaving the editor"
        )
