"""Shared set-up for the audit and replay screen tests: a real in-process Engine on a data dir,
deterministic ids and clock, recorded runs, and waiting on conditions (never sleeping)."""

from __future__ import annotations

import asyncio
import shutil
import types
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from textual.app import App
from textual.screen import Screen

from support.clock import CountingIds, ticking
from support.ui import no_blink, screen_text  # noqa: F401  (re-exported to the tests)
from talon_tui.engine import engine as engine_module
from talon_tui.engine.audit.replay import output_digest
from talon_tui.engine.core import ids
from talon_tui.engine.engine import Engine

HOSTILE_MARKUP = "[bold green]ALLOW[/]"
HOSTILE_LINK = "[link=http://x]y[/link]"
HOSTILE_ANSI = "\x1b[2J"
BIG = "B" * (1 << 20)

POLICY: dict[str, Any] = {
    "version": 1,
    "overrides": [
        {
            "tool": "file.read",
            "allow": True,
            "approval": "never",
            "constraints": {"roots": ["work"], "max_bytes": 1048576, "ttl_seconds": 60},
        }
    ],
}
STRICT: dict[str, Any] = {"version": 1, "overrides": []}


def deterministic(monkeypatch) -> None:
    """Counted ids, a clock that ticks one second a call, and a fixed pid in engine.started."""
    start = datetime(2026, 11, 25, 17, 0, 0, tzinfo=UTC)
    # tests/conftest.py puts the system clock back after the test
    ids.set_clock(ticking(start, timedelta(seconds=1), ids=CountingIds(shared=True)))
    fake_os = types.SimpleNamespace(
        **{k: getattr(engine_module.os, k) for k in dir(engine_module.os)}
    )
    fake_os.getpid = lambda: 4242
    monkeypatch.setattr(engine_module, "os", fake_os)


def fixed_data_dir(name: str) -> Path:
    """A data dir at a fixed path (snapshots show paths), emptied first."""
    path = Path("/tmp") / f"talon-snap-{name}"
    shutil.rmtree(path, ignore_errors=True)
    return path


def make_workspace(root: Path) -> Path:
    ws = root / "ws"
    (ws / "work").mkdir(parents=True, exist_ok=True)
    (ws / "work" / "notes.txt").write_text("hello\n")
    return ws


def record_run(
    engine: Engine,
    session_id: str,
    *,
    path: str = "work/notes.txt",
    content: str = "read the notes",
    output: Any = None,
    decision: str = "ALLOW",
    reason: str = "allowed by override 0 (file.read)",
) -> str:
    """Write one complete run through the engine's own audit log, with fixed data (a real
    `submit` puts time-dependent token hashes in the log, which snapshots cannot hold)."""
    audit = engine.audit
    run_id = ids.new_id("run")
    intent_id = ids.new_id("int")
    out = output if output is not None else {"path": path, "content": "hello\n", "bytes": 6}
    audit.append(
        "run.started",
        session_id=session_id,
        run_id=run_id,
        data={"subject": "agent-1", "content": content, "one_shot": False},
    )
    audit.append(
        "policy.intent.received",
        session_id=session_id,
        run_id=run_id,
        data={
            "intent_id": intent_id,
            "subject": "agent-1",
            "tool": "file.read",
            "params": {"path": path},
            "origin": "agent",
            "intent_hash": "sha256:" + "1" * 64,
        },
    )
    audit.append(
        "policy.decision",
        session_id=session_id,
        run_id=run_id,
        data={
            "intent_id": intent_id,
            "tool": "file.read",
            "decision": decision,
            "reason": reason,
            "by": "policy",
            "override_index": 0 if decision == "ALLOW" else None,
            "suggested_fix": None,
            "code": None if decision == "ALLOW" else "POLICY_DENIED",
        },
    )
    if decision == "ALLOW":
        audit.append(
            "capability.issued",
            session_id=session_id,
            run_id=run_id,
            data={
                "intent_id": intent_id,
                "jti": "jti_0001",
                "token_sha256": "sha256:" + "ab" * 32,
                "tool": "file.read",
                "exp": 1795712460,
                "ttl_seconds": 60,
            },
        )
        audit.append(
            "tool.executed",
            session_id=session_id,
            run_id=run_id,
            data={
                "intent_id": intent_id,
                "tool": "file.read",
                "status": "ok",
                "code": None,
                "message": "",
                "output": out,
                "output_sha256": output_digest(out),
                "bytes": 6,
                "truncated": False,
                "redacted": False,
                "duration_ms": 1,
            },
        )
    audit.append(
        "run.finished",
        session_id=session_id,
        run_id=run_id,
        data={"status": "ok" if decision == "ALLOW" else "denied", "steps": 1},
    )
    audit.sync()
    return run_id


async def seeded_engine(data_dir: Path, *, hostile: bool = False) -> tuple[Engine, str, list[str]]:
    """A started Engine with one session and two recorded runs (one allowed, one denied)."""
    engine = Engine(data_dir)
    await engine.start()
    ws = make_workspace(data_dir)
    session, _ = await engine.create_session("demo", str(ws), POLICY)
    runs = [
        record_run(engine, session.id),
        record_run(
            engine,
            session.id,
            path="secrets/key.pem",
            decision="DENY",
            reason="no override allows file.read of secrets/key.pem",
        ),
    ]
    if hostile:
        runs.append(
            record_run(
                engine,
                session.id,
                path=HOSTILE_LINK + HOSTILE_ANSI,
                content=HOSTILE_MARKUP,
                output={"content": HOSTILE_MARKUP + HOSTILE_ANSI + HOSTILE_LINK + BIG},
            )
        )
    return engine, session.id, runs


class ScreenApp(App[None]):
    """Shows one screen made by `factory(engine)` over a seeded engine started in the app's loop
    (snapshot tests run their own event loop)."""

    def __init__(
        self,
        data_dir: Path,
        factory: Callable[[Engine, str, list[str]], Screen],
        *,
        hostile: bool = False,
        before: Callable[[Engine, str, list[str]], Any] | None = None,
    ) -> None:
        super().__init__()
        self.data_dir = data_dir
        self.factory = factory
        self.hostile = hostile
        self.before = before
        self.engine: Engine | None = None
        self.session_id = ""
        self.runs: list[str] = []
        self.readonly = False

    async def on_mount(self) -> None:
        self.engine, self.session_id, self.runs = await seeded_engine(
            self.data_dir, hostile=self.hostile
        )
        if self.before is not None:
            self.before(self.engine, self.session_id, self.runs)
        await self.push_screen(self.factory(self.engine, self.session_id, self.runs))

    async def go_back(self) -> None:
        await self.pop_screen()

    async def action_go_back(self) -> None:
        if len(self.screen_stack) > 2:
            await self.pop_screen()

    async def on_unmount(self) -> None:
        if self.engine is not None:
            await self.engine.stop()


async def wait_for(pilot: Any, predicate: Callable[[], Any], what: str, timeout: float = 10.0):
    """Let the app run until `predicate()` holds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        value = predicate()
        if value:
            await pilot.wait_for_scheduled_animations()
            await pilot.pause()
            return value
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await pilot.pause(0.02)


async def shown(pilot: Any, *needles: str, timeout: float = 10.0) -> str:
    """The screen's text once it shows every one of `needles`."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        text = screen_text(pilot.app)
        if all(n in text for n in needles):
            return text
        if loop.time() > deadline:
            missing = [n for n in needles if n not in text]
            raise AssertionError(f"screen never showed {missing!r}; it shows:\n{text}")
        await pilot.pause(0.02)
