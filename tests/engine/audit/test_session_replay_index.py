"""Session replay reads through the index's per-session runs and marks (issue 16, scale).

They are derived data like the rest of `index.bin`: a stale or wrong index must never make a
replay show wrong events. Every marked event is read and checked (seq, session, hash, link, and
that it is the mark it is listed as), a mismatch rebuilds the index from the log, `audit
verify` reports a MAC-valid index whose marks disagree with the log, and an index kept in
memory (`IndexCache`) follows the log as it grows.
"""

from __future__ import annotations

import json
from array import array
from pathlib import Path

import pytest

from talon_tui.engine.audit.index import AuditIndex, IndexCache, check_index, index_key
from talon_tui.engine.audit.log import AuditLog
from talon_tui.engine.audit.session_replay import (
    session_jump,
    session_marks,
    session_timeline,
)
from talon_tui.engine.core import keys
from talon_tui.engine.errors import BadRequest, NotFound

SID = "sess_a"
OTHER = "sess_b"


def decision(log: AuditLog, run: str, i: int, verdict: str, sid: str = SID) -> int:
    log.append(
        "policy.intent.received",
        session_id=sid,
        run_id=run,
        data={"intent_id": f"int_{run}_{i}", "tool": "file.read", "params": {"path": f"p{i}"}},
    )
    ev = log.append(
        "policy.decision",
        session_id=sid,
        run_id=run,
        data={"intent_id": f"int_{run}_{i}", "tool": "file.read", "decision": verdict},
    )
    return int(ev["seq"])


def record(data: Path) -> dict[str, list[int]]:
    """Two sessions interleaved: SID's denials, approvals and policy changes are returned."""
    priv, _ = keys.load_or_create(data / "keys", "audit")
    log = AuditLog(data / "audit", priv, checkpoint_every=5).open()
    out: dict[str, list[int]] = {"denial": [], "approval": [], "policy": []}
    log.append("session.created", session_id=SID, data={"workspace": "/w"})
    log.append("session.created", session_id=OTHER, data={"workspace": "/o"})
    for r in range(4):
        run = f"run_{r}"
        log.append("run.started", session_id=SID, run_id=run, data={"content": ""})
        log.append("run.started", session_id=OTHER, run_id=f"other_{r}", data={"content": ""})
        decision(log, run, 0, "ALLOW")
        decision(log, f"other_{r}", 0, "DENY", sid=OTHER)  # another session's denial
        out["denial"].append(decision(log, run, 1, "DENY"))
        ev = log.append(
            "approval.decided", session_id=SID, run_id=run, data={"approval_id": f"a{r}"}
        )
        out["approval"].append(int(ev["seq"]))
        log.append("run.finished", session_id=SID, run_id=run, data={"status": "ok"})
        if r % 2 == 0:
            ev = log.append(
                "policy.updated",
                session_id=SID,
                data={"policy": {"version": 1, "overrides": [{"tool": f"t{r}"}]}},
            )
            out["policy"].append(int(ev["seq"]))
    log.close()
    return out


@pytest.fixture
def recorded(tmp_path):
    data = tmp_path / "data"
    return data, record(data)


def stored(data: Path) -> AuditIndex:
    priv, _ = keys.load_or_create(data / "keys", "audit")
    return AuditIndex.load(data / "audit", key=index_key(priv))


def test_marks_and_jumps_match_the_log(recorded):
    data, want = recorded
    audit = data / "audit"
    assert session_marks(audit, SID) == want
    tl = session_timeline(audit, SID)
    assert tl.run_count == 4 and [r.run_id for r in tl.runs] == [f"run_{r}" for r in range(4)]
    assert [r.number for r in tl.runs] == [1, 2, 3, 4]
    assert tl.counts == {kind: len(seqs) for kind, seqs in want.items()}
    assert [p.seq for p in tl.policies] == want["policy"]
    assert tl.policies[1].diff and '+      "tool": "t2"' in tl.policies[1].diff
    for kind, seqs in want.items():
        assert session_jump(audit, SID, kind, -1, 1) == seqs[0]
        assert session_jump(audit, SID, kind, seqs[0], 1) == seqs[1]
        assert session_jump(audit, SID, kind, seqs[-1], 1) is None
        assert session_jump(audit, SID, kind, 10**9, -1) == seqs[-1]
        assert session_jump(audit, SID, kind, seqs[0], -1) is None
    with pytest.raises(BadRequest):
        session_jump(audit, SID, "execution", 0, 1)
    with pytest.raises(NotFound):
        session_jump(audit, "sess_nope", "denial", 0, 1)


