"""`submit` (the broker runs the tool) and the hooks' `decide` (the agent runs it) share one
run/step bookkeeping (`IntentFlow._intent_run`) and one policy part (`IntentFlow._judge`): the
same events in the same order, the same run ending, and a denial that names its decision's
audit seq either way."""

from __future__ import annotations

import pytest
from support.pipe import READ_POLICY

from talon_tui.engine.audit.log import iter_events
from talon_tui.engine.errors import ErrorCode, PolicyDenied, TalonError
from talon_tui.engine.policy.models import ToolIntent


async def _agent(engine, workspace) -> tuple[str, str]:
    _s, key = await engine.create_session("w", str(workspace), READ_POLICY)
    return engine.authenticate_agent(key)


def _run_events(engine, run_id: str) -> list[dict]:
    return [e for _off, e in iter_events(engine.audit_path) if e.get("run_id") == run_id]


async def _denied(call) -> TalonError:
    with pytest.raises(PolicyDenied) as info:
        await call
    return info.value


async def test_a_denied_decide_names_its_decision_seq_like_a_denied_submit(engine, workspace):
    sid, subject = await _agent(engine, workspace)
    outside = {"path": "secret/s.txt"}
    by_submit = await _denied(
        engine.submit(sid, subject, ToolIntent(tool="file.read", params=outside))
    )
    by_decide = await _denied(engine.decide(sid, subject, "file.read", outside))
    for exc, executor in ((by_submit, None), (by_decide, "agent")):
        assert exc.code == ErrorCode.POLICY_DENIED
        events = _run_events(engine, exc.details["run_id"])
        assert [e["type"] for e in events] == [
            "run.started",
            "policy.intent.received",
            "policy.decision",
            "run.finished",
        ]
        decision = events[2]
        assert exc.details["audit_seq"] == decision["seq"]
        assert exc.details["intent_id"] == decision["data"]["intent_id"]
        assert decision["data"]["decision"] == "DENY"
        assert decision["data"].get("executor") == executor
        assert events[3]["data"] == {"status": "denied", "steps": 1}


async def test_allowed_submit_and_decide_open_and_close_their_runs_alike(engine, workspace):
    sid, subject = await _agent(engine, workspace)
    inside = {"path": "work/a.txt"}
    done = await engine.submit(sid, subject, ToolIntent(tool="file.read", params=inside))
    decided = await engine.decide(sid, subject, "file.read", inside, ref="call-1")
    assert decided["executor"] == "agent" and decided["decision"] == "ALLOW"
    submitted = [e["type"] for e in _run_events(engine, done["run_id"])]
    agent_run = [e["type"] for e in _run_events(engine, decided["run_id"])]
    assert submitted == [
        "run.started",
        "policy.intent.received",
        "policy.decision",
        "capability.issued",
        "tool.executed",
        "run.finished",
    ]
    assert agent_run == ["run.started", "policy.intent.received", "policy.decision", "run.finished"]
    # inside a run the caller owns, neither opens nor closes one; another session's run is
    # refused by both before anything is logged
    run_id = await engine.begin_run(sid, subject)
    await engine.decide(sid, subject, "file.read", inside, run_id)
    await engine.submit(sid, subject, ToolIntent(tool="file.read", params=inside), run_id)
    types = [e["type"] for e in _run_events(engine, run_id)]
    assert types.count("run.started") == 1 and "run.finished" not in types
    other_sid, other_subject = await _agent(engine, workspace)
    before = engine.audit.next_seq
    for call in (
        engine.decide(other_sid, other_subject, "file.read", inside, run_id),
        engine.submit(
            other_sid, other_subject, ToolIntent(tool="file.read", params=inside), run_id
        ),
    ):
        with pytest.raises(TalonError) as info:
            await call
        assert info.value.code == ErrorCode.FORBIDDEN
    assert engine.audit.next_seq == before
    assert engine._active == 0
