"""AuditLog.append_many: one lock, one timestamp path, one os.write per batch, and lines byte
for byte what one `append` per event writes (checkpoints included), verifying as before."""

from __future__ import annotations

import json
import os
import re
from datetime import UTC, datetime, timedelta

import pytest
from support.clock import CountingIds, ticking

from talon_tui.engine.audit import log as audit_mod
from talon_tui.engine.audit.log import AuditError, AuditLog, UnknownEventType, verify_log
from talon_tui.engine.core import ids, keys
from talon_tui.engine.core.canon import MAX_SAFE_INT, NotCanonical, check_canonical
from talon_tui.engine.core.clock import SystemClock

SPECS = [
    ("run.started", "sess_a", "run_b", {"subject": "ag", "content": "", "one_shot": True}),
    ("policy.intent.received", "sess_a", "run_b", {"params": {"path": "ü/x"}, "n": 2**53}),
    ("policy.decision", "sess_a", "run_b", {"decision": "ALLOW", "suggested_fix": None}),
    ("capability.issued", "sess_a", "run_b", {"jti": "j", "exp": -(2**53), "ok": False}),
    ("tool.executed", "sess_a", "run_b", {"output": {"l": [1, "a", [True, None]]}}),
    ("run.finished", "sess_a", "run_b", {"status": "ok", "steps": 1}),
    ("engine.stopped", None, None, None),
]


@pytest.fixture
def keypair(tmp_path):
    return keys.load_or_create(tmp_path / "keys", "audit")


@pytest.fixture
def frozen(monkeypatch):
    """Counting event ids and a clock that ticks 1 ms a call (same for both logs compared)."""

    def install():
        start = datetime(2026, 11, 25, 17, 0, 59, 998000, tzinfo=UTC)
        step = timedelta(milliseconds=1)
        # tests/conftest.py puts the system clock back after the test
        ids.set_clock(ticking(start, step, ids=CountingIds(shared=True, start=0)))

    return install


def _log(path, keypair, every) -> AuditLog:
    return AuditLog(path, keypair[0], checkpoint_every=every).open()


@pytest.mark.parametrize("every", [1, 2, 3, 4, 1000])
@pytest.mark.parametrize("split", [1, 2, 3, 7])
def test_batches_write_the_same_bytes_as_single_appends(tmp_path, keypair, frozen, every, split):
    frozen()
    single = _log(tmp_path / "single", keypair, every)
    for _ in range(3):
        for etype, sid, rid, data in SPECS:
            single.append(etype, session_id=sid, run_id=rid, data=data)
    single.close()
    frozen()  # the same ids and clock again
    batched = _log(tmp_path / "batched", keypair, every)
    specs = SPECS * 3
    for i in range(0, len(specs), split):
        batched.append_many(specs[i : i + split])
    batched.close()
    a = (tmp_path / "single" / "audit.jsonl").read_bytes()
    b = (tmp_path / "batched" / "audit.jsonl").read_bytes()
    assert a == b
    assert (tmp_path / "single" / "HEAD").read_bytes() == (
        tmp_path / "batched" / "HEAD"
    ).read_bytes()
    report = verify_log(tmp_path / "batched", keypair[1])
    assert report.valid, report
    types = [json.loads(line)["type"] for line in b.splitlines()]
    if every < 1000:  # a checkpoint after every `every` other events, wherever batches end
        run = 0
        for t in types[:-1]:
            if t == "audit.checkpoint":
                assert run == every
                run = 0
            else:
                run += 1
    assert types[-1] == "audit.checkpoint"


