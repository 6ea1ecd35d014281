"""Snapshots of the audit viewer and the replay screen over a real Engine on a recorded log.

The log is written before the app starts (ALLOW, DENY and APPROVAL runs, then a clean stop
that signs a checkpoint) and the console opens it with a fresh Engine, as an operator would.
Deterministic: counted ids, a ticking fixed clock, pid 4242, fixed signing keys (checkpoint
signatures, and every hash after them, depend on the key), a fixed data dir path, no cursor
blink.
"""

from __future__ import annotations

import asyncio
import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from support.audit_screen import (
    STRICT,
    deterministic,
    fixed_data_dir,
    seeded_engine,
    wait_for,
)
from textual.app import App
from textual.screen import Screen
from textual.widgets import DataTable, Input

from talon_tui.app.screens.audit import AuditScreen, EventDetailScreen
from talon_tui.app.screens.replay import ReplayScreen, WhatIfScreen
from talon_tui.app.widgets.audit_list import AuditList
from talon_tui.engine.audit.replay import output_digest
from talon_tui.engine.core import ids
from talon_tui.engine.core.paths import DataDir
from talon_tui.engine.engine import Engine

SIZE = (120, 40)
SMALL = (80, 24)


def fixed_keys(data_dir: Path) -> None:
    """Signing keys from fixed seeds, in place before the engine's first start."""
    keys_dir = DataDir(data_dir).keys_dir
    keys_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    for seed, name in ((1, "policy"), (2, "audit")):
        key = Ed25519PrivateKey.from_private_bytes(bytes([seed]) * 32)
        path = keys_dir / f"{name}_ed25519.key"
        path.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        path.chmod(0o600)


def record_approval_run(engine: Engine, session_id: str) -> str:
    """A run whose intent needed the operator's approval, approved once and executed."""
    audit = engine.audit
    run_id = ids.new_id("run")
    intent_id = ids.new_id("int")
    approval_id = ids.new_id("apr")
    params = {"path": "drafts/summary.md", "content": "hi"}
    output = {"path": "drafts/summary.md", "bytes": 2}
    common: dict[str, Any] = {"session_id": session_id, "run_id": run_id}
    audit.append(
        "run.started",
        **common,
        data={"subject": "agent-1", "content": "write the summary", "one_shot": False},
    )
    audit.append(
        "policy.intent.received",
        **common,
        data={
            "intent_id": intent_id,
            "subject": "agent-1",
            "tool": "file.write",
            "params": params,
            "origin": "agent",
            "intent_hash": "sha256:" + "2" * 64,
        },
    )
    audit.append(
        "policy.decision",
        **common,
        data={
            "intent_id": intent_id,
            "tool": "file.write",
            "decision": "REQUIRE_APPROVAL",
            "reason": "file.write of drafts/summary.md needs the operator's approval",
            "by": "policy",
            "override_index": None,
            "suggested_fix": None,
            "code": None,
        },
    )
    audit.append(
        "approval.requested",
        **common,
        data={
            "approval_id": approval_id,
            "intent_id": intent_id,
            "tool": "file.write",
            "params": params,
            "origin": "agent",
            "subject": "agent-1",
            "expires": "2026-11-25T17:05:00.000000Z",
        },
    )
    audit.append(
        "approval.decided",
        **common,
        data={
            "approval_id": approval_id,
            "intent_id": intent_id,
            "allow": True,
            "remember": False,
            "by": "operator",
            "timed_out": False,
            "override_added": None,
        },
    )
    audit.append(
        "tool.executed",
        **common,
        data={
            "intent_id": intent_id,
            "tool": "file.write",
            "status": "ok",
            "code": None,
            "message": "",
            "output": output,
            "output_sha256": output_digest(output),
            "bytes": 2,
            "truncated": False,
            "redacted": False,
            "duration_ms": 1,
        },
    )
    audit.append("run.finished", **common, data={"status": "ok", "steps": 1})
    audit.sync()
    return run_id


async def record_log(data_dir: Path) -> tuple[str, list[str]]:
    """Allowed, denied and approved runs, then a clean stop (engine.stopped + a signed
    checkpoint). Returns the session id and the run ids."""
    fixed_keys(data_dir)
    engine, session_id, runs = await seeded_engine(data_dir)
    runs.append(record_approval_run(engine, session_id))
    await engine.stop()
    return session_id, runs


class LogApp(App[None]):
    """Opens an already recorded data dir with a fresh Engine and shows one screen on it."""

    TITLE = "Talon"

    def __init__(self, data_dir: Path, factory: Callable[[Engine], Screen]) -> None:
        super().__init__()
        self.data_dir = data_dir
        self.factory = factory
        self.engine: Engine | None = None
        self.readonly = False

    async def on_mount(self) -> None:
        self.engine = Engine(self.data_dir)
        await self.engine.start()
        await self.push_screen(self.factory(self.engine))

    async def action_go_back(self) -> None:
        if len(self.screen_stack) > 2:
            await self.pop_screen()

    async def on_unmount(self) -> None:
        if self.engine is not None:
            await self.engine.stop()


