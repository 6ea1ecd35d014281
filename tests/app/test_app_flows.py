"""Pilot tests of the console flows over a real in-process Engine and real agents on the pipe."""

from __future__ import annotations

import asyncio

import pytest
from support.app import (
    HOSTILE_ANSI,
    HOSTILE_BIG,
    HOSTILE_LINK,
    HOSTILE_MARKUP,
    frozen,  # noqa: F401
    screen_text,
    settle,
    talon_app,
    wait_until,
)
from textual.widgets import DataTable, Input, Select

from talon_tui.app.screens.approvals import ApprovalsScreen
from talon_tui.app.screens.confirm import ConfirmScreen
from talon_tui.app.screens.help import HelpScreen
from talon_tui.app.screens.jump import JumpScreen
from talon_tui.app.screens.run_timeline import RunTimelineScreen
from talon_tui.app.screens.session_forms import AgentKeyScreen, NewSessionScreen
from talon_tui.app.screens.sessions import SessionsScreen
from talon_tui.app.screens.skills import SkillsScreen
from talon_tui.client import (
    ApprovalDeniedError,
    AsyncAgentClient,
    ClientError,
    PolicyDeniedError,
)

SIZE = (120, 40)
WRITE_NEEDS_APPROVAL = {
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


@pytest.mark.slow
@pytest.mark.usefixtures("frozen")
async def test_create_session_with_sample_policy_then_close(tmp_path):
    app, hosted = talon_app(tmp_path / "data")
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("2")
        await settle(pilot)
        assert isinstance(app.screen, SessionsScreen)
        await pilot.press("n")
        await settle(pilot)
        form = app.screen
        assert isinstance(form, NewSessionScreen)
        await pilot.press(*"notes-reader")
        select = form.query_one("#policy", Select)
        choice = next(str(p) for p in form.policy_files if p.stem == "file-read")
        select.value = choice
        await pilot.press("ctrl+s")
        await wait_until(pilot, lambda: isinstance(app.screen, AgentKeyScreen))
        key_screen = app.screen
        assert key_screen.key
        assert key_screen.key in screen_text(app)
        sessions = await hosted.engine.list_sessions()
        assert [s.label for s in sessions] == ["notes-reader"]
        policy = await hosted.engine.get_policy(sessions[0].id)
        assert [o.tool for o in policy.overrides] == ["file.read"]
        await pilot.press("escape")
        await settle(pilot)
        # close it, confirming
        await pilot.press("c")
        await settle(pilot)
        assert isinstance(app.screen, ConfirmScreen)
        await pilot.press("y")
        await wait_until(pilot, lambda: "closed" in screen_text(app))
        assert (await hosted.engine.list_sessions())[0].status == "closed"


@pytest.mark.usefixtures("frozen")
async def test_blank_label_is_refused_in_the_form(tmp_path):
    app, hosted = talon_app(tmp_path / "data")
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("2", "n")
        await settle(pilot)
        await pilot.press("ctrl+s")
        await settle(pilot)
        assert isinstance(app.screen, NewSessionScreen)
        assert "label" in screen_text(app)
        assert await hosted.engine.list_sessions() == []


async def _agent_waiting(pilot, hosted, path: str):
    """A real agent on the pipe submits an intent that needs approval; returns its task."""
    await hosted.session("writer", WRITE_NEEDS_APPROVAL, {"drafts/.keep": ""})
    agent = await AsyncAgentClient.connect(hosted.keys["writer"], socket_path=hosted.socket_path)
    task = asyncio.ensure_future(agent.intent("file.write", {"path": path, "content": "x"}))
    app = pilot.app
    await pilot.press("3")
    await wait_until(
        pilot,
        lambda: (
            isinstance(app.screen, ApprovalsScreen) and app.screen.query_one(DataTable).row_count
        ),
    )
    return agent, task


@pytest.mark.usefixtures("frozen")
async def test_approve_once_with_a_real_agent(tmp_path):
    app, hosted = talon_app(tmp_path / "data")
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        agent, task = await _agent_waiting(pilot, hosted, "drafts/a.md")
        assert "drafts/a.md" in screen_text(app)
        await pilot.press("y")
        await wait_until(pilot, task.done)
        assert task.result().decision in ("ALLOW", "REQUIRE_APPROVAL")
        await wait_until(pilot, lambda: app.screen.query_one(DataTable).row_count == 0)
        await agent.close()


@pytest.mark.slow
@pytest.mark.usefixtures("frozen")
async def test_deny_with_a_real_agent(tmp_path):
    app, hosted = talon_app(tmp_path / "data")
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        agent, task = await _agent_waiting(pilot, hosted, "drafts/b.md")
        await pilot.press("n")
        await wait_until(pilot, task.done)
        with pytest.raises(ApprovalDeniedError):
            task.result()
        await agent.close()


@pytest.mark.slow
@pytest.mark.usefixtures("frozen")
async def test_approve_and_remember_shows_the_override_then_adds_it(tmp_path):
    app, hosted = talon_app(tmp_path / "data")
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        agent, task = await _agent_waiting(pilot, hosted, "drafts/c.md")
        sid = hosted.sessions["writer"]
        before = len((await hosted.engine.get_policy(sid)).overrides)
        await pilot.press("a")
        await settle(pilot)
        assert isinstance(app.screen, ConfirmScreen)
        shown = screen_text(app)  # the override is shown before anything changes
        assert '"drafts/c.md"' in shown and "never allows more than that rule" in shown
        await pilot.press("y")
        await wait_until(pilot, task.done)
        task.result()
        after = (await hosted.engine.get_policy(sid)).overrides
        assert len(after) == before + 1
        (added,) = [o for o in after if o.note.startswith("remembered approval")]
        assert added.tool == "file.write" and added.constraints.roots == ["drafts/c.md"]
        await agent.close()


@pytest.mark.usefixtures("frozen")
async def test_toast_on_new_approval_wherever_the_operator_is(tmp_path):
    app, hosted = talon_app(tmp_path / "data")
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("5")  # skills screen
        await settle(pilot)
        await hosted.session("writer", WRITE_NEEDS_APPROVAL)
        agent = await AsyncAgentClient.connect(
            hosted.keys["writer"], socket_path=hosted.socket_path
        )
        task = asyncio.ensure_future(
            agent.intent("file.write", {"path": "drafts/t.md", "content": "x"})
        )
        await wait_until(
            pilot, lambda: any(n.title == "Approval needed" for n in app._notifications)
        )
        assert isinstance(app.screen, SkillsScreen)
        assert app.pending_approvals == 1
        task.cancel()
        await agent.close()


@pytest.mark.slow
@pytest.mark.usefixtures("frozen")
async def test_readonly_hides_every_changing_action(tmp_path):
    async def setup(h):
        await h.session("writer", WRITE_NEEDS_APPROVAL)

    app, hosted = talon_app(tmp_path / "data", setup, readonly=True)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        for key, screen_type, hidden in (
            ("2", SessionsScreen, {"new_session", "close_session", "reissue_key"}),
            ("3", ApprovalsScreen, {"approve", "remember", "deny"}),
            ("5", SkillsScreen, {"register"}),
        ):
            await pilot.press(key)
            await settle(pilot)
            assert isinstance(app.screen, screen_type)
            actions = {b.binding.action for b in app.screen.active_bindings.values()}
            assert not actions & hidden
        await pilot.press("2", "n")  # refused: no form opens
        await settle(pilot)
        assert isinstance(app.screen, SessionsScreen)
        assert "READ-ONLY" in app.sub_title


@pytest.mark.slow
@pytest.mark.usefixtures("frozen")
async def test_jump_help_and_back(tmp_path):
    app, hosted = talon_app(tmp_path / "data")
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("colon")
        await settle(pilot)
        assert isinstance(app.screen, JumpScreen)
        await pilot.press(*"skills", "enter")
        await settle(pilot)
        assert isinstance(app.screen, SkillsScreen)
        await pilot.press("question_mark")
        await settle(pilot)
        assert isinstance(app.screen, HelpScreen)
        ids = {row.ident for row in app.screen.rows}
        assert {"skills.register", "app.jump", "app.help"} <= ids
        await pilot.press("escape")
        await settle(pilot)
        await pilot.press("escape")
        await settle(pilot)
        assert type(app.screen).__name__ == "DashboardScreen"


@pytest.mark.usefixtures("frozen")
async def test_palette_providers_offer_prefixed_commands(tmp_path):
    from talon_tui.app.commands import (
        AuditCommands,
        PolicyCommands,
        ReplayCommands,
        SessionCommands,
    )

    async def setup(h):
        await h.session(HOSTILE_MARKUP, None)

    app, hosted = talon_app(tmp_path / "data", setup)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        texts = []
        for provider_type in (SessionCommands, PolicyCommands, AuditCommands, ReplayCommands):
            provider = provider_type(app.screen)
            texts += [t for t, _, _ in await provider.build()]
        for prefix in ("session: ", "policy: ", "audit: ", "replay: "):
            assert any(t.startswith(prefix) for t in texts), prefix
        assert any(HOSTILE_MARKUP in t for t in texts)  # literal, never markup


@pytest.mark.slow
@pytest.mark.usefixtures("frozen")
async def test_fix_safely_opens_the_editor_with_the_suggested_override(tmp_path):
    from talon_tui.app.screens.policy_editor import PolicyEditorScreen

    async def setup(h):
        await h.session("reader", {"version": 1, "overrides": []}, {"notes/a.md": "a"})

    app, hosted = talon_app(tmp_path / "data", setup)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        agent = await AsyncAgentClient.connect(
            hosted.keys["reader"], socket_path=hosted.socket_path
        )
        with pytest.raises(PolicyDeniedError) as denied:
            await agent.intent("file.read", {"path": "notes/a.md"})
        run_id = denied.value.run_id
        await app.push_screen(RunTimelineScreen(hosted.engine, run_id))
        await wait_until(pilot, lambda: app.screen.steps and app.screen.steps[0].decision == "DENY")
        fix = app.screen.steps[0].suggested_fix
        assert fix and fix["tool"] == "file.read"
        await pilot.press("f")
        await settle(pilot)
        # the editor opens (with its override form on top, prefilled with the fix)
        editors = [s for s in app.screen_stack if isinstance(s, PolicyEditorScreen)]
        assert len(editors) == 1
        await agent.close()


HOSTILE = (HOSTILE_MARKUP, HOSTILE_LINK, HOSTILE_ANSI)


def _assert_literal(text: str, big: bool = True) -> None:
    assert HOSTILE_MARKUP in text
    assert HOSTILE_LINK in text
    assert "\\x1b[2J" in text  # the escape is shown, not executed
    assert "\x1b" not in text
    if big:
        # the 1 MB value is cut with an ellipsis (where the line wraps may split "A…")
        assert "AAAA" in text and "…" in text and text.count("A") < 20_000


@pytest.mark.slow
@pytest.mark.usefixtures("frozen")
async def test_hostile_strings_render_literally_on_every_screen(tmp_path):
    label = "".join(HOSTILE)
    policy = {
        "version": 1,
        "overrides": [
            {
                "tool": "file.write",
                "allow": True,
                "approval": "always",
                "constraints": {"roots": ["drafts"], "max_bytes": 4 << 20},
            },
        ],
    }

    async def setup(h):
        await h.session(label, policy, {"drafts/.keep": ""})
        await h.engine.register_skill(
            {
                "name": label,
                "version": "1",
                "image": "sha256:" + "cd" * 32,
                "manifest": {"tools": [label], "blob": HOSTILE_BIG},
            }
        )

    app, hosted = talon_app(tmp_path / "data", setup)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        key = next(iter(hosted.keys.values()))
        agent = await AsyncAgentClient.connect(key, socket_path=hosted.socket_path)
        hostile_path = "drafts/[bold]x[red].md"  # paths refuse control characters
        # a denied intent (outside roots) and one waiting for approval, both hostile
        with pytest.raises(ClientError) as denied:
            await agent.intent("file.read", {"path": label + HOSTILE_BIG[:3000]})
        waiting = asyncio.ensure_future(
            agent.intent(
                "file.write",
                {"path": hostile_path, "content": label + HOSTILE_BIG[: (1 << 20) - 4000]},
            )
        )
        await pilot.press("2")
        await wait_until(pilot, lambda: app.screen.query_one(DataTable).row_count == 1)
        _assert_literal(screen_text(app), big=False)  # labels are capped at 200 characters
        await pilot.press("3")
        await wait_until(
            pilot,
            lambda: (
                isinstance(app.screen, ApprovalsScreen)
                and app.screen.query_one(DataTable).row_count == 1
            ),
        )
        _assert_literal(screen_text(app))
        await pilot.press("5")
        await settle(pilot)
        _assert_literal(screen_text(app))
        await pilot.press("1")
        await wait_until(pilot, lambda: HOSTILE_MARKUP in screen_text(app))
        text = screen_text(app)
        assert "\x1b" not in text and HOSTILE_MARKUP in text
        await app.push_screen(RunTimelineScreen(hosted.engine, denied.value.run_id))
        await wait_until(pilot, lambda: bool(app.screen.steps))
        _assert_literal(screen_text(app))
        sid = next(iter(hosted.sessions.values()))
        await app.go("session", sid)
        await settle(pilot)
        text = screen_text(app)
        assert HOSTILE_MARKUP in text and "\x1b" not in text
        waiting.cancel()
        await agent.close()


@pytest.mark.slow
@pytest.mark.usefixtures("frozen")
async def test_sessions_filter_with_slash(tmp_path):
    async def setup(h):
        await h.session("alpha", None)
        await h.session("beta", None)

    app, hosted = talon_app(tmp_path / "data", setup)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("2")
        await settle(pilot)
        await pilot.press("slash", *"bet")
        await settle(pilot)
        assert app.screen.query_one(DataTable).row_count == 1
        assert app.screen.query_one(Input).value == "bet"
        await pilot.press("escape")
        await settle(pilot)
        assert app.screen.query_one(DataTable).row_count == 2
