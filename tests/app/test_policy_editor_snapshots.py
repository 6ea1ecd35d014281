"""Snapshots of the policy editor at 120×40 over a real Engine: the editor with overrides and
warnings, the override form, and the diff shown before saving. Deterministic: fixed ids, a fixed
data and workspace path, cursor blink off."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from support.policy_editor import (
    SnapshotEditorApp,
    fixed_ids,
    make_workspace,
    no_blink,
    wait_for,
)

from talon_tui.app.screens.policy_editor import PolicyEditorScreen
from talon_tui.app.widgets.override_form import OverrideFormScreen
from talon_tui.app.widgets.policy_diff import PolicyDiffScreen

SIZE = (120, 40)
ROOT = Path("/tmp/talon-snapshots-policy-editor")  # shown on screen, so one for the module:
pytestmark = pytest.mark.xdist_group("policy-editor-snapshots")  # its tests share one worker

POLICY = {
    "version": 1,
    "overrides": [
        {
            "tool": "file.read",
            "allow": True,
            "approval": "never",
            "constraints": {"roots": ["work", "/"], "max_bytes": 1048576, "ttl_seconds": 60},
        },
        {
            "tool": "http.fetch",
            "allow": True,
            "note": "[bold red]agent says hi[/]",
            "constraints": {
                "domains": ["api.example.com", "*.example.org"],
                "secrets": ["gh_token"],
                "methods": ["GET", "POST"],
                "ttl_seconds": 900,
            },
        },
        {
            "tool": "docker.run",
            "allow": True,
            "enabled": False,
            "constraints": {"images": ["python:3.12"], "network": True},
        },
        {"tool": "shell.exec", "allow": False},
    ],
}


@pytest.fixture
def snap_app(monkeypatch):
    fixed_ids(monkeypatch)
    shutil.rmtree(ROOT, ignore_errors=True)
    ROOT.mkdir(parents=True)
    ws = make_workspace(ROOT)
    yield SnapshotEditorApp(ROOT / "data", ws, POLICY)
    shutil.rmtree(ROOT, ignore_errors=True)


async def _editor(pilot) -> PolicyEditorScreen:
    app = pilot.app
    await wait_for(
        pilot,
        lambda: isinstance(app.screen, PolicyEditorScreen) and app.screen.loads > 0,
        "the editor",
    )
    return app.screen


def test_editor_with_overrides_and_warnings(snap_app, snap_compare):
    async def run_before(pilot) -> None:
        await _editor(pilot)

    assert snap_compare(snap_app, terminal_size=SIZE, run_before=run_before)


@pytest.mark.slow
def test_override_form(snap_app, snap_compare):
    async def run_before(pilot) -> None:
        await _editor(pilot)
        await pilot.press("down", "e")
        await wait_for(pilot, lambda: isinstance(pilot.app.screen, OverrideFormScreen), "form")
        no_blink(pilot.app)
        await pilot.pause()

    assert snap_compare(snap_app, terminal_size=SIZE, run_before=run_before)


def test_diff_before_save(snap_app, snap_compare):
    async def run_before(pilot) -> None:
        await _editor(pilot)
        await pilot.press("down", "down", "down", "space")  # disable the shell.exec deny
        await wait_for(pilot, lambda: pilot.app.screen.dirty, "the toggle")
        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: isinstance(pilot.app.screen, PolicyDiffScreen), "diff")

    assert snap_compare(snap_app, terminal_size=SIZE, run_before=run_before)