def test_a_mac_valid_index_with_wrong_marks_shows_the_log(recorded):
    """An index whose MAC verifies but whose marks are wrong (a bug, or the log rewritten
    under it): a mark that is not what it says rebuilds the index, a run listed under the
    wrong session is caught, and `audit verify` says the index does not match the log."""
    data, want = recorded
    audit = data / "audit"
    idx = stored(data)
    events = [json.loads(x) for x in (audit / "audit.jsonl").read_bytes().splitlines()]
    allowed = next(  # this session's ALLOW decision before its first denial
        e["seq"] for e in events if e["session_id"] == SID and e["data"].get("decision") == "ALLOW"
    )
    idx.marks[SID]["denial"] = array("I", [allowed, *want["denial"][1:]])
    idx.marks[SID]["policy"] = array("I", want["policy"][1:])
    idx.session_runs[SID] = ["other_0", *idx.session_runs[SID]]
    idx.save()
    assert stored(data).status == "reused"
    assert check_index(audit).startswith("does not match the log")

    # the wrong denial is never shown as one: the index is rebuilt and the jump finds the real
    assert session_jump(audit, SID, "denial", -1, 1) == want["denial"][0]
    assert list(stored(data).marked(SID, "denial")) == want["denial"]
    assert check_index(audit).startswith("ok")


@pytest.mark.parametrize("edit", ["runs", "policy"])
def test_a_wrong_run_list_or_a_hidden_policy_change_is_rebuilt(recorded, edit):
    data, want = recorded
    audit = data / "audit"
    idx = stored(data)
    if edit == "runs":  # another session's run listed under this one
        idx.session_runs[SID] = ["other_0", *idx.session_runs[SID]]
    else:  # a policy change's mark pointing at the approval before it
        idx.marks[SID]["policy"] = array("I", [want["approval"][0], *want["policy"][1:]])
    idx.save()
    tl = session_timeline(audit, SID)
    assert [r.run_id for r in tl.runs] == [f"run_{r}" for r in range(4)]
    assert [p.seq for p in tl.policies] == want["policy"]


def test_an_edited_index_without_the_key_is_not_used(recorded):
    data, want = recorded
    audit = data / "audit"
    stored(data)
    blob = bytearray((audit / "index.bin").read_bytes())
    at = blob.index(b'"denial":[') + len(b'"denial":[')
    blob[at : at + 1] = b"9"  # the first denial's seq changed, the MAC kept
    (audit / "index.bin").write_bytes(bytes(blob))
    assert stored(data).status.startswith("rebuilt: modified")
    assert session_marks(audit, SID)["denial"] == want["denial"]


def test_the_cache_follows_the_log(recorded):
    data, want = recorded
    audit = data / "audit"
    cache = IndexCache(audit)
    assert session_jump(audit, SID, "denial", 10**9, -1, cache=cache) == want["denial"][-1]
    priv, _ = keys.load_or_create(data / "keys", "audit")
    log = AuditLog(audit, priv, checkpoint_every=5).open()
    log.append("run.started", session_id=SID, run_id="run_late", data={"content": ""})
    late = decision(log, "run_late", 0, "DENY")
    log.close()
    assert session_jump(audit, SID, "denial", 10**9, -1, cache=cache) == late
    tl = session_timeline(audit, SID, from_seq=late, cache=cache)
    assert tl.run_count == 5 and tl.markers[0].seq == late and tl.markers[0].kind == "denial"
    assert "run_late" in [r.run_id for r in tl.runs]