@pytest.fixture
def recorded(monkeypatch, request) -> Any:
    """A recorded log at /tmp/talon-snap-<test name>, emptied first and removed after."""
    deterministic(monkeypatch)
    monkeypatch.setattr(Input, "cursor_blink", False)
    data_dir = fixed_data_dir(request.node.name.removeprefix("test_").replace("_", "-"))
    session_id, runs = asyncio.run(record_log(data_dir))
    yield data_dir, session_id, runs
    shutil.rmtree(data_dir, ignore_errors=True)


async def audit_ready(pilot) -> AuditList:
    app = pilot.app
    await wait_for(
        pilot,
        lambda: (
            isinstance(app.screen, AuditScreen)
            and app.screen.loads > 0
            and app.screen.query_one(AuditList).complete
        ),
        "the audit list to index the log and the status to load",
    )
    return app.screen.query_one(AuditList)


async def replay_ready(pilot) -> ReplayScreen:
    app = pilot.app
    await wait_for(
        pilot,
        lambda: isinstance(app.screen, ReplayScreen) and app.screen.result is not None,
        "the replay",
    )
    return app.screen


def step_to(screen: ReplayScreen, step_type: str) -> int:
    return next(i for i, s in enumerate(screen.result.steps) if s.type == step_type)


def cursor_row(screen: ReplayScreen) -> int:
    return screen.query_one("#steps", DataTable).cursor_row


def test_audit_screen(recorded, snap_compare):
    data_dir, _, _ = recorded
    app = LogApp(data_dir, AuditScreen)

    async def run_before(pilot) -> None:
        await audit_ready(pilot)

    assert snap_compare(app, terminal_size=SIZE, run_before=run_before)


def test_audit_screen_small(recorded, snap_compare):
    data_dir, _, _ = recorded
    app = LogApp(data_dir, AuditScreen)

    async def run_before(pilot) -> None:
        await audit_ready(pilot)

    assert snap_compare(app, terminal_size=SMALL, run_before=run_before)


@pytest.mark.slow
def test_event_detail(recorded, snap_compare):
    data_dir, _, _ = recorded
    app = LogApp(data_dir, AuditScreen)

    async def run_before(pilot) -> None:
        audit_list = await audit_ready(pilot)
        denied = next(
            i
            for i in range(len(audit_list.offsets))
            if (audit_list.event_at(i)["data"] or {}).get("decision") == "DENY"
        )
        audit_list.cursor = denied
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, EventDetailScreen), "the detail")

    assert snap_compare(app, terminal_size=SIZE, run_before=run_before)


def test_audit_verify_finds_damage(recorded, snap_compare):
    data_dir, _, _ = recorded
    app = LogApp(data_dir, AuditScreen)

    async def run_before(pilot) -> None:
        audit_list = await audit_ready(pilot)
        target = next(
            audit_list.event_at(i)
            for i in range(len(audit_list.offsets))
            if audit_list.event_at(i)["type"] == "run.started"
        )
        log = app.engine.audit_path
        lines = log.read_bytes().split(b"\n")
        assert b"read the notes" in lines[target["seq"]]
        lines[target["seq"]] = lines[target["seq"]].replace(b"read the notes", b"read the NOTES")
        log.write_bytes(b"\n".join(lines))
        await pilot.press("v")
        await wait_for(pilot, lambda: app.screen.report is not None, "verification")
        assert app.screen.report.first_bad_seq == target["seq"]
        await wait_for(pilot, lambda: audit_list.selected_event["seq"] == target["seq"], "the jump")

    assert snap_compare(app, terminal_size=SIZE, run_before=run_before)


def test_replay_tool_executed_step(recorded, snap_compare):
    data_dir, _, runs = recorded
    app = LogApp(data_dir, lambda engine: ReplayScreen(engine, runs[0]))

    async def run_before(pilot) -> None:
        screen = await replay_ready(pilot)
        target = step_to(screen, "tool.executed")
        await pilot.press(*["right"] * target)
        await wait_for(pilot, lambda: cursor_row(screen) == target, "the tool.executed step")
        assert screen.current.output_matches is True

    assert snap_compare(app, terminal_size=SIZE, run_before=run_before)


@pytest.mark.slow
def test_replay_what_if(recorded, snap_compare):
    data_dir, _, runs = recorded
    strict = data_dir / "strict.json"
    strict.write_text(json.dumps(STRICT))
    app = LogApp(data_dir, lambda engine: ReplayScreen(engine, runs[0]))

    async def run_before(pilot) -> None:
        screen = await replay_ready(pilot)
        await pilot.press("w")
        await wait_for(pilot, lambda: isinstance(app.screen, WhatIfScreen), "the what-if form")
        app.screen.query_one(Input).value = str(strict)
        await pilot.press("enter")
        await wait_for(
            pilot,
            lambda: isinstance(app.screen, ReplayScreen) and screen.result.changed_by_policy,
            "the what-if replay",
        )
        target = step_to(screen, "policy.decision")
        await pilot.press(*["right"] * target)
        await wait_for(pilot, lambda: cursor_row(screen) == target, "the decision step")

    assert snap_compare(app, terminal_size=SIZE, run_before=run_before)
