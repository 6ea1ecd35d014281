"""`talon replay --session ID [--policy F] [--json]` and `talon replay RUN_A --diff RUN_B`
(issue 16): offline, on a log recorded by a real engine."""

from __future__ import annotations

import asyncio
import json
import subprocess

import pytest
from support.pipe import REPO, TALON
from support.session_log import WHAT_IF, record

from talon_tui.engine.engine import Engine


@pytest.fixture(scope="module")
def recorded(tmp_path_factory):
    base = tmp_path_factory.mktemp("replay-session")

    async def go():
        engine = Engine(base / "data", approval_timeout=10)
        await engine.start()
        try:
            return await record(engine, base / "ws")
        finally:
            await engine.stop()

    rec = asyncio.run(go())
    (base / "what-if.json").write_text(json.dumps(WHAT_IF))
    return base, rec


def talon(base, *args):
    return subprocess.run(
        [*TALON, "replay", *args, "--data-dir", str(base / "data")],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=60,
    )


def test_session_timeline_text(recorded):
    base, rec = recorded
    r = talon(base, "--session", rec.session_id)
    assert r.returncode == 0, r.stderr
    out = r.stdout
    assert f"session {rec.session_id}" in out and "2 runs" in out
    for run_id in rec.runs:
        assert f"run {run_id}  ok" in out
    # both runs on one axis, oldest first, the policy change between them with its diff
    assert out.index(rec.runs[0]) < out.rindex("policy set by operator") < out.index(rec.runs[1])
    assert '+          "secret"' in out and '-          "work"' in out
    assert "denial  file.read  secret/s.txt  DENY" in out
    assert "approval  ALLOW  waited" in out
    assert "✓ output" in out and "✗" not in out


def test_session_timeline_json_and_what_if(recorded):
    base, rec = recorded
    r = talon(base, "--session", rec.session_id, "--policy", str(base / "what-if.json"), "--json")
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert [lane["run_id"] for lane in doc["runs"]] == rec.runs
    kinds = [m["kind"] for m in doc["markers"]]
    assert {"decision", "denial", "approval", "execution", "policy"} <= set(kinds)
    assert len(doc["jumps"]["denial"]) == 1 and len(doc["jumps"]["policy"]) == 2
    groups = {g["override"]: g["changes"] for g in doc["what_if"]}
    # the what-if allows only reads: the denied read would be allowed (override #0), every
    # write would be denied (no override), the second run's allowed secret read stays allowed
    assert [c["after"] for c in groups["override #0 file.read"]] == ["ALLOW"]
    writes = groups["no override (deny by default)"]
    assert {c["tool"] for c in writes} == {"file.write"} and len(writes) == 3


def test_run_diff(recorded):
    base, rec = recorded
    r = talon(base, rec.runs[0], "--diff", rec.runs[1], "--json")
    assert r.returncode == 1, r.stderr  # they differ
    doc = json.loads(r.stdout)
    by = {(s["tool"], s["target"]): s for s in doc["steps"]}
    assert by[("file.read", "work/a.txt")]["differs"] == []
    assert set(by[("file.write", "work/out.txt")]["differs"]) == {"params", "output"}
    assert by[("file.read", "secret/s.txt")]["differs"] == ["decision", "output"]
    assert by[("file.write", "drafts/d.md")]["differs"] == ["missing"]
    assert by[("file.write", "drafts/d.md")]["b"] is None
    text = talon(base, rec.runs[0], "--diff", rec.runs[1])
    assert "3 of 4 differ" in text.stdout


def test_usage_errors(recorded):
    base, rec = recorded
    for args in (
        ("--session", rec.session_id, rec.runs[0]),
        (rec.runs[0], "--diff", rec.runs[1], "--policy", "x.json"),
        ("--session", "sess_nope"),
        (rec.runs[0], "--diff", "run_nope"),
    ):
        r = talon(base, *args)
        assert r.returncode == 2, (args, r.stdout, r.stderr)
        assert r.stderr.startswith("talon:") and len(r.stderr.strip().splitlines()) == 1


def test_a_session_of_many_runs_prints_every_run(tmp_path):
    """More runs than a pipe reply's lanes (200): the CLI, reading in process, prints them all."""
    from talon_tui.engine.audit.log import AuditLog
    from talon_tui.engine.core import keys

    data = tmp_path / "data"
    priv, _ = keys.load_or_create(data / "keys", "audit")
    log = AuditLog(data / "audit", priv).open()
    log.append("session.created", session_id="sess_many", data={"workspace": "/w"})
    runs = [f"run_{i:04d}" for i in range(260)]
    for i, run in enumerate(runs):
        log.append("run.started", session_id="sess_many", run_id=run, data={"content": ""})
        log.append(
            "policy.decision",
            session_id="sess_many",
            run_id=run,
            data={"intent_id": f"i{i}", "tool": "file.read", "decision": "DENY", "reason": "r"},
        )
        log.append("run.finished", session_id="sess_many", run_id=run, data={"status": "ok"})
    log.close()
    r = subprocess.run(
        [*TALON, "replay", "--session", "sess_many", "--json", "--data-dir", str(data)],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=120,
    )
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert [lane["run_id"] for lane in doc["runs"]] == runs and doc["run_count"] == 260
    assert len(doc["jumps"]["denial"]) == 260 and doc["counts"]["denial"] == 260