def test_fast_path_lines_follow_the_design_rule(tmp_path, keypair):
    """No patched ids or clock: random ids drawn once per batch, the cached-second timestamp."""
    log = _log(tmp_path / "a", keypair, 5)
    seen = []
    log.add_listener(seen.append)
    before = datetime.now(UTC)
    returned = []
    for _ in range(4):
        returned += log.append_many(SPECS)
    log.close()  # may sign a checkpoint: its ts is after the last append
    after = datetime.now(UTC)
    raw = (tmp_path / "a" / "audit.jsonl").read_bytes().splitlines(keepends=True)
    prev = audit_mod.ZERO_HASH
    stamps, event_ids = [], set()
    for seq, line in enumerate(raw):
        ev = json.loads(line)
        h = ev.pop("hash")
        canon = json.dumps(ev, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
        assert line == canon[:-1] + b',"hash":"' + h.encode() + b'"}\n'
        assert h == "sha256:" + __import__("hashlib").sha256(prev.encode() + canon).hexdigest()
        assert ev["seq"] == seq and ev["prev_hash"] == prev
        assert re.fullmatch(r"evt_[0-9a-f]{16}", ev["event_id"])
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", ev["ts"])
        event_ids.add(ev["event_id"])
        stamps.append(ev["ts"])
        prev = h
    assert len(event_ids) == len(raw)
    assert stamps == sorted(stamps)
    first = datetime.strptime(stamps[0], "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
    last = datetime.strptime(stamps[-1], "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
    assert before - timedelta(milliseconds=1) <= first <= last <= after + timedelta(milliseconds=1)
    assert [e["type"] for e in returned] == [s[0] for s in SPECS] * 4
    assert [e["seq"] for e in seen] == list(range(len(raw)))  # listeners: every line, in order
    assert verify_log(tmp_path / "a", keypair[1]).valid


def test_cached_second_timestamp_equals_ids_iso():
    base = 1_764_090_059 * 10**9  # crossing second (and minute) boundaries below
    now_ns = [0]
    clock = SystemClock(time_ns=lambda: now_ns[0])
    for ns in (
        base + 999_999_999,
        base + 10**9,
        base + 10**9 + 1_000,
        base + 10**9 + 999_999_000,
        base + 61 * 10**9 + 5_000,
        base + 60 * 10**9,  # the clock may step back: each ts is still that call's time
    ):
        now_ns[0] = ns
        expected = ids.iso(datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=ns // 1000))
        assert clock.now_iso() == expected


@pytest.mark.parametrize(
    "bad",
    [
        {"x": 1.5},
        {"x": [0.0]},
        {"x": MAX_SAFE_INT + 1},
        {"x": -MAX_SAFE_INT - 1},
        {"x": "\ud800"},
        {"\udfff": 1},
        {"x": {1: 2}},
        {"x": b"bytes"},
        {"x": type("S", (str,), {})("sub")},
        {"x": {type("K", (str,), {})("k"): 1}},
        {"x": type("I", (int,), {})(1)},
        {"x": type("D", (dict,), {})()},
    ],
)
def test_a_refused_event_writes_nothing_of_its_batch(tmp_path, keypair, bad):
    with pytest.raises(NotCanonical):
        check_canonical(bad)  # the rule the fast check must agree with
    log = _log(tmp_path / "a", keypair, 2)
    log.append("run.started", data={"ok": 1})
    size = (tmp_path / "a" / "audit.jsonl").stat().st_size
    with pytest.raises(NotCanonical):
        log.append_many(
            [("run.started", None, None, {"fine": 1}), ("run.finished", None, None, bad)]
        )
    with pytest.raises(NotCanonical):
        log.append("run.finished", data=bad)
    with pytest.raises(UnknownEventType):
        log.append_many([("run.started", None, None, {}), ("made.up", None, None, {})])
    with pytest.raises(AuditError):
        log.append_many([("audit.checkpoint", None, None, {})])
    with pytest.raises(AuditError):
        log.append_many([("run.started", 7, None, {})])
    assert (tmp_path / "a" / "audit.jsonl").stat().st_size == size
    assert log.head.seq == 0
    log.append("run.finished", data={"ok": 2})  # and the log goes on normally
    log.close()
    assert verify_log(tmp_path / "a", keypair[1]).valid


def test_one_write_per_batch(tmp_path, keypair, monkeypatch):
    log = _log(tmp_path / "a", keypair, 1000)
    writes = []
    real = os.write
    monkeypatch.setattr(audit_mod.os, "write", lambda fd, b: writes.append(len(b)) or real(fd, b))
    log.append_many(SPECS)
    assert len(writes) == 1
    assert writes[0] == (tmp_path / "a" / "audit.jsonl").stat().st_size
    monkeypatch.undo()
    log.close()
