"""Issue 9 item 3: a log is valid only while it is signed.

An attacker who can write `audit/` but cannot read `keys/` deletes every checkpoint and HEAD,
drops the events they dislike and re-chains the rest with the documented algorithm. That must
fail `talon audit verify` (and the README's stdlib verifier) by name: "events X–Y carry no
checkpoint". The writer signs every <=1000 events and every 10 s by its ts (a timer signs a
quiet tail); a short unsigned tail is reported, not damage; `talon audit head` prints a
witness and `verify --expect-head SEQ:HASH` checks it.
"""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
import sys
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from support.clock import TestClock
from support.pipe import run_talon as talon

from talon_tui.engine.audit import verify as audit_verify
from talon_tui.engine.audit.log import AuditLog
from talon_tui.engine.audit.verify import verify_log
from talon_tui.engine.core import ids, keys

ROOT = Path(__file__).resolve().parents[3]
ZERO = "sha256:" + "0" * 64


def readme_script() -> str:
    section = (ROOT / "README.md").read_text(encoding="utf-8")
    section = section.split("## Verify the audit log with the standard library", 1)[1]
    match = re.search(r"```python\n(.*?)```", section, re.S)
    assert match, "README section has no python block"
    return match.group(1)


def canonical(obj) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def keyless_rechain(events: list[dict], start: int = 0, prev: str = ZERO) -> bytes:
    """What the attacker writes: the events, re-numbered from `start` and re-hashed with the
    README rule from `prev`."""
    out = []
    for seq, ev in enumerate(events, start):
        body = {k: v for k, v in ev.items() if k != "hash"}
        body["seq"], body["prev_hash"] = seq, prev
        h = "sha256:" + hashlib.sha256(prev.encode() + canonical(body)).hexdigest()
        out.append(canonical(body)[:-1] + f',"hash":"{h}"}}\n'.encode())
        prev = h
    return b"".join(out)


def read_events(audit_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (audit_dir / "audit.jsonl").read_bytes().splitlines()]


def readme_verify(tmp_path: Path, log: Path) -> subprocess.CompletedProcess:
    script = tmp_path / "verify_audit.py"
    script.write_text(readme_script())
    pub = log.parent.parent / "keys" / "audit_ed25519.pub"
    return subprocess.run(
        [sys.executable, "-I", str(script), str(log), str(pub)], capture_output=True, text=True
    )


@pytest.fixture
def stepped():
    """The writer's clock: `state["step"]` seconds a reading from a fixed start (installed
    with `ids.set_clock`; the suite's conftest puts the system clock back)."""
    state = {"t": datetime(2026, 11, 25, 17, 0, 0, tzinfo=UTC), "step": 0.0}

    def utcnow():
        state["t"] += timedelta(seconds=state["step"])
        return state["t"]

    ids.set_clock(TestClock(now=utcnow))
    return state


def write_log(data: Path, n: int, *, every: int = 1000) -> Path:
    priv, _ = keys.load_or_create(data / "keys", "audit")
    log = AuditLog(data / "audit", priv, checkpoint_every=every).open()
    for i in range(n):
        log.append("run.started", session_id="sess_1", run_id=f"run_{i % 5}", data={"i": i})
    log.close()
    return data / "audit"


def stretches(events: list[dict]) -> list[list[dict]]:
    """The events between checkpoints, in order (the last one may be an unsigned tail)."""
    out: list[list[dict]] = [[]]
    for ev in events:
        if ev["type"] == "audit.checkpoint":
            out.append([])
        else:
            out[-1].append(ev)
    return out


def span_s(part: list[dict]) -> float:
    stamps = [datetime.strptime(e["ts"], "%Y-%m-%dT%H:%M:%S.%fZ") for e in part]
    return (max(stamps) - min(stamps)).total_seconds() if stamps else 0.0


# ------------------------------------------------------------------ the attack


