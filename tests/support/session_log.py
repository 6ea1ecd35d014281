"""A recorded session for the session replay and run comparison tests: two runs of the same
agent task under a policy that changes in between (one allowed write, a denial, an approval
that was allowed after a wait, then a policy change and a second run where the write is
different and the denied read is now allowed)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from pathlib import Path

from talon_tui.engine.engine import Engine
from talon_tui.engine.errors import TalonError
from talon_tui.engine.policy.models import ToolIntent

POLICY_1 = {
    "version": 1,
    "overrides": [
        {"tool": "file.read", "allow": True, "constraints": {"roots": ["work"]}},
        {"tool": "file.write", "allow": True, "constraints": {"roots": ["work"]}},
        {
            "tool": "file.write",
            "allow": True,
            "approval": "always",
            "constraints": {"roots": ["drafts"]},
        },
    ],
}
POLICY_2 = {
    "version": 1,
    "overrides": [
        {"tool": "file.read", "allow": True, "constraints": {"roots": ["work", "secret"]}},
        {"tool": "file.write", "allow": True, "constraints": {"roots": ["work"]}},
    ],
}
WHAT_IF = {
    "version": 1,
    "overrides": [{"tool": "file.read", "allow": True, "constraints": {"roots": ["."]}}],
}


@dataclass
class Recorded:
    session_id: str
    runs: list[str] = field(default_factory=list)


async def _one(engine: Engine, sid: str, run_id: str, tool: str, params: dict) -> None:
    intent = ToolIntent(tool=tool, params=params, origin="agent")
    try:
        await engine.submit(sid, "agent:a", intent, run_id=run_id)
    except TalonError:
        pass  # a denial is part of the recording


async def _approve_when_waiting(engine: Engine) -> None:
    for _ in range(500):
        pending = await engine.list_approvals()
        if pending:
            await engine.decide_approval(pending[0].approval_id, True)
            return
        await asyncio.sleep(0.01)
    raise AssertionError("no approval to decide")


async def record(engine: Engine, workspace: Path) -> Recorded:
    (workspace / "work").mkdir(parents=True, exist_ok=True)
    (workspace / "drafts").mkdir(exist_ok=True)
    (workspace / "secret").mkdir(exist_ok=True)
    (workspace / "work" / "a.txt").write_text("hello")
    (workspace / "secret" / "s.txt").write_text("nope")
    session, _key = await engine.create_session("research-agent", str(workspace), POLICY_1)
    out = Recorded(session.id)
    for n, content in enumerate(("first\n", "second\n")):
        run_id = await engine.begin_run(session.id, "agent:a", f"task {n}")
        out.runs.append(run_id)
        await _one(engine, session.id, run_id, "file.read", {"path": "work/a.txt"})
        await _one(
            engine, session.id, run_id, "file.write", {"path": "work/out.txt", "content": content}
        )
        await _one(engine, session.id, run_id, "file.read", {"path": "secret/s.txt"})
        if n == 0:
            approver = asyncio.ensure_future(_approve_when_waiting(engine))
            await _one(
                engine, session.id, run_id, "file.write", {"path": "drafts/d.md", "content": "d"}
            )
            await approver
        await engine.end_run(session.id, "agent:a", run_id, "ok")
        if n == 0:
            await engine.set_policy(session.id, POLICY_2)
    await engine.durable()
    return out
