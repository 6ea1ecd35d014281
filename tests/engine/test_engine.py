"""The in-process Engine: the flow of one intent, approvals, runs, the bus, the lock."""

from __future__ import annotations

import asyncio

import pytest
from support.policies import APPROVAL_POLICY, READ_POLICY

from talon_tui.engine.audit.log import verify_log
from talon_tui.engine.core.keys import load_public
from talon_tui.engine.engine import Engine
from talon_tui.engine.errors import ErrorCode, TalonError
from talon_tui.engine.policy.models import ToolIntent
from talon_tui.engine.runtime.bus import EventBus
from talon_tui.engine.runtime.store import EngineLocked


def _read(path: str) -> ToolIntent:
    return ToolIntent(tool="file.read", params={"path": path})


async def _agent(engine, workspace, policy=READ_POLICY):
    session, key = await engine.create_session("t", str(workspace), policy)
    sid, subject = engine.authenticate_agent(key)
    assert sid == session.id
    return sid, subject


def _types(engine, run_id):
    return [e["type"] for e in engine.store.query(None, run_id, None, 0, 1000)]


async def test_allowed_intent_is_executed_and_audited(engine, workspace):
    sid, subject = await _agent(engine, workspace)
    out = await engine.submit(sid, subject, _read("work/a.txt"))
    assert out["decision"] == "ALLOW"
    assert out["result"]["content"] == "hello"
    assert _types(engine, out["run_id"]) == [
        "run.started",
        "policy.intent.received",
        "policy.decision",
        "capability.issued",
        "tool.executed",
        "run.finished",
    ]
    executed = engine.store.query(None, out["run_id"], ["tool.executed"], 0, 10)[0]["data"]
    assert executed["status"] == "ok"
    assert executed["output"]["content"] == "hello"
    assert executed["output_sha256"].startswith("sha256:")
    # durable before the caller heard the result
    assert engine.audit._durable == engine.audit.next_seq
    runs = await engine.list_runs(sid)
    assert runs[0].run_id == out["run_id"] and runs[0].status == "ok" and runs[0].allowed == 1


async def test_denied_intent_carries_suggested_fix(engine, workspace):
    sid, subject = await _agent(engine, workspace)
    with pytest.raises(TalonError) as err:
        await engine.submit(sid, subject, _read("secret/s.txt"))
    assert err.value.code == ErrorCode.POLICY_DENIED
    fix = err.value.details["suggested_fix"]
    assert fix["tool"] == "file.read" and fix["constraints"]["roots"] == ["secret"]
    run_id = err.value.details["run_id"]
    assert "tool.executed" not in _types(engine, run_id)
    assert (await engine.list_runs(sid))[0].status == "denied"


async def test_runs_are_owned_by_their_session(engine, workspace):
    sid_a, subj_a = await _agent(engine, workspace)
    sid_b, subj_b = await _agent(engine, workspace)
    run_id = await engine.begin_run(sid_a, subj_a, "task")
    with pytest.raises(TalonError) as err:
        await engine.submit(sid_b, subj_b, _read("work/a.txt"), run_id)
    assert err.value.code == ErrorCode.FORBIDDEN
    out = await engine.submit(sid_a, subj_a, _read("work/a.txt"), run_id)
    assert out["run_id"] == run_id
    done = await engine.end_run(sid_a, subj_a, run_id, "ok")
    assert done["steps"] == 1
    with pytest.raises(TalonError):
        await engine.submit(sid_a, subj_a, _read("work/a.txt"), run_id)


async def _pending(engine, count=1):
    sub = engine.bus.subscribe()
    try:
        while len(engine.approvals) < count:
            await sub.get()
    finally:
        sub.close()
    return await engine.list_approvals()


async def test_approval_approve_wakes_exactly_its_intent(engine, workspace):
    sid, subject = await _agent(engine, workspace, APPROVAL_POLICY)
    t1 = asyncio.create_task(engine.submit(sid, subject, _read("work/a.txt")))
    t2 = asyncio.create_task(engine.submit(sid, subject, _read("work/a.txt")))
    pending = await _pending(engine, 2)
    assert len(pending) == 2
    await engine.decide_approval(pending[0].approval_id, True)
    done, _ = await asyncio.wait({t1, t2}, return_when=asyncio.FIRST_COMPLETED)
    assert len(done) == 1
    assert done.pop().result()["result"]["content"] == "hello"
    assert len(engine.approvals) == 1
    await engine.decide_approval(pending[1].approval_id, False)
    other = t2 if t1.done() and not t1.exception() else t1
    with pytest.raises(TalonError) as err:
        await other
    assert err.value.code == ErrorCode.APPROVAL_DENIED
    with pytest.raises(TalonError) as err2:
        await engine.decide_approval(pending[1].approval_id, True)
    assert err2.value.code == ErrorCode.NOT_FOUND


