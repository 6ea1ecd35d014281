"""Snapshots (issue 16): the session timeline (a denial selected, the what-if, 80x24), the run
comparison, and the approval preview of each tool, over a real Engine with a fixed clock, ids
and data dir path."""

from __future__ import annotations

import asyncio

import pytest
from support.app import fixed_data_dir, frozen, settle, talon_app  # noqa: F401
from support.session_log import WHAT_IF, record

from talon_tui.app.screens.run_compare import RunCompareScreen
from talon_tui.engine.policy.models import ToolIntent

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("frozen")]

SIZE = (120, 40)
SMALL = (80, 24)


async def _recorded(h) -> None:
    rec = await record(h.engine, h.data_dir / "ws-rec")
    h.sessions["rec"] = rec.session_id
    h.sessions["run0"], h.sessions["run1"] = rec.runs


def _timeline(snap_compare, name, size, keys=(), what_if=False):
    app, hosted = talon_app(fixed_data_dir(name), _recorded)

    async def run_before(pilot):
        await settle(pilot)
        await pilot.app.go("session-replay", hosted.sessions["rec"])
        await settle(pilot)
        for key in keys:
            await pilot.press(key)
            await settle(pilot)
        if what_if:
            pilot.app.screen.apply_what_if({"label": "reads only", "policy": WHAT_IF})
            await settle(pilot)

    assert snap_compare(app, terminal_size=size, run_before=run_before)


def test_session_timeline_denial(snap_compare):
    _timeline(snap_compare, "sreplay_denial", SIZE, ["d"])


def test_session_timeline_policy_change_small(snap_compare):
    _timeline(snap_compare, "sreplay_small", SMALL, ["p", "z"])


def test_session_timeline_what_if(snap_compare):
    _timeline(snap_compare, "sreplay_what_if", SIZE, what_if=True)


def test_run_comparison(snap_compare):
    app, hosted = talon_app(fixed_data_dir("run_compare"), _recorded)

    async def run_before(pilot):
        await settle(pilot)
        pilot.app.push_screen(
            RunCompareScreen(pilot.app.engine, hosted.sessions["run0"], hosted.sessions["run1"])
        )
        await settle(pilot)
        await pilot.press("down", "down")
        await settle(pilot)

    assert snap_compare(app, terminal_size=SIZE, run_before=run_before)


IMAGE = "sha256:" + "a" * 64
PREVIEWS = {
    "file.write": (
        {"roots": ["drafts"]},
        {"path": "drafts/plan.md", "content": "one\nTWO\nthree\n"},
    ),
    "http.fetch": (
        {
            "domains": ["127.0.0.1"],
            "methods": ["POST"],
            "schemes": ["http"],
            "ports": [8080],
            "allow_private_addresses": True,
            "secrets": ["api_token"],
        },
        {
            "url": "http://127.0.0.1:8080/v1/items?q=1",
            "method": "POST",
            "headers": {"Authorization": {"secret_ref": "api_token"}, "Accept": "text/plain"},
            "body": '{"name": "x"}',
        },
    ),
    "shell.exec": ({"commands": ["/bin/echo"]}, {"argv": ["/bin/echo", "a b", "--c"]}),
    "docker.run": (
        {
            "images": [IMAGE],
            "mounts": [{"source": "/tmp", "target": "/data"}],
            "memory_mb": 256,
        },
        {"image": IMAGE, "command": ["ls", "-l", "/data"]},
    ),
}


@pytest.mark.parametrize("tool", sorted(PREVIEWS))
def test_approval_preview(snap_compare, tool):
    constraints, params = PREVIEWS[tool]

    async def setup(h):
        await h.engine.set_secret("api_token", "s3cr3t-value-123456")
        policy = {
            "version": 1,
            "overrides": [
                {"tool": tool, "allow": True, "approval": "always", "constraints": constraints}
            ],
        }
        sid = await h.session("previews", policy, {"drafts/plan.md": "one\ntwo\nthree\n"})
        intent = ToolIntent(tool=tool, params=params)
        h.tasks.append(asyncio.ensure_future(h.engine.submit(sid, "agent:p", intent)))
        for _ in range(500):
            if len(h.engine.approvals):
                return
            await asyncio.sleep(0.01)

    app, _hosted = talon_app(fixed_data_dir(f"preview_{tool}"), setup)

    async def run_before(pilot):
        await settle(pilot)
        await pilot.press("3")
        await settle(pilot)
        await pilot.pause(0.1)
        await settle(pilot)

    assert snap_compare(app, terminal_size=SIZE, run_before=run_before)