def test_keyless_rewrite_of_the_whole_history_fails_verify(tmp_path):
    data = tmp_path / "data"
    audit_dir = write_log(data, 2500)
    events = read_events(audit_dir)
    assert sum(e["type"] == "audit.checkpoint" for e in events) == 3
    # the attack: no checkpoints, no HEAD, event 1234 gone, the rest re-chained
    kept = [e for e in events if e["type"] != "audit.checkpoint" and e["data"].get("i") != 1234]
    (audit_dir / "audit.jsonl").write_bytes(keyless_rechain(kept))
    (audit_dir / "HEAD").unlink()
    (audit_dir / "index.bin").unlink(missing_ok=True)

    res = talon(data, "audit", "verify")
    assert res.returncode == 1, res.stdout + res.stderr
    assert "events 0\u20132498 carry no checkpoint" in res.stdout
    res = talon(data, "audit", "verify", "--json")
    doc = json.loads(res.stdout)
    assert res.returncode == 1
    assert (doc["valid"], doc["damage"], doc["first_bad_seq"]) == (False, "unsigned", 0)

    readme = readme_verify(tmp_path, audit_dir / "audit.jsonl")
    assert readme.returncode == 1
    assert readme.stdout.startswith("seq 0: events 0-2498 carry no checkpoint"), readme.stdout


def test_keyless_rewrite_keeping_fewer_than_1000_events_fails_by_time(tmp_path, stepped):
    """Under 1,000 events the count rule alone cannot catch it; the events' own ts do."""
    stepped["step"] = 1.0
    data = tmp_path / "data"
    audit_dir = write_log(data, 60)
    events = read_events(audit_dir)
    parts = stretches(events)
    assert len(parts) >= 6  # the writer signed about every 10 s of ts
    assert all(span_s(p) <= 10 for p in parts)
    kept = [e for e in events if e["type"] != "audit.checkpoint" and e["data"].get("i") != 30]
    (audit_dir / "audit.jsonl").write_bytes(keyless_rechain(kept))
    (audit_dir / "HEAD").unlink()

    report = verify_log(audit_dir, keys.load_public(data / "keys", "audit"))
    assert (report.valid, report.damage, report.first_bad_seq) == (False, "unsigned", 0)
    assert "events 0\u201358 carry no checkpoint" in report.message
    readme = readme_verify(tmp_path, audit_dir / "audit.jsonl")
    assert readme.returncode == 1 and readme.stdout.startswith("seq 0:"), readme.stdout


def test_removing_checkpoints_after_a_valid_prefix_is_named(tmp_path):
    """The first checkpoint stays (it still verifies); everything after it is re-chained
    without any: verify names the stretch that starts right after the last good one."""
    priv, pub = keys.load_or_create(tmp_path / "keys", "audit")
    log = AuditLog(tmp_path / "audit", priv, checkpoint_every=500).open()
    for i in range(2000):
        log.append("run.started", run_id="run_x", data={"i": i})
    log.close()
    lines = (tmp_path / "audit" / "audit.jsonl").read_bytes().splitlines(keepends=True)
    cps = [i for i, line in enumerate(lines) if b'"type":"audit.checkpoint"' in line]
    assert cps == [500, 1001, 1502, 2003]
    rest = [json.loads(x) for x in lines[501:]]
    rest = [e for e in rest if e["type"] != "audit.checkpoint" and e["data"]["i"] != 1700]
    prev = json.loads(lines[500])["hash"]
    (tmp_path / "audit" / "audit.jsonl").write_bytes(
        b"".join(lines[:501]) + keyless_rechain(rest, 501, prev)
    )
    (tmp_path / "audit" / "HEAD").unlink()
    report = verify_log(tmp_path / "audit", pub)
    assert not report.valid and report.damage == "unsigned" and report.first_bad_seq == 501
    assert report.message.startswith("events 501\u20131999 carry no checkpoint"), report
    assert report.signed_head_seq == 499


# ------------------------------------------------------------------ the writer


def test_a_quiet_tail_is_signed_by_the_timer(tmp_path):
    priv, pub = keys.load_or_create(tmp_path / "keys", "audit")
    log = AuditLog(tmp_path / "audit", priv, checkpoint_interval=0.2, timer_tick=0.02).open()
    signed = threading.Event()
    log.add_listener(lambda ev: ev["type"] == "audit.checkpoint" and signed.set())
    for i in range(3):
        log.append("run.started", run_id="run_x", data={"i": i})
    log.sync()
    assert signed.wait(10), "no checkpoint for a quiet tail"
    assert log.head.seq == 3  # takes the writer's lock: HEAD is written by then
    head = json.loads((tmp_path / "audit" / "HEAD").read_bytes())
    assert head["data"]["checkpoint_seq"] == 2
    assert verify_log(tmp_path / "audit", pub).unsigned_tail == 0
    log.close()


