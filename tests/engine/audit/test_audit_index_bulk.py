"""AuditIndex's bulk block scan builds exactly the index the line-by-line scan builds."""

from __future__ import annotations

import pytest

from talon_tui.engine.audit import index as audit_index
from talon_tui.engine.audit.log import AuditIndex, AuditLog
from talon_tui.engine.core import keys

IDS = ["run_a", "rün \U0001f600", 'q"uote', "back\\slash", "nl\nx", None]


def snapshot(idx: AuditIndex):
    return (
        list(idx.offsets),
        {k: list(v) for k, v in idx.runs.items()},
        {k: list(v) for k, v in idx.sessions.items()},
        idx.session_runs,
        {s: {k: list(v) for k, v in kinds.items()} for s, kinds in idx.marks.items()},
        idx.size,
        idx.last_hash,
    )


@pytest.mark.parametrize("block", [300, 4096, 1 << 20])
def test_bulk_index_equals_line_by_line(tmp_path, monkeypatch, block):
    priv, _ = keys.load_or_create(tmp_path / "keys", "audit")
    log = AuditLog(tmp_path / "audit", priv, checkpoint_every=7).open()
    for i in range(120):
        run = IDS[(i // 3) % len(IDS)]
        log.append("run.started", session_id=IDS[i % len(IDS)], run_id=run, data={"i": i})
    log.close()
    path = tmp_path / "audit" / "audit.jsonl"
    with open(path, "ab") as fh:
        fh.write(b'{"seq":999,"run_id":"torn')  # a torn tail is not indexed
    monkeypatch.setattr(audit_index, "_SCAN_BLOCK", block)
    bulk = AuditIndex.load(tmp_path / "audit", save=False)
    monkeypatch.setattr(AuditIndex, "_index_block", lambda self, b, cut, off: False)
    slow = AuditIndex.load(tmp_path / "audit", save=False)
    assert snapshot(bulk) == snapshot(slow)
    assert len(bulk) == 120 + 120 // 7 + 1
    assert bulk.seqs_for(run_id='q"uote') and bulk.seqs_for(session_id="nl\nx")
    lines = path.read_bytes().splitlines(keepends=True)
    assert all(lines[s].startswith(b"{") for s in bulk.seqs_for(run_id="rün \U0001f600"))


MARKED = [
    ("session.created", {"workspace": "/w"}),
    ("policy.updated", {"policy": {"version": 1}}),
    ("policy.decision", {"decision": "DENY", "reason": "no"}),
    ("policy.decision", {"decision": "ALLOW", "note": {"decision": "DENY"}}),  # a decoy
    ("policy.intent.received", {"params": {"decision": "DENY", "type": "policy.updated"}}),
    ("approval.decided", {"allow": True}),
    ("tool.executed", {"output": '"type":"approval.decided"'}),
]


@pytest.mark.parametrize("block", [300, 4096, 1 << 20])
def test_session_runs_and_marks_bulk_equals_line_by_line(tmp_path, monkeypatch, block):
    """Each session's runs and its marks (denials, approvals' ends, policy changes, its start)
    are the same from the bulk scan and from parsing every line, decoys in data ignored."""
    priv, _ = keys.load_or_create(tmp_path / "keys", "audit")
    log = AuditLog(tmp_path / "audit", priv, checkpoint_every=11).open()
    for i in range(140):
        etype, data = MARKED[i % len(MARKED)]
        sid = IDS[(i // 7) % 3]
        log.append(etype, session_id=sid, run_id=f"run_{i // 5}", data=data)
    log.close()
    monkeypatch.setattr(audit_index, "_SCAN_BLOCK", block)
    bulk = AuditIndex.load(tmp_path / "audit", save=False)
    monkeypatch.setattr(AuditIndex, "_index_block", lambda self, b, cut, off: False)
    slow = AuditIndex.load(tmp_path / "audit", save=False)
    assert snapshot(bulk) == snapshot(slow)
    lines = (tmp_path / "audit" / "audit.jsonl").read_bytes().splitlines()
    import json

    events = [json.loads(x) for x in lines]
    for sid in IDS[:3]:
        want = {
            "created": [
                e["seq"]
                for e in events
                if e["session_id"] == sid and e["type"] == "session.created"
            ],
            "policy": [
                e["seq"] for e in events if e["session_id"] == sid and e["type"] == "policy.updated"
            ],
            "approval": [
                e["seq"]
                for e in events
                if e["session_id"] == sid and e["type"] == "approval.decided"
            ],
            "denial": [
                e["seq"]
                for e in events
                if e["session_id"] == sid
                and e["type"] == "policy.decision"
                and e["data"]["decision"] == "DENY"
            ],
        }
        assert all(want.values())
        assert {k: list(bulk.marked(sid, k)) for k in want} == want
        firsts = {}
        for e in events:
            if e["run_id"] is not None:
                firsts.setdefault(e["run_id"], e["session_id"])
        assert bulk.runs_of(sid) == [r for r, s in firsts.items() if s == sid]
