"""Load and crash behaviour of a real `talon serve`: many agents at once, kill -9 under load,
clean SIGTERM."""

from __future__ import annotations

import asyncio

import pytest
from support.pipe import Serve, make_workspace, new_session, run

from talon_tui.client import AsyncAgentClient
from talon_tui.engine.audit.log import iter_events, verify_log
from talon_tui.engine.core.keys import load_public


def _verify(data):
    return verify_log(data / "audit", load_public(data / "keys", "audit"))


def _events(data):
    return [e for _off, e in iter_events(data / "audit" / "audit.jsonl")]


async def _agent_loop(serve, key, n, acked, errors):
    async with await AsyncAgentClient.connect(key, socket_path=serve.socket_path) as agent:
        for _ in range(n):
            try:
                out = await agent.intent("file.read", {"path": "work/a.txt"})
            except Exception as exc:  # collected and asserted on below
                errors.append(repr(exc))
                return
            acked.append(out.intent_id)


#: intents per agent in the fifty-agent load: enough that all 50 connections stay busy at
#: once for the whole run and the writer signs a dozen checkpoints in the middle of it
#: (the checks are exact counts, whatever the number)
INTENTS_PER_AGENT = 80


@pytest.mark.slow
def test_fifty_agents_eighty_intents_each(tmp_path):
    serve = Serve(tmp_path / "data").start()
    n = INTENTS_PER_AGENT
    try:
        ws = make_workspace(tmp_path)
        sessions = [run(new_session(serve, ws)) for _ in range(5)]
        acked, errors = [], []

        async def load():
            await asyncio.gather(
                *(_agent_loop(serve, sessions[i % 5][1], n, acked, errors) for i in range(50))
            )

        run(load())
        assert errors == []
        assert len(acked) == 50 * n
    finally:
        code, err = serve.terminate()
    assert code == 0, err
    report = _verify(serve.data)
    assert report.valid, report
    events = _events(serve.data)
    executed = sum(1 for e in events if e["type"] == "tool.executed")
    assert executed == 50 * n
    assert events[-1]["type"] == "audit.checkpoint"
    assert sum(1 for e in events if e["type"] == "audit.checkpoint") >= 10


@pytest.mark.slow
def test_kill_9_under_load_then_restart(tmp_path):
    serve = Serve(tmp_path / "data").start()
    ws = make_workspace(tmp_path)
    _sid, key = run(new_session(serve, ws))
    acked: list[str] = []
    errors: list[str] = []

    async def load_then_kill():
        tasks = [
            asyncio.create_task(_agent_loop(serve, key, 100_000, acked, errors)) for _ in range(8)
        ]
        # 600 acknowledged: the 8 agents are in full flow and the log is past three
        # checkpoints; the kill then lands mid-batch
        while len(acked) < 600:
            await asyncio.sleep(0.01)
        serve.kill9()
        await asyncio.gather(*tasks, return_exceptions=True)

    run(load_then_kill())
    assert errors  # the agents saw the engine go away
    seen_before = list(acked)
    # a write torn by the crash (what a power cut mid-append leaves): cut off at restart
    with open(serve.data / "audit" / "audit.jsonl", "ab") as fh:
        fh.write(b'{"data":{"intent_id":"int_torn"')
    again = Serve(serve.data).start()
    try:
        code, err = again.terminate()
        assert code == 0, err
    finally:
        again.stop_quietly()
    report = _verify(serve.data)
    assert report.valid, report
    events = _events(serve.data)
    executed = {e["data"]["intent_id"] for e in events if e["type"] == "tool.executed"}
    missing = [i for i in seen_before if i not in executed]
    assert missing == []
    types = [e["type"] for e in events]
    assert types.count("engine.started") == 2
    recovered = [e for e in events if e["type"] == "audit.recovered"]
    assert len(recovered) == 1 and recovered[0]["data"]["bytes"] > 0
    assert (serve.data / "audit" / recovered[0]["data"]["side_file"]).exists()
    # runs left open by the crash are closed as interrupted at the restart
    interrupted = [
        e for e in events if e["type"] == "run.finished" and e["data"]["status"] == "interrupted"
    ]
    started = {e["run_id"] for e in events if e["type"] == "run.started"}
    finished = {e["run_id"] for e in events if e["type"] == "run.finished"}
    assert started == finished
    assert len(interrupted) <= 8


def test_clean_sigterm_writes_final_checkpoint_and_removes_socket(tmp_path):
    serve = Serve(tmp_path / "data").start()
    ws = make_workspace(tmp_path)
    _sid, key = run(new_session(serve, ws))
    acked, errors = [], []
    run(_agent_loop(serve, key, 10, acked, errors))
    code, err = serve.terminate()
    assert code == 0, err
    assert not serve.socket_path.exists()
    events = _events(serve.data)
    assert [e["type"] for e in events[-2:]] == ["engine.stopped", "audit.checkpoint"]
    report = _verify(serve.data)
    assert report.valid and report.signed_head_seq == events[-2]["seq"]
    head = (serve.data / "audit" / "HEAD").read_text()
    assert f'"seq":{events[-1]["seq"]}' in head
