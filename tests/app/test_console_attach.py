"""The console attached to a real `talon serve` subprocess over the pipe: built by the same code
path as `talon` (console_cmd.hosted_engine + console_app), driven with Pilot, checked from the
CLI; and a clear one-line error when the engine holds the lock but its socket is gone."""

from __future__ import annotations

import asyncio
import fcntl
import json
import os

import pytest
from support.app import screen_text, settle, wait_until
from support.pipe import APPROVAL_POLICY, READ_POLICY, Serve, make_workspace
from support.pipe import run_talon as cli
from textual.widgets import DataTable

from talon_tui.app.screens.approvals import ApprovalsScreen
from talon_tui.app.screens.audit import AuditScreen
from talon_tui.app.screens.policy_editor import PolicyEditorScreen
from talon_tui.app.screens.replay import ReplayScreen
from talon_tui.app.screens.session_forms import AgentKeyScreen, NewSessionScreen
from talon_tui.app.screens.sessions import SessionsScreen
from talon_tui.app.widgets.audit_list import AuditList
from talon_tui.app.widgets.chips import ChipInput
from talon_tui.app.widgets.override_form import OverrideFormScreen
from talon_tui.app.widgets.policy_diff import PolicyDiffScreen
from talon_tui.cli.commands.console_cmd import console_app, hosted_engine
from talon_tui.client import AsyncAgentClient, PolicyDeniedError

SIZE = (120, 40)


@pytest.fixture
def serve(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    server = Serve(data).start()
    yield server
    server.stop_quietly()


def current(app, screen_type):
    return app.screen if isinstance(app.screen, screen_type) else None


@pytest.mark.slow
async def test_attached_console_works_like_in_process(serve, tmp_path):
    ws = make_workspace(tmp_path)
    async with hosted_engine(serve.data) as hosted:
        assert hosted.mode == "attached" and hosted.engine is None
        writer, writer_key = await hosted.api.create_session("writer", str(ws), APPROVAL_POLICY)
        _reader, reader_key = await hosted.api.create_session("reader", str(ws), READ_POLICY)
        app = await console_app(hosted, serve.data)
        app.refresh_interval = 0
        async with app.run_test(size=SIZE) as pilot:
            # dashboard: the sessions of the serving engine
            await wait_until(pilot, lambda: "2 open" in screen_text(app))

            # create a session from the sessions screen; the CLI sees it
            await pilot.press("2")
            await wait_until(
                pilot,
                lambda: (
                    current(app, SessionsScreen) is not None
                    and app.screen.query_one(DataTable).row_count == 2
                ),
            )
            assert {"writer", "reader"} <= set(screen_text(app).split())
            await pilot.press("n")
            await wait_until(pilot, lambda: current(app, NewSessionScreen) is not None)
            await pilot.press(*"made-in-console", "ctrl+s")
            await wait_until(pilot, lambda: current(app, AgentKeyScreen) is not None)
            await pilot.press("escape")
            listed = cli(serve.data, "session", "list", "--json")
            assert listed.returncode == 0, listed.stderr
            assert "made-in-console" in {s["label"] for s in json.loads(listed.stdout)}

            # an agent's intent needs approval: toast, approvals screen, y, the agent gets it
            agent = await AsyncAgentClient.connect(writer_key, socket_path=serve.socket_path)
            task = asyncio.ensure_future(agent.intent("file.read", {"path": "work/a.txt"}))
            await wait_until(
                pilot, lambda: any(n.title == "Approval needed" for n in app._notifications)
            )
            await pilot.press("3")
            await wait_until(
                pilot,
                lambda: (
                    current(app, ApprovalsScreen) is not None
                    and app.screen.query_one(DataTable).row_count == 1
                ),
            )
            assert "work/a.txt" in screen_text(app)
            await pilot.press("y")
            await wait_until(pilot, task.done)
            result = task.result()
            assert result.decision in ("ALLOW", "REQUIRE_APPROVAL")
            assert "hello from the workspace" in json.dumps(result.result)
            await agent.close()

            # the audit screen follows new events live
            await pilot.press("4")
            await wait_until(pilot, lambda: current(app, AuditScreen) is not None)
            audit_list = app.screen.query_one(AuditList)
            await wait_until(pilot, lambda: audit_list.complete and len(audit_list.offsets) > 0)
            before = len(audit_list.offsets)
            reader = await AsyncAgentClient.connect(reader_key, socket_path=serve.socket_path)
            with pytest.raises(PolicyDeniedError) as denied:
                await reader.intent("file.read", {"path": "other/b.txt"})
            await reader.close()
            await wait_until(pilot, lambda: len(audit_list.offsets) > before)
            await wait_until(pilot, lambda: "policy.decision" in screen_text(app))

            # replay the approved run
            await app.go("replay", result.run_id)
            await wait_until(
                pilot,
                lambda: current(app, ReplayScreen) is not None and app.screen.result is not None,
            )
            assert app.screen.result.run_id == result.run_id
            assert app.screen.result.steps
            assert denied.value.run_id != result.run_id

            # the policy editor saves through the pipe; the CLI reads the new policy
            await app.go("policy", writer.id)
            editor = None
            await wait_until(pilot, lambda: current(app, PolicyEditorScreen) is not None)
            editor = app.screen
            await settle(pilot)
            await pilot.press("a")
            await wait_until(pilot, lambda: current(app, OverrideFormScreen) is not None)
            chips = app.screen.query_one("#f-roots", ChipInput)
            chips.input.focus()
            await pilot.pause()
            await pilot.press(*"docs", "enter")
            await pilot.press("ctrl+s")
            await wait_until(pilot, lambda: current(app, PolicyEditorScreen) is editor)
            assert editor.dirty
            await pilot.press("ctrl+s")
            await wait_until(pilot, lambda: current(app, PolicyDiffScreen) is not None)
            await pilot.press("y")
            await wait_until(pilot, lambda: not editor.dirty)
            shown = cli(serve.data, "policy", "show", writer.id)
            assert shown.returncode == 0, shown.stderr
            roots = [
                (o.get("constraints") or {}).get("roots")
                for o in json.loads(shown.stdout)["overrides"]
            ]
            assert ["docs"] in roots


def test_locked_without_socket_is_one_clear_line(tmp_path):
    data = tmp_path / "data"
    (data / "run").mkdir(parents=True)
    (data / "admin.token").write_text("t" * 40)
    os.chmod(data / "admin.token", 0o600)
    fd = os.open(data / "engine.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        os.write(fd, b"4242")
        done = cli(data, "console")
    finally:
        os.close(fd)
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("talon: an engine holds")
    assert "agent.sock" in lines[0]
