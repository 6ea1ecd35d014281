"""Admin connections are audited as what they are, and `talon audit tail` never prints a row
without details (issue 12, friction "Audit noise"), against a real `talon serve`."""

from __future__ import annotations

import asyncio
import json

from support.admin_link import talon
from support.pipe import READ_POLICY, Serve, make_workspace, new_session

from talon_tui.client import AgentClient


def test_admin_and_agent_connections_are_told_apart(tmp_path):
    serve = Serve(tmp_path / "data").start()
    try:
        sid, key = asyncio.run(new_session(serve, make_workspace(tmp_path), READ_POLICY))
        with AgentClient(key, socket_path=serve.socket_path) as agent:
            agent.intent("file.read", {"path": "work/a.txt"})
        closed = talon(serve.data, "session", "close", sid)
        assert closed.returncode == 0, closed.stderr

        tail = talon(serve.data, "audit", "tail", "--lines", "100", "--json")
        assert tail.returncode == 0, tail.stderr
        events = [json.loads(line) for line in tail.stdout.splitlines()]
        by_type: dict[str, list[dict]] = {}
        for event in events:
            by_type.setdefault(event["type"], []).append(event)
        # one agent connected, once; every admin (new_session, the CLI verbs) as an admin
        assert [e["data"]["role"] for e in by_type["agent.connected"]] == ["agent"]
        assert by_type["agent.connected"][0]["session_id"] == sid
        assert len(by_type["agent.disconnected"]) == 1
        admins = by_type["admin.connected"]
        assert len(admins) >= 3 and {e["data"]["role"] for e in admins} == {"admin"}
        assert all(e["data"]["subject"].startswith("admin:uid") for e in admins)
        assert len(by_type["admin.disconnected"]) >= 2

        rows = talon(serve.data, "audit", "tail", "--lines", "100")
        assert rows.returncode == 0, rows.stderr
        lines = rows.stdout.splitlines()
        assert len(lines) >= len(events)  # plus this verb's own admin.connected
        for line in lines:
            seq, ts, etype, *details = line.split()
            assert details, f"no details: {line!r}"
        admin_rows = [line for line in lines if " admin.connected " in line]
        assert admin_rows and all("subject=admin:uid" in line for line in admin_rows)
        (closed_row,) = [line for line in lines if " session.closed " in line]
        assert f"session={sid}" in closed_row
    finally:
        serve.stop_quietly()


def test_audit_tail_follow_says_when_the_engine_goes_away(tmp_path):
    import os
    import select
    import subprocess

    from support.pipe import REPO, TALON

    serve = Serve(tmp_path / "data").start()
    env = {k: v for k, v in os.environ.items() if k != "TALON_ADMIN_TOKEN"}
    follow = subprocess.Popen(
        [*TALON, "audit", "tail", "--follow", "--data-dir", str(serve.data)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=REPO,
        env=env,
    )
    try:
        ready, _, _ = select.select([follow.stdout], [], [], 30)
        assert ready and b"engine.started" in follow.stdout.readline()
        serve.terminate()
        _out, err = follow.communicate(timeout=30)
        assert follow.returncode == 2
        lines = err.decode().strip().splitlines()
        assert len(lines) == 1 and "Traceback" not in err.decode()
        # closed, broken or unreachable (when it stopped before the stream opened): said
        assert lines[0].startswith("talon: INTERNAL: ") and "engine" in lines[0]
    finally:
        if follow.poll() is None:
            follow.kill()
            follow.wait()
        serve.stop_quietly()
