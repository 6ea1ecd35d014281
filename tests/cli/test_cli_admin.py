"""The admin and agent CLI verbs against a real `talon serve`."""

from __future__ import annotations

import json
import subprocess

import pytest
from support.pipe import READ_POLICY, REPO, TALON, Serve, make_workspace


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli")
    serve = Serve(root / "data").start()
    ws = make_workspace(root)
    policy = root / "policy.json"
    policy.write_text(json.dumps(READ_POLICY))
    yield serve, ws, policy
    serve.stop_quietly()


def talon(serve, *args, stdin=None):
    return subprocess.run(
        [*TALON, *args, "--data-dir", str(serve.data)],
        capture_output=True,
        text=True,
        cwd=REPO,
        input=stdin,
        timeout=60,
    )


@pytest.mark.slow
def test_session_policy_agent_and_audit_verbs(served):
    serve, ws, policy = served
    made = talon(
        serve, "session", "create", "cli", "--workspace", str(ws), "--policy", str(policy), "--json"
    )
    assert made.returncode == 0, made.stderr
    out = json.loads(made.stdout)
    sid, key = out["session"]["id"], out["agent_key"]

    listed = json.loads(talon(serve, "session", "list", "--json").stdout)
    assert sid in [s["id"] for s in listed]

    shown = talon(serve, "policy", "show", sid)
    assert json.loads(shown.stdout)["overrides"][0]["tool"] == "file.read"

    ok = talon(
        serve,
        "agent",
        "intent",
        "--key",
        key,
        "--tool",
        "file.read",
        "--params",
        '{"path": "work/a.txt"}',
        "--json",
    )
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout)["result"]["content"].startswith("hello")

    denied = talon(
        serve,
        "agent",
        "intent",
        "--key",
        "-",
        "--tool",
        "file.read",
        "--params",
        '{"path": "other/b.txt"}',
        stdin=key + "\n",
    )
    assert denied.returncode == 1
    assert "POLICY_DENIED" in denied.stderr and "suggested fix" in denied.stderr

    bad = talon(serve, "agent", "intent", "--key", key, "--tool", "file.read", "--params", "{nope")
    assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1

    script = ws.parent / "run.jsonl"
    script.write_text(
        '{"tool": "file.read", "params": {"path": "work/a.txt"}}\n'
        '{"tool": "file.read", "params": {"path": "other/b.txt"}}\n'
    )
    ran = talon(serve, "agent", "run", "--key", key, str(script), "--json")
    assert ran.returncode == 1
    results = json.loads(ran.stdout)["results"]
    assert [r["ok"] for r in results] == [True, False]

    tail = talon(serve, "audit", "tail", "-n", "5", "--json")
    lines = [json.loads(line) for line in tail.stdout.splitlines()]
    assert len(lines) == 5 and lines[-1]["seq"] == lines[0]["seq"] + 4

    approvals = talon(serve, "approvals", "--json")
    assert json.loads(approvals.stdout) == []
    gone = talon(serve, "approvals", "approve", "apr_nothing")
    assert gone.returncode == 2 and "NOT_FOUND" in gone.stderr

    closed = talon(serve, "session", "close", sid)
    assert closed.returncode == 0
    refused = talon(serve, "agent", "intent", "--key", key, "--tool", "file.read", "--params", "{}")
    assert refused.returncode == 2 and "UNAUTHENTICATED" in refused.stderr


def test_audit_tail_follow_streams_new_events(served):
    serve, ws, policy = served
    made = json.loads(
        talon(
            serve,
            "session",
            "create",
            "f",
            "--workspace",
            str(ws),
            "--policy",
            str(policy),
            "--json",
        ).stdout
    )
    follow = subprocess.Popen(
        [
            *TALON,
            "audit",
            "tail",
            "-n",
            "100000",
            "--follow",
            "--json",
            "--data-dir",
            str(serve.data),
        ],
        stdout=subprocess.PIPE,
        text=True,
        cwd=REPO,
    )
    try:
        done = talon(
            serve,
            "agent",
            "intent",
            "--key",
            made["agent_key"],
            "--tool",
            "file.read",
            "--params",
            '{"path": "work/a.txt"}',
            "--json",
        )
        run_id = json.loads(done.stdout)["run_id"]
        seen = []
        for line in follow.stdout:  # the backlog, then live events, whichever holds the run
            event = json.loads(line)
            if event["run_id"] == run_id:
                seen.append(event["type"])
                if event["type"] == "run.finished":
                    break
        assert seen[0] == "run.started" and "tool.executed" in seen
    finally:
        follow.terminate()
        follow.wait(10)


def test_no_engine_is_one_clear_line(tmp_path):
    r = subprocess.run(
        [*TALON, "session", "list", "--data-dir", str(tmp_path)],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=60,
    )
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1


def test_second_serve_on_the_same_dir_is_refused(served):
    serve, _ws, _policy = served
    r = subprocess.run(
        [*TALON, "serve", "--data-dir", str(serve.data)],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=60,
    )
    assert r.returncode == 2 and "already running" in r.stderr
