"""Snapshots of every console screen at 120x40 over a real Engine and a real agent on the pipe,
with a fixed clock, ids and data dir path."""

from __future__ import annotations

import asyncio

import pytest
from support.app import Hosted, fixed_data_dir, frozen, settle, talon_app  # noqa: F401

from talon_tui.client import AsyncAgentClient, ClientError

SIZE = (120, 40)

RESEARCH_POLICY = {
    "version": 1,
    "overrides": [
        {
            "tool": "file.read",
            "allow": True,
            "approval": "never",
            "constraints": {"roots": ["notes"], "max_bytes": 65536, "ttl_seconds": 60},
        },
        {
            "tool": "file.write",
            "allow": True,
            "approval": "always",
            "constraints": {"roots": ["drafts"], "max_bytes": 65536, "ttl_seconds": 60},
        },
    ],
}


async def until(condition, tries: int = 500) -> None:
    """Wait for the engine (other tasks on this loop, the pipe) to reach a state."""
    for _ in range(tries):
        if await condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("engine did not reach the state")


async def populate(h: Hosted) -> None:
    sid = await h.session("research-agent", RESEARCH_POLICY, {"notes/plan.md": "plan\n"})
    await h.session("report-writer", None)
    agent = await AsyncAgentClient.connect(h.keys["research-agent"], socket_path=h.socket_path)
    run_id = await agent.begin_run("summarize the notes")
    await agent.intent("file.read", {"path": "notes/plan.md"}, run_id=run_id)
    try:
        await agent.intent("file.read", {"path": "reports/q3.md"}, run_id=run_id)
    except ClientError:
        pass
    await agent.end_run(run_id, "ok")
    h.tasks.append(
        asyncio.ensure_future(
            agent.intent("file.write", {"path": "drafts/summary.md", "content": "hi"})
        )
    )

    async def waiting() -> bool:
        return len(await h.engine.list_approvals()) == 1

    await until(waiting)
    h.sessions["_run"] = run_id
    h.sessions["_sid"] = sid


def _snap(snap_compare, name, keys=(), after=None):
    app, hosted = talon_app(fixed_data_dir(name), populate)

    async def run_before(pilot):
        await settle(pilot)
        for key in keys:
            await pilot.press(key)
            await settle(pilot)
        if after is not None:
            await after(pilot, hosted)
            await settle(pilot)

    assert snap_compare(app, terminal_size=SIZE, run_before=run_before)


@pytest.mark.slow
@pytest.mark.usefixtures("frozen")
def test_dashboard(snap_compare):
    _snap(snap_compare, "dashboard")


@pytest.mark.slow
@pytest.mark.usefixtures("frozen")
def test_sessions(snap_compare):
    _snap(snap_compare, "sessions", ["2"])


@pytest.mark.slow
@pytest.mark.usefixtures("frozen")
def test_approvals(snap_compare):
    _snap(snap_compare, "approvals", ["3"])


@pytest.mark.slow
@pytest.mark.usefixtures("frozen")
def test_approve_and_remember_confirmation(snap_compare):
    _snap(snap_compare, "remember", ["3", "a"])


@pytest.mark.slow
@pytest.mark.usefixtures("frozen")
def test_skills(snap_compare, monkeypatch):
    from talon_tui.engine.runtime.store import EngineStore

    # the runtime line says whether Docker answers: the same on every machine
    monkeypatch.setattr(EngineStore, "docker_available", lambda self: False)

    async def register(pilot, hosted):
        await hosted.engine.register_skill(
            {
                "name": "summarize",
                "version": "1.0.0",
                "image": "sha256:" + "ab" * 32,
                "manifest": {"tools": ["file.read"]},
            }
        )
        pilot.app.screen.reload()

    _snap(snap_compare, "skills", ["5"], after=register)


@pytest.mark.slow
@pytest.mark.usefixtures("frozen")
def test_session_detail(snap_compare):
    async def open_detail(pilot, hosted):
        await pilot.app.go("session", hosted.sessions["research-agent"])

    _snap(snap_compare, "session_detail", after=open_detail)


@pytest.mark.slow
@pytest.mark.usefixtures("frozen")
def test_session_detail_policy_tab(snap_compare):
    async def open_detail(pilot, hosted):
        await pilot.app.go("session", hosted.sessions["research-agent"])
        await settle(pilot)
        await pilot.press("right_square_bracket")

    _snap(snap_compare, "session_policy", after=open_detail)


@pytest.mark.slow
@pytest.mark.usefixtures("frozen")
def test_run_timeline(snap_compare):
    async def open_run(pilot, hosted):
        from talon_tui.app.screens.run_timeline import RunTimelineScreen

        await pilot.app.push_screen(RunTimelineScreen(hosted.engine, hosted.sessions["_run"]))
        await settle(pilot)
        await pilot.press("down")

    _snap(snap_compare, "run_timeline", after=open_run)


@pytest.mark.slow
@pytest.mark.usefixtures("frozen")
def test_help(snap_compare):
    _snap(snap_compare, "help", ["2", "question_mark"])


@pytest.mark.slow
@pytest.mark.usefixtures("frozen")
def test_jump(snap_compare):
    _snap(snap_compare, "jump", ["colon", "s"])