def test_the_writer_signs_before_an_event_past_the_interval(tmp_path, stepped):
    priv, pub = keys.load_or_create(tmp_path / "keys", "audit")
    log = AuditLog(tmp_path / "audit", priv).open()
    stepped["step"] = 0.001
    for i in range(5):
        log.append("run.started", run_id="run_x", data={"i": i})
    stepped["step"] = 30.0  # the clock jumps forward
    log.append_many([("run.finished", None, "run_x", {"i": 5}), ("run.started", None, None, {})])
    stepped["step"] = -3600.0  # and back
    log.append("run.started", run_id="run_y", data={"i": 7})
    log.sync()
    types = [e["type"] for e in read_events(tmp_path / "audit")]
    assert types == ["run.started"] * 5 + [
        "audit.checkpoint",
        "run.finished",
        "audit.checkpoint",
        "run.started",
        "audit.checkpoint",
        "run.started",
    ]
    report = verify_log(tmp_path / "audit", pub)
    assert report.valid and report.unsigned_tail == 1, report
    log.close()


def test_reopening_signs_a_tail_a_crashed_run_left(tmp_path):
    priv, pub = keys.load_or_create(tmp_path / "keys", "audit")
    log = AuditLog(tmp_path / "audit", priv).open()
    for i in range(4):
        log.append("run.started", run_id="run_x", data={"i": i})
    log.sync()
    report = verify_log(tmp_path / "audit", pub)  # the crash: never closed
    assert report.valid and report.unsigned_tail == 4 and report.signed_head_seq is None
    again = AuditLog(tmp_path / "audit", priv).open()
    report = verify_log(tmp_path / "audit", pub)
    assert report.valid and report.unsigned_tail == 0 and report.signed_head_seq == 3
    again.close()
    log._stop.set()


def test_checkpoint_every_is_capped_at_the_verify_limit(tmp_path):
    priv, _ = keys.load_or_create(tmp_path / "keys", "audit")
    with pytest.raises(ValueError, match="1 to 1000"):
        AuditLog(tmp_path / "audit", priv, checkpoint_every=5000)


# ------------------------------------------------------------------ the unsigned tail


def test_a_short_unsigned_tail_is_reported_not_damage(tmp_path):
    data = tmp_path / "data"
    priv, _ = keys.load_or_create(data / "keys", "audit")
    log = AuditLog(data / "audit", priv).open()
    for i in range(7):
        log.append("run.started", run_id="run_x", data={"i": i})
    log.sync()  # a running engine's tail
    res = talon(data, "audit", "verify", "--json")
    doc = json.loads(res.stdout)
    assert res.returncode == 0, res.stdout
    assert doc["valid"] and doc["unsigned_tail"] == 7 and doc["signed_head_seq"] is None
    res = talon(data, "audit", "verify")
    assert res.returncode == 0 and "unsigned tail: 7 events" in res.stdout
    readme = readme_verify(tmp_path, data / "audit" / "audit.jsonl")
    assert readme.returncode == 0, readme.stdout
    log.close()


def test_a_log_of_zero_checkpoints_beyond_the_limit_fails(tmp_path):
    data = tmp_path / "data"
    priv, pub = keys.load_or_create(data / "keys", "audit")
    log = AuditLog(data / "audit", priv).open()
    for i in range(1001):
        log.append("run.started", run_id="run_x", data={"i": i})
    log.sync()
    events = [e for e in read_events(data / "audit") if e["type"] != "audit.checkpoint"]
    (data / "audit" / "audit.jsonl").write_bytes(keyless_rechain(events))
    report = verify_log(data / "audit", pub)
    assert not report.valid and report.damage == "unsigned"
    assert "events 0\u20131000 carry no checkpoint" in report.message
    log._stop.set()


# ------------------------------------------------------------------ fast path == slow path


def _variants(monkeypatch, audit_dir, pub):
    """verify_log sequentially with the bulk path, line by line, and in parallel chunks."""
    out = [verify_log(audit_dir, pub, workers=1)]
    with monkeypatch.context() as m:
        m.setattr(audit_verify, "fast_block", lambda lines, st: False)
        out.append(verify_log(audit_dir, pub, workers=1))
    with monkeypatch.context() as m:
        m.setattr(audit_verify, "PARALLEL_MIN_BYTES", 1)
        m.setattr(audit_verify, "CHUNK_BYTES", 4096)
        out.append(verify_log(audit_dir, pub, workers=2))
    return out


