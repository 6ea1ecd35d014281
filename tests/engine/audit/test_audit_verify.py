"""verify_log: every kind of damage is named at the right seq; the CLI's exit codes."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support.imports import forbidden, imports_of

from talon_tui.engine.audit import verify as audit_verify
from talon_tui.engine.audit.log import AuditLog, verify_log
from talon_tui.engine.core import keys


def canonical(obj) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def rehash(events: list[dict]) -> list[bytes]:
    """Recompute every hash and link, as someone without the signing key could."""
    out, prev = [], "sha256:" + "0" * 64
    for seq, ev in enumerate(events):
        body = {k: v for k, v in ev.items() if k != "hash"}
        body["seq"], body["prev_hash"] = seq, prev
        if body["type"] == "audit.checkpoint":
            body["data"] = dict(body["data"], checkpoint_seq=seq - 1, checkpoint_hash=prev)
        h = "sha256:" + hashlib.sha256(prev.encode() + canonical(body)).hexdigest()
        out.append(canonical(body)[:-1] + f',"hash":"{h}"}}\n'.encode())
        prev = h
    return out


def make_log(root: Path, n: int, *, every: int = 7, payload=None) -> tuple[Path, object]:
    priv, pub = keys.load_or_create(root / "keys", "audit")
    log = AuditLog(root / "audit", priv, checkpoint_every=every).open()
    for i in range(n):
        data = {"subject": "agent", "content": f"event {i}", "one_shot": i % 2 == 0}
        if payload is not None:
            data["content"] = payload[i % len(payload)]
        log.append("run.started", session_id="sess_1", run_id=f"run_{i % 4}", data=data)
    log.close()
    return root / "audit", pub


@pytest.fixture(scope="module")
def base_log(tmp_path_factory):
    root = tmp_path_factory.mktemp("base")
    audit_dir, pub = make_log(root, 40)
    return audit_dir, pub


def copy_of(base: Path) -> Path:
    dst = Path(tempfile.mkdtemp()) / "audit"
    shutil.copytree(base, dst)
    (dst / "index.bin").unlink(missing_ok=True)
    return dst


def log_lines(audit_dir: Path) -> list[bytes]:
    return (audit_dir / "audit.jsonl").read_bytes().splitlines(keepends=True)


def write_lines(audit_dir: Path, lines: list[bytes]) -> None:
    (audit_dir / "audit.jsonl").write_bytes(b"".join(lines))


def test_clean_log_verifies(base_log):
    audit_dir, pub = base_log
    report = verify_log(audit_dir, pub)
    n = len(log_lines(audit_dir))
    assert report.valid and report.events == n and report.first_bad_seq is None
    assert report.signed_head_seq == n - 2


def modified(lines, i):
    ev = json.loads(lines[i])
    ev["data"]["tampered"] = True
    lines[i] = canonical({k: v for k, v in ev.items() if k != "hash"})[:-1] + (
        f',"hash":"{ev["hash"]}"}}\n'.encode()
    )
    return lines, i, "modified"


def deleted(lines, i):
    last = len(lines) - 1
    del lines[i]
    return lines, i, "truncated" if i == last else "gap"


def swapped(lines, i, j):
    lines[i], lines[j] = lines[j], lines[i]
    return lines, i, "reordered"


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data())
def test_any_single_damage_is_caught_at_the_right_seq(base_log, data):
    audit_dir, pub = base_log
    original = log_lines(audit_dir)
    n = len(original)
    kind = data.draw(st.sampled_from(["modify", "delete", "swap", "truncate"]))
    lines = list(original)
    if kind == "modify":
        lines, bad, damage = modified(lines, data.draw(st.integers(0, n - 1)))
    elif kind == "delete":
        lines, bad, damage = deleted(lines, data.draw(st.integers(0, n - 1)))
    elif kind == "swap":
        i = data.draw(st.integers(0, n - 2))
        j = data.draw(st.integers(i + 1, n - 1))
        lines, bad, damage = swapped(lines, i, j)
    else:
        blob = b"".join(original)
        cut = data.draw(st.integers(0, len(blob) - 1))
        starts = [sum(len(x) for x in original[:k]) for k in range(n)]
        bad = max(k for k in range(n) if starts[k] <= cut)
        damage = "truncated" if cut == starts[bad] else "torn"
        lines = [blob[:cut]]
    target = copy_of(audit_dir)
    write_lines(target, lines)
    report = verify_log(target, pub)
    assert not report.valid
    assert (report.first_bad_seq, report.damage) == (bad, damage), report.message


@settings(max_examples=25, deadline=None)
@given(st.lists(st.text(max_size=40), min_size=1, max_size=5), st.integers(1, 30))
def test_generated_clean_logs_always_verify(payload, n):
    root = Path(tempfile.mkdtemp())
    audit_dir, pub = make_log(root, n, every=5, payload=payload)
    report = verify_log(audit_dir, pub)
    assert report.valid, report.message


def test_rewritten_without_the_key_fails_the_signature(base_log):
    audit_dir, pub = base_log
    events = [json.loads(x) for x in log_lines(audit_dir)]
    events[3]["data"]["content"] = "forged"
    target = copy_of(audit_dir)
    write_lines(target, rehash(events))
    report = verify_log(target, pub)
    assert (report.valid, report.damage, report.first_bad_seq) == (False, "bad_signature", 7)


def test_tampered_checkpoint_signature_is_caught(base_log):
    audit_dir, pub = base_log
    events = [json.loads(x) for x in log_lines(audit_dir)]
    sig = events[15]["data"]["signature"]
    assert events[15]["type"] == "audit.checkpoint"
    events[15]["data"]["signature"] = ("A" if sig[0] != "A" else "B") + sig[1:]
    target = copy_of(audit_dir)
    write_lines(target, rehash(events))
    report = verify_log(target, pub)
    assert (report.damage, report.first_bad_seq) == ("bad_signature", 15)


def test_signature_by_another_key_is_caught(base_log, tmp_path):
    audit_dir, _ = base_log
    _, other_pub = keys.load_or_create(tmp_path / "other", "audit")
    report = verify_log(audit_dir, other_pub)
    assert (report.damage, report.first_bad_seq) == ("bad_signature", 7)


def test_truncated_before_head_even_when_the_rest_is_consistent(base_log):
    audit_dir, pub = base_log
    target = copy_of(audit_dir)
    write_lines(target, log_lines(audit_dir)[:20])
    report = verify_log(target, pub)
    assert (report.valid, report.damage, report.first_bad_seq) == (False, "truncated", 20)


def test_forged_head_is_caught(base_log):
    audit_dir, pub = base_log
    target = copy_of(audit_dir)
    head = json.loads((target / "HEAD").read_bytes())
    head["data"]["checkpoint_seq"] = 100
    (target / "HEAD").write_bytes(canonical(head))
    report = verify_log(target, pub)
    assert not report.valid and report.damage == "bad_signature"


def test_broken_link_is_named(base_log):
    audit_dir, pub = base_log
    events = [json.loads(x) for x in log_lines(audit_dir)]
    fixed = rehash(events)
    ev = json.loads(fixed[2])
    ev["prev_hash"] = "sha256:" + "1" * 64
    body = {k: v for k, v in ev.items() if k != "hash"}
    h = "sha256:" + hashlib.sha256(ev["prev_hash"].encode() + canonical(body)).hexdigest()
    fixed[2] = canonical(body)[:-1] + f',"hash":"{h}"}}\n'.encode()
    target = copy_of(audit_dir)
    write_lines(target, fixed)
    report = verify_log(target, pub)
    assert (report.damage, report.first_bad_seq) == ("broken_link", 2)


def test_non_canonical_float_line_is_modified_even_with_a_matching_hash(base_log):
    audit_dir, pub = base_log
    lines = log_lines(audit_dir)
    ev = json.loads(lines[1])
    ev["data"]["x"] = 1e16  # orjson writes 1e16, the stdlib 1e+16: no single canonical form
    body = {k: v for k, v in ev.items() if k != "hash"}
    import orjson

    raw = orjson.dumps(body, option=orjson.OPT_SORT_KEYS)
    h = "sha256:" + hashlib.sha256(ev["prev_hash"].encode() + raw).hexdigest()
    lines[1] = raw[:-1] + f',"hash":"{h}"}}\n'.encode()
    target = copy_of(audit_dir)
    write_lines(target, lines)
    report = verify_log(target, pub)
    assert (report.damage, report.first_bad_seq) == ("modified", 1)


@pytest.fixture(scope="module")
def big_log(tmp_path_factory):
    root = tmp_path_factory.mktemp("big")
    return make_log(root, 3000, every=100)


@pytest.mark.parametrize("kind", ["clean", "modify", "delete", "swap", "swap_far", "truncate"])
def test_parallel_verify_agrees_with_sequential(big_log, monkeypatch, kind):
    audit_dir, pub = big_log
    monkeypatch.setattr(audit_verify, "PARALLEL_MIN_BYTES", 0)
    monkeypatch.setattr(audit_verify, "CHUNK_BYTES", 20_000)
    lines = log_lines(audit_dir)
    n = len(lines)
    if kind == "modify":
        lines, bad, dmg = modified(lines, 1777)
    elif kind == "delete":
        lines, bad, dmg = deleted(lines, 2222)
    elif kind == "swap":
        lines, bad, dmg = swapped(lines, 1500, 1501)
    elif kind == "swap_far":
        lines, bad, dmg = swapped(lines, 100, 2900)
    elif kind == "truncate":
        lines, bad, dmg = lines[:2500], 2500, "truncated"
    else:
        bad, dmg = None, None
    target = copy_of(audit_dir)
    write_lines(target, lines)
    progress = []
    par = verify_log(target, pub, workers=2, progress=lambda d, t: progress.append((d, t)))
    seq = verify_log(target, pub, workers=1)
    assert par == seq
    assert (par.first_bad_seq, par.damage) == (bad, dmg), par.message
    if kind == "clean":
        assert par.valid and par.events == n
        size = (target / "audit.jsonl").stat().st_size
        assert progress[-1] == (size, size)
        assert all(b >= a for (a, _), (b, _) in zip(progress, progress[1:]))


def run_cli(*args, env_dir=None):
    return subprocess.run(
        [sys.executable, "-m", "talon_tui.cli", *args],
        capture_output=True,
        text=True,
        env={**os.environ, "TALON_DATA_DIR": str(env_dir)} if env_dir else None,
        timeout=60,
    )


@pytest.mark.slow
def test_audit_verify_cli_exit_codes(base_log, tmp_path):
    audit_dir, _ = base_log
    data = tmp_path / "data"
    shutil.copytree(audit_dir.parent / "keys", data / "keys")
    shutil.copytree(audit_dir, data / "audit")

    ok = run_cli("audit", "verify", "--data-dir", str(data), "--json")
    assert ok.returncode == 0, ok.stderr
    doc = json.loads(ok.stdout)
    assert doc["valid"] is True and doc["first_bad_seq"] is None and doc["damage"] is None
    assert doc["events"] == len(log_lines(audit_dir)) and doc["signed_head_seq"] is not None
    assert {"valid", "events", "first_bad_seq", "damage", "signed_head_seq"} <= set(doc)

    text = run_cli("audit", "verify", env_dir=data)
    assert text.returncode == 0 and "OK" in text.stdout

    lines = log_lines(data / "audit")
    lines, _, _ = modified(lines, 9)
    write_lines(data / "audit", lines)
    bad = run_cli("audit", "verify", "--data-dir", str(data), "--json")
    assert bad.returncode == 1
    assert json.loads(bad.stdout)["first_bad_seq"] == 9
    assert json.loads(bad.stdout)["damage"] == "modified"

    missing = run_cli("audit", "verify", "--data-dir", str(tmp_path / "nothing"))
    assert missing.returncode == 2
    assert missing.stderr.startswith("talon: no audit log at")


def test_verify_cli_does_not_import_textual(base_log):
    code = (
        "from talon_tui.cli.commands import audit_cmd, replay_cmd\n"
        "from talon_tui.engine.audit import log, replay, verify\n"
    )
    assert forbidden(imports_of(code, "talon_tui"), "textual", "rich", "talon_tui.app") == []


def test_audit_export_cli(base_log, tmp_path):
    audit_dir, _ = base_log
    data = tmp_path / "data"
    shutil.copytree(audit_dir, data / "audit")
    out = tmp_path / "run1.jsonl"
    res = run_cli("audit", "export", "--data-dir", str(data), "--run", "run_1", "-o", str(out))
    assert res.returncode == 0, res.stderr
    exported = out.read_bytes().splitlines(keepends=True)
    expected = [x for x in log_lines(audit_dir) if json.loads(x)["run_id"] == "run_1"]
    assert exported == expected and len(expected) == 10
    res = run_cli("audit", "export", "--data-dir", str(data))
    assert res.stdout.encode() == (audit_dir / "audit.jsonl").read_bytes()
    res = run_cli("audit", "export", "--data-dir", str(data), "--session", "sess_nope")
    assert res.returncode == 2 and "no events for session sess_nope" in res.stderr
