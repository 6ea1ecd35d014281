"""replay / simulate read a real log: outputs checked, chain validity, what-if decisions."""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from talon_tui.engine.audit.log import AuditLog
from talon_tui.engine.audit.replay import replay, simulate
from talon_tui.engine.core import keys
from talon_tui.engine.errors import NotFound
from talon_tui.engine.policy.models import parse_policy


def digest(output) -> str:
    body = json.dumps(output, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return "sha256:" + hashlib.sha256(body.encode()).hexdigest()


READ_POLICY = {
    "version": 1,
    "overrides": [
        {
            "tool": "file.read",
            "allow": True,
            "approval": "never",
            "constraints": {"roots": ["work"], "max_bytes": 1024},
        }
    ],
}


def record_intent(log, session, run, n, path, decision, output=None, origin="agent"):
    iid = f"int_{n}"
    params = {"path": path}
    log.append(
        "policy.intent.received",
        session_id=session,
        run_id=run,
        data={
            "intent_id": iid,
            "subject": "agent",
            "tool": "file.read",
            "params": params,
            "origin": origin,
            "intent_hash": "sha256:" + "0" * 64,
        },
    )
    log.append(
        "policy.decision",
        session_id=session,
        run_id=run,
        data={
            "intent_id": iid,
            "tool": "file.read",
            "decision": decision,
            "reason": "recorded reason",
            "by": "policy",
            "override_index": 0 if decision == "ALLOW" else None,
            "suggested_fix": None,
            "code": None if decision == "ALLOW" else "POLICY_DENIED",
        },
    )
    if decision == "ALLOW":
        log.append(
            "capability.issued",
            session_id=session,
            run_id=run,
            data={
                "intent_id": iid,
                "jti": f"jti_{n}",
                "token_sha256": "sha256:" + "a" * 64,
                "tool": "file.read",
                "exp": 1,
                "ttl_seconds": 60,
            },
        )
        log.append(
            "tool.executed",
            session_id=session,
            run_id=run,
            data={
                "intent_id": iid,
                "tool": "file.read",
                "status": "ok",
                "code": None,
                "message": "",
                "output": output,
                "output_sha256": digest(output),
                "bytes": 5,
                "truncated": False,
                "redacted": False,
                "duration_ms": 1,
            },
        )


def session_log(tmp_path, s="sess_1"):
    """An open audit log (and its public key) whose first event creates session `s`."""
    priv, pub = keys.load_or_create(tmp_path / "keys", "audit")
    log = AuditLog(tmp_path / "audit", priv, checkpoint_every=1000).open()
    log.append(
        "session.created",
        session_id=s,
        data={"label": "t", "workspace": str(tmp_path / "ws"), "policy_sha256": "x"},
    )
    return log, pub


@pytest.fixture
def recorded(tmp_path):
    s, r = "sess_1", "run_1"
    log, pub = session_log(tmp_path, s)
    log.append("run.started", session_id=s, run_id="run_0", data={"subject": "a", "content": ""})
    log.append("run.started", session_id=s, run_id=r, data={"subject": "a", "content": "read"})
    out = {"path": "work/a.txt", "content": "hello", "bytes": 5, "sha256": "sha256:" + "b" * 64}
    record_intent(log, s, r, 1, "work/a.txt", "ALLOW", out)
    record_intent(log, s, r, 2, "secret/b.txt", "DENY")
    log.append("run.finished", session_id=s, run_id=r, data={"status": "ok", "steps": 2})
    log.append("run.finished", session_id=s, run_id="run_0", data={"status": "ok", "steps": 0})
    log.close()
    return tmp_path, pub


def test_replay_timeline_with_matching_outputs(recorded):
    root, pub = recorded
    result = replay(root / "audit", pub, "run_1")
    assert result.chain_valid and result.session_id == "sess_1"
    types = [s.type for s in result.steps]
    assert types == [
        "run.started",
        "policy.intent.received",
        "policy.decision",
        "capability.issued",
        "tool.executed",
        "policy.intent.received",
        "policy.decision",
        "run.finished",
    ]
    executed = result.steps[4]
    assert executed.output["content"] == "hello" and executed.output_matches is True
    assert [s.decision for s in result.steps if s.type == "policy.decision"] == ["ALLOW", "DENY"]
    assert result.steps[1].params == {"path": "work/a.txt"}
    assert result.changed_by_policy is None
    # the engine's call form gives the same result
    assert replay(root / "audit", "run_1", public_key=pub) == result


def tamper_output(root: Path, rehash: bool) -> None:
    path = root / "audit" / "audit.jsonl"
    lines = path.read_bytes().splitlines(keepends=True)
    out, prev = [], "sha256:" + "0" * 64
    for line in lines:
        ev = json.loads(line)
        if ev["type"] == "tool.executed":
            ev["data"]["output"]["content"] = "HELLO"
        if rehash:
            ev["prev_hash"] = prev
        body = {k: v for k, v in ev.items() if k != "hash"}
        canon = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        h = (
            "sha256:" + hashlib.sha256(prev.encode() + canon.encode()).hexdigest()
            if rehash
            else ev["hash"]
        )
        out.append(canon.encode()[:-1] + f',"hash":"{h}"}}\n'.encode())
        prev = h
    path.write_bytes(b"".join(out))


def test_replay_flags_output_mismatch_and_broken_chain(recorded):
    root, pub = recorded
    tamper_output(root, rehash=False)
    result = replay(root / "audit", pub, "run_1")
    executed = next(s for s in result.steps if s.type == "tool.executed")
    assert executed.output_matches is False
    assert result.chain_valid is False and result.chain_first_bad_seq == executed.seq


def test_replay_output_mismatch_even_when_the_chain_was_rehashed(recorded):
    root, pub = recorded
    tamper_output(root, rehash=True)
    result = replay(root / "audit", pub, "run_1")
    assert next(s for s in result.steps if s.type == "tool.executed").output_matches is False
    assert result.chain_valid is False  # the final checkpoint's signature no longer holds


def test_replay_unknown_run(recorded):
    root, pub = recorded
    with pytest.raises(NotFound):
        replay(root / "audit", pub, "run_nope")


def test_what_if_marks_changed_decisions(recorded):
    root, pub = recorded
    open_policy = {
        "version": 1,
        "overrides": [
            {"tool": "file.read", "allow": True, "constraints": {"roots": ["work", "secret"]}}
        ],
    }
    result = replay(root / "audit", pub, "run_1", policy=parse_policy(open_policy))
    decisions = [s for s in result.steps if s.type == "policy.decision"]
    assert [d.what_if_decision for d in decisions] == ["ALLOW", "ALLOW"]
    assert result.changed_by_policy == [decisions[1].seq]
    assert decisions[1].changed_by_policy and not decisions[0].changed_by_policy

    deny_all = replay(root / "audit", pub, "run_1", policy={"version": 1, "overrides": []})
    assert deny_all.changed_by_policy == [decisions[0].seq]


def test_simulate_session_and_run(recorded):
    root, _ = recorded
    strict = {"version": 1, "overrides": []}
    changes = simulate(root / "audit", "sess_1", parse_policy(strict))
    assert [(c.tool, c.before, c.after, c.params) for c in changes] == [
        ("file.read", "ALLOW", "DENY", {"path": "work/a.txt"})
    ]
    assert changes[0].run_id == "run_1" and changes[0].reason
    assert simulate(root / "audit", "run_1", parse_policy(READ_POLICY)) == []
    assert simulate(root / "audit", parse_policy(strict), session_id="sess_1") == changes
    with pytest.raises(NotFound):
        simulate(root / "audit", "sess_nope", parse_policy(strict))


def run_cli(*args):
    return subprocess.run(
        [sys.executable, "-m", "talon_tui.cli", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.slow
def test_replay_cli(recorded, tmp_path):
    root, _ = recorded
    res = run_cli("replay", "run_1", "--data-dir", str(root), "--json")
    assert res.returncode == 0, res.stderr
    doc = json.loads(res.stdout)
    assert doc["run_id"] == "run_1" and doc["session_id"] == "sess_1" and doc["chain_valid"]
    step = next(s for s in doc["steps"] if s["type"] == "tool.executed")
    assert {
        "seq",
        "type",
        "decision",
        "reason",
        "output",
        "output_sha256",
        "output_matches",
    } <= set(step)
    assert step["output_matches"] is True and "changed_by_policy" not in doc

    policy_file = tmp_path / "strict.json"
    policy_file.write_text(json.dumps({"version": 1, "overrides": []}))
    res = run_cli(
        "replay", "run_1", "--data-dir", str(root), "--json", "--policy", str(policy_file)
    )
    assert res.returncode == 0 and len(json.loads(res.stdout)["changed_by_policy"]) == 1

    text = run_cli("replay", "run_1", "--data-dir", str(root))
    assert text.returncode == 0 and re.search(r"tool\.executed\s+file\.read", text.stdout)

    unknown = run_cli("replay", "run_nope", "--data-dir", str(root))
    assert unknown.returncode == 2 and "no run run_nope" in unknown.stderr

    bad_policy = tmp_path / "bad.json"
    bad_policy.write_text('{"version": 1, "overrides": [{"tool": "nope"}]}')
    res = run_cli("replay", "run_1", "--data-dir", str(root), "--policy", str(bad_policy))
    assert res.returncode == 2

    tamper_output(root, rehash=False)
    res = run_cli("replay", "run_1", "--data-dir", str(root), "--json")
    assert res.returncode == 1
    assert json.loads(res.stdout)["chain_valid"] is False


def test_run_and_session_what_if_judge_a_recorded_intent_alike(tmp_path):
    """Run replay, simulate and the session timeline read a recorded intent through one
    function (`judge_recorded`). A recorded ALLOW whose intent the models no longer accept
    (here: an origin this version does not know, as a log written by another version could
    hold) is a DENY in all three; the session what-if used to skip it silently, so the operator
    saw no change."""
    from talon_tui.engine.audit.session_replay import session_timeline

    s, r = "sess_1", "run_1"
    log, pub = session_log(tmp_path, s)
    log.append("run.started", session_id=s, run_id=r, data={"subject": "a", "content": ""})
    record_intent(log, s, r, 1, "work/a.txt", "ALLOW", {"content": "hello"})
    record_intent(log, s, r, 2, "work/b.txt", "ALLOW", {"content": "x"}, origin="plugin")
    log.append("run.finished", session_id=s, run_id=r, data={"status": "ok", "steps": 2})
    log.close()
    policy = parse_policy(READ_POLICY)

    run = replay(tmp_path / "audit", pub, r, policy=policy)
    changed = [st for st in run.steps if st.changed_by_policy]
    assert [st.what_if_decision for st in changed] == ["DENY"]

    sim = simulate(tmp_path / "audit", s, policy)
    assert [(c.params["path"], c.after) for c in sim] == [("work/b.txt", "DENY")]
    assert sim[0].reason.startswith("the recorded intent is not valid")

    timeline = session_timeline(tmp_path / "audit", s, policy=policy)
    session_changes = [c for g in timeline.what_if for c in g.changes]
    assert [(c.params["path"], c.before, c.after, c.reason) for c in session_changes] == [
        (c.params["path"], c.before, c.after, c.reason) for c in sim
    ]