@pytest.mark.parametrize("attack", ["none", "strip", "strip-tail", "timestamps"])
def test_fast_slow_and_parallel_paths_agree_on_coverage(tmp_path, monkeypatch, attack):
    data = tmp_path / "data"
    audit_dir = write_log(data, 2600, every=400)
    pub = keys.load_public(data / "keys", "audit")
    events = read_events(audit_dir)
    if attack == "strip":
        events = [
            e for e in events if not (e["type"] == "audit.checkpoint" and e["seq"] in (801, 1202))
        ]
    elif attack == "strip-tail":
        events = [e for e in events if not (e["type"] == "audit.checkpoint" and e["seq"] > 1000)]
    elif attack == "timestamps":
        events[700]["ts"] = "2026-11-25T19:00:00.000000Z"
    if attack != "none":
        lines = keyless_rechain(events)
        (audit_dir / "audit.jsonl").write_bytes(lines)
        (audit_dir / "HEAD").unlink()
    reports = [r.model_dump() for r in _variants(monkeypatch, audit_dir, pub)]
    assert reports[0] == reports[1] == reports[2]
    report = reports[0]
    readme = readme_verify(tmp_path, audit_dir / "audit.jsonl")
    if attack == "none":
        assert report["valid"] and readme.returncode == 0
        return
    assert not report["valid"]
    assert readme.returncode == 1
    assert readme.stdout.startswith(f"seq {report['first_bad_seq']}:"), (readme.stdout, report)


# ------------------------------------------------------------------ the witness


@pytest.mark.slow
def test_audit_head_and_expect_head(tmp_path):
    data = tmp_path / "data"
    write_log(data, 30, every=10)
    res = talon(data, "audit", "head", "--json")
    assert res.returncode == 0, res.stderr
    head = json.loads(res.stdout)
    assert set(head) >= {"seq", "hash", "signature", "key_id"}
    events = read_events(data / "audit")
    assert events[head["seq"]]["hash"] == head["hash"]
    assert events[head["seq"] + 1]["type"] == "audit.checkpoint"
    text = talon(data, "audit", "head")
    assert text.returncode == 0 and f"seq {head['seq']}" in text.stdout
    assert head["signature"] in text.stdout and head["key_id"] in text.stdout
    witness = head["witness"]
    assert witness == f"{head['seq']}:{head['hash']}"

    # the log grows: the witness still holds
    priv, _ = keys.load_or_create(data / "keys", "audit")
    log = AuditLog(data / "audit", priv).open()
    log.append("run.started", run_id="run_z")
    log.close()
    res = talon(data, "audit", "verify", "--expect-head", witness)
    assert res.returncode == 0, res.stdout
    assert "witness seq" in res.stdout

    # someone with the key replaces the history (and re-signs it): the witness catches it
    saved = (data / "audit" / "audit.jsonl").read_bytes()
    (data / "audit" / "audit.jsonl").unlink()
    (data / "audit" / "HEAD").unlink()
    log = AuditLog(data / "audit", priv).open()
    for i in range(40):
        log.append("run.started", run_id="run_forged", data={"i": i})
    log.close()
    assert talon(data, "audit", "verify").returncode == 0
    res = talon(data, "audit", "verify", "--expect-head", witness)
    assert res.returncode == 1
    assert f"event {head['seq']} has hash" in res.stdout and "witness" in res.stdout

    # cut back before the witness, re-signed
    (data / "audit" / "audit.jsonl").unlink()
    (data / "audit" / "HEAD").unlink()
    log = AuditLog(data / "audit", priv).open()
    log.append("run.started", run_id="run_short")
    log.close()
    res = talon(data, "audit", "verify", "--expect-head", witness, "--json")
    doc = json.loads(res.stdout)
    assert res.returncode == 1 and doc["damage"] == "witness" and "ends at seq" in doc["message"]

    # a witness for an event no checkpoint signs yet
    (data / "audit" / "audit.jsonl").write_bytes(saved)
    (data / "audit" / "HEAD").unlink()
    last = json.loads(saved.splitlines()[-1])
    assert last["type"] == "audit.checkpoint"
    log = AuditLog(data / "audit", priv).open()
    ev = log.append("run.started", run_id="run_new")
    log.sync()
    res = talon(data, "audit", "verify", "--expect-head", f"{ev['seq']}:{ev['hash']}")
    assert res.returncode == 1 and "not covered by a signed checkpoint" in res.stdout
    log.close()
    (data / "audit" / "audit.jsonl").write_bytes(saved)


