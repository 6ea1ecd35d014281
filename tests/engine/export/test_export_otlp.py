"""OTLP/HTTP export end to end: a real `talon serve --export otlp=URL` and a real collector on
127.0.0.1 that decodes the protobuf with opentelemetry-proto. Every event of the log arrives
once, in order, with the stable attributes: while the collector is up, after it was down and
comes back, and after the engine restarts (the cursor is persisted)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from support.pipe import Serve, make_workspace, new_session, run
from support.receivers import OtlpReceiver, wait_for

from talon_tui.client import AdminClient, AgentClient

pytestmark = pytest.mark.slow


def log_events(data: Path) -> list[dict]:
    lines = (data / "audit" / "audit.jsonl").read_bytes().splitlines()
    return [json.loads(line) for line in lines]


def reads(serve: Serve, key: str, n: int) -> None:
    with AgentClient(key, socket_path=serve.socket_path) as agent:
        for _ in range(n):
            agent.intent("file.read", {"path": "work/a.txt"})


async def exports_status(serve: Serve) -> list[dict]:
    async with await AdminClient.connect(serve.data) as admin:
        return (await admin.status()).exports


def test_otlp_every_event_once_in_order_across_outage_and_restart(tmp_path):
    collector = OtlpReceiver("127.0.0.1").start()
    data = tmp_path / "data"
    args = ["--export", f"otlp={collector.base}"]
    serve = Serve(data, args=args).start()
    try:
        session_id, key = run(new_session(serve, make_workspace(tmp_path)))
        reads(serve, key, 3)
        head = log_events(data)[-1]["seq"]
        wait_for(lambda: collector.seqs()[-1:] == [head] or head in collector.seqs(), what="up")

        # the collector goes down: intents still work, the exporter backs off, lag shows
        collector.stop()
        reads(serve, key, 5)
        wait_for(lambda: run(exports_status(serve))[0]["state"] == "backing off", what="backoff")
        rows = run(exports_status(serve))
        assert rows[0]["lag"] > 0 and "did not take" in rows[0]["error"]
        assert rows[0]["kind"] == "otlp"

        # it comes back on the same port: the backlog arrives, nothing twice
        collector.start()
        head = log_events(data)[-1]["seq"]
        wait_for(lambda: head in collector.seqs(), timeout=60, what="backlog after outage")
        rc, err = serve.terminate()
        assert rc == 0, err
    finally:
        serve.stop_quietly()

    # restart: the cursor resumes; no event is sent again
    serve = Serve(data, args=args).start()
    try:
        reads(serve, key, 2)
        rc, err = serve.terminate()
        assert rc == 0, err
    finally:
        serve.stop_quietly()
    collector.stop()

    events = log_events(data)
    assert collector.seqs() == [e["seq"] for e in events]  # every event, once, in order
    by_seq = {r["attributes"]["talon.seq"]: r for r in collector.records}
    assert {r["path"] for r in collector.records} == {"/v1/logs"}
    decisions = [e for e in events if e["type"] == "policy.decision"]
    assert len(decisions) == 10
    for event in decisions:
        attrs = by_seq[event["seq"]]["attributes"]
        assert attrs["talon.type"] == "policy.decision"
        assert attrs["talon.session_id"] == session_id
        assert attrs["talon.run_id"] == event["run_id"] != ""
        assert attrs["talon.tool"] == "file.read"
        assert attrs["talon.decision"] == "ALLOW"
        assert attrs["talon.reason"] == event["data"]["reason"]
        assert attrs["talon.hash"] == event["hash"]
        assert attrs["talon.actor"] == "policy"
        assert json.loads(attrs["talon.data"]) == event["data"]
    for name in (
        "talon.seq",
        "talon.type",
        "talon.session_id",
        "talon.run_id",
        "talon.tool",
        "talon.decision",
        "talon.reason",
        "talon.hash",
        "talon.actor",
    ):
        assert all(name in r["attributes"] for r in collector.records), name
    checkpoints = [e for e in events if e["type"] == "audit.checkpoint"]
    assert checkpoints  # the final checkpoints of both shutdowns were exported before exit
    last = by_seq[checkpoints[-1]["seq"]]["attributes"]
    assert last["talon.head.seq"] == checkpoints[-1]["data"]["checkpoint_seq"]
    assert last["talon.head.signature"] == checkpoints[-1]["data"]["signature"]
    assert by_seq[0]["resource"]["service.name"] == "talon"