async def test_approval_timeout(tmp_path, workspace):
    async with Engine(tmp_path / "d2", approval_timeout=0.2) as eng:
        sid, subject = await _agent(eng, workspace, APPROVAL_POLICY)
        with pytest.raises(TalonError) as err:
            await eng.submit(sid, subject, _read("work/a.txt"))
        assert err.value.code == ErrorCode.APPROVAL_TIMEOUT
        decided = eng.store.query(None, None, ["approval.decided"], 0, 10)
        assert decided[-1]["data"]["timed_out"] is True
        assert await eng.list_approvals() == []


async def test_approve_and_remember_adds_the_override(engine, workspace):
    sid, subject = await _agent(engine, workspace, APPROVAL_POLICY)
    task = asyncio.create_task(engine.submit(sid, subject, _read("secret/s.txt")))
    # secret/ is outside every override: denied, no approval; ask inside an approval root
    with pytest.raises(TalonError):
        await task
    task = asyncio.create_task(engine.submit(sid, subject, _read("work/a.txt")))
    (pending,) = await _pending(engine)
    assert pending.remember_override["tool"] == "file.read"
    await engine.decide_approval(pending.approval_id, True, remember=True)
    assert (await task)["decision"] == "ALLOW"
    policy = await engine.get_policy(sid)
    assert len(policy.overrides) == 2
    updated = engine.store.query(sid, None, ["policy.updated"], 0, 10)
    assert updated[-1]["data"]["actor"] == "approval"
    # the remembered override is the matched one narrowed to this file, approval kept: the
    # same read still asks (approval: always), before the rule that matched
    remembered = policy.overrides[0]
    assert remembered.constraints.roots == ["work/a.txt"] and remembered.approval == "always"
    task = asyncio.create_task(engine.submit(sid, subject, _read("work/a.txt")))
    (again,) = await _pending(engine)
    await engine.decide_approval(again.approval_id, True)
    assert (await task)["decision"] == "ALLOW"


async def test_secrets_are_redacted_and_big_outputs_truncated(tmp_path, workspace):
    (workspace / "work" / "s.txt").write_text("token=SUPERSECRETVALUE;")
    (workspace / "work" / "big.txt").write_text("x" * 200_000)
    async with Engine(tmp_path / "d3", max_output_bytes=4096) as eng:
        await eng.set_secret("api", "SUPERSECRETVALUE")
        sid, subject = await _agent(eng, workspace)
        out = await eng.submit(sid, subject, _read("work/s.txt"))
        assert "SUPERSECRETVALUE" not in str(out)
        big = await eng.submit(sid, subject, _read("work/big.txt"))
        assert len(big["result"]["content"]) == 200_000
        rec = eng.store.query(None, big["run_id"], ["tool.executed"], 0, 1)[0]["data"]
        assert rec["truncated"] is True and rec["bytes"] > 200_000
        assert len(rec["output"]["content"]) < 4096
    raw = (tmp_path / "d3" / "audit" / "audit.jsonl").read_text()
    assert "SUPERSECRETVALUE" not in raw


async def test_second_engine_is_refused_and_restart_rebuilds_runs(tmp_path, workspace):
    data = tmp_path / "d4"
    eng = Engine(data)
    await eng.start()
    sid, subject = await _agent(eng, workspace)
    out = await eng.submit(sid, subject, _read("work/a.txt"))
    open_run = await eng.begin_run(sid, subject, "left open")
    with pytest.raises(EngineLocked, match="already running"):
        await Engine(data).start()
    await eng.stop()
    report = verify_log(data / "audit", load_public(data / "keys", "audit"))
    assert report.valid and report.signed_head_seq == report.events - 2  # final checkpoint
    async with Engine(data) as again:
        runs = {r.run_id: r for r in await again.list_runs()}
        assert runs[out["run_id"]].status == "ok"
        assert runs[open_run].status == "interrupted"


async def test_bus_overflow_reports_missed_and_never_blocks():
    bus = EventBus(queue_size=3)
    sub = bus.subscribe()
    for seq in range(10):
        bus.publish("audit", {"seq": seq})
    got = [await sub.get() for _ in range(4)]
    assert [m.payload.get("seq") for m in got[:3]] == [0, 1, 2]
    assert got[3].kind == "missed" and got[3].payload == {"count": 7, "from_seq": 3}
    bus.publish("audit", {"seq": 10})
    assert (await sub.get()).payload["seq"] == 10
    sub.close()
    assert await sub.get() is None


async def test_subscribe_from_seq_replays_then_follows(engine, workspace):
    sid, subject = await _agent(engine, workspace)
    stream = engine.subscribe(from_seq=0)
    first = await anext(stream)
    assert first.kind == "audit" and first.payload["seq"] == 0
    await engine.submit(sid, subject, _read("work/a.txt"))
    seen = []
    async for msg in stream:
        if msg.kind == "audit":
            seen.append(msg.payload["seq"])
            if msg.payload["type"] == "run.finished":
                break
    assert seen == list(range(1, seen[-1] + 1))
    await stream.aclose()