@pytest.mark.parametrize("bad", ["12", "x:sha256:" + "0" * 64, "3:sha256:abc", "3:md5:" + "0" * 64])
def test_a_malformed_witness_is_a_usage_error(tmp_path, bad):
    data = tmp_path / "data"
    write_log(data, 3)
    res = talon(data, "audit", "verify", "--expect-head", bad)
    assert res.returncode == 2 and "--expect-head" in res.stderr and "Traceback" not in res.stderr


def test_audit_head_without_a_checkpoint_fails_clearly(tmp_path):
    data = tmp_path / "data"
    write_log(data, 3)
    (data / "audit" / "HEAD").unlink()
    res = talon(data, "audit", "head")
    assert res.returncode == 1 and "no signed checkpoint" in res.stderr
    (data / "audit" / "HEAD").write_text("{}")
    res = talon(data, "audit", "head")
    assert res.returncode == 1 and "HEAD" in res.stderr and "Traceback" not in res.stderr


# ------------------------------------------------------------------ a running engine


async def test_a_running_engine_signs_within_seconds_of_traffic(tmp_path, stepped):
    """Demo traffic at one event a second of ts: the dashboard's checkpoint appears after about
    10 s of events, not after 1,000 events (minutes of demo traffic)."""
    from talon_tui.engine.engine import Engine
    from talon_tui.engine.policy.models import ToolIntent

    ws = tmp_path / "ws"
    (ws / "work").mkdir(parents=True)
    (ws / "work" / "a.txt").write_text("hello")
    policy = {
        "version": 1,
        "overrides": [
            {
                "tool": "file.read",
                "allow": True,
                "approval": "never",
                "constraints": {"roots": ["work"]},
            }
        ],
    }
    engine = Engine(tmp_path / "data")
    await engine.start()
    try:
        session, key = await engine.create_session("t", str(ws.resolve()), policy)
        sid, subject = engine.authenticate_agent(key)
        stepped["step"] = 0.25
        status = await engine.status()
        first = status.last_checkpoint_seq
        for _ in range(12):
            await engine.submit(
                sid, subject, ToolIntent(tool="file.read", params={"path": "work/a.txt"})
            )
        status = await engine.status()
        assert status.last_checkpoint_seq is not None and status.last_checkpoint_seq != first
        assert engine.audit.next_seq < 1000
        report = verify_log(
            tmp_path / "data" / "audit", keys.load_public(tmp_path / "data" / "keys", "audit")
        )
        assert report.valid and report.unsigned_tail < 60
    finally:
        await engine.stop()


@pytest.mark.parametrize(
    ("ts", "bad"),
    [
        (None, 5),
        ("yesterday", 5),
        ("2026-11-25 17:00:00", 5),
        ("9999-99-99T99:99:99.999999Z", 5),
        ("2026-02-31T17:00:00.000000Z", 0),  # the layout, but no real date: its stretch fails
    ],
)
def test_an_event_without_a_valid_ts_is_damage(tmp_path, monkeypatch, ts, bad):
    """A ts outside the writer's layout cannot dodge the time rule: verify names it."""
    data = tmp_path / "data"
    audit_dir = write_log(data, 30, every=10)
    events = read_events(audit_dir)
    events = [e for e in events if e["type"] != "audit.checkpoint"]
    events[5]["ts"] = ts
    (audit_dir / "audit.jsonl").write_bytes(keyless_rechain(events))
    (audit_dir / "HEAD").unlink()
    pub = keys.load_public(data / "keys", "audit")
    reports = [r.model_dump() for r in _variants(monkeypatch, audit_dir, pub)]
    assert reports[0] == reports[1] == reports[2]
    assert not reports[0]["valid"] and reports[0]["first_bad_seq"] == bad, reports[0]
    readme = readme_verify(tmp_path, audit_dir / "audit.jsonl")
    assert readme.returncode == 1 and readme.stdout.startswith(f"seq {bad}:"), readme.stdout
