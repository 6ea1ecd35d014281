"""The agent pipe against a real `talon serve` subprocess and a real socket: auth, every
limit, agent keys that cannot administer, run ownership, approvals, events."""

from __future__ import annotations

import asyncio
import os
import stat
import threading
import time

import pytest
from support.pipe import (
    APPROVAL_POLICY,
    Raw,
    Serve,
    make_workspace,
    new_session,
    run,
)

from talon_tui.client import (
    AdminClient,
    AgentClient,
    ApprovalDeniedError,
    ApprovalTimeoutError,
    AsyncAgentClient,
    ForbiddenError,
    PolicyDeniedError,
    UnauthenticatedError,
)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    root = tmp_path_factory.mktemp("pipe")
    serve = Serve(
        root / "data", {"TALON_APPROVAL_TIMEOUT": "2", "TALON_AGGREGATE_SECONDS": "1"}
    ).start()
    ws = make_workspace(root)
    sid, key = run(new_session(serve, ws))
    yield serve, ws, sid, key
    serve.stop_quietly()


def _agent_raw(serve, key):
    raw = Raw(serve.socket_path)
    hello = raw.call({"id": 0, "op": "hello", "auth": {"agent_key": key}})
    assert hello["ok"] is True and hello["role"] == "agent"
    return raw


def test_socket_and_dir_are_private(server):
    serve, *_ = server
    assert stat.S_IMODE(os.stat(serve.socket_path).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(serve.socket_path.parent).st_mode) == 0o700
    assert stat.S_IMODE(os.stat(serve.data / "admin.token").st_mode) == 0o600


def test_allowed_and_denied_intents(server):
    serve, _ws, sid, key = server
    with AgentClient(key, socket_path=serve.socket_path) as agent:
        assert agent.session_id == sid
        out = agent.intent("file.read", {"path": "work/a.txt"})
        assert out.decision == "ALLOW" and out.result["content"].startswith("hello")
        with pytest.raises(PolicyDeniedError) as err:
            agent.intent("file.read", {"path": "other/b.txt"})
        assert err.value.suggested_fix["constraints"]["roots"] == ["other"]
        assert err.value.run_id.startswith("run_")


@pytest.mark.parametrize(
    "first",
    [
        {"op": "intent", "tool": "file.read", "params": {"path": "work/a.txt"}},
        {"op": "hello", "auth": {"agent_key": "tln_ag_wrong"}},
        {"op": "hello", "auth": {"admin_token": "nope"}},
        {"op": "hello"},
    ],
)
def test_first_frame_must_be_a_valid_hello(server, first):
    serve, *_ = server
    raw = Raw(serve.socket_path)
    reply = raw.call({"id": 1, **first})
    assert reply["ok"] is False and reply["error"]["code"] == "UNAUTHENTICATED"
    assert raw.closed_by_peer()
    raw.close()


def test_garbage_first_frame_is_unauthenticated(server):
    serve, *_ = server
    raw = Raw(serve.socket_path)
    raw.send_bytes(b"\xff\xfe not json\n")
    assert raw.recv()["error"]["code"] == "UNAUTHENTICATED"
    assert raw.closed_by_peer()


@pytest.mark.parametrize(
    ("data", "needle"),
    [
        (b"\xff\xfe\n", "UTF-8"),
        (b"{not json}\n", "JSON"),
        (b"[1, 2, 3]\n", "object"),
        (b'"just a string"\n', "object"),
        (b'{"id": 5, "op": "intent", "op": "run.end"}\n', "duplicate"),
        (b"[" * 65 + b"]" * 65 + b"\n", "deeper"),
        (b'{"id": 5, "op": "x", "p": ' + b"[" * 70 + b"]" * 70 + b"}\n", "deeper"),
        (b'{"id": 5, "op": "no.such.op"}\n', "unknown op"),
        (b'{"id": 5}\n', "op"),
        (b'{"id": 5, "op": "intent"}\n', "tool"),
        (b'{"id": 5, "op": "intent", "tool": "file.read", "params": "x"}\n', "params"),
        (b'{"id": 5, "op": "intent", "tool": "rm.rf", "params": {}}\n', "unknown tool"),
        (b'{"id": 5, "op": "run.end"}\n', "run_id"),
        (b'{"id": 5, "op": "intent", "tool": "file.read", "params": {"path": 1.5}}\n', ""),
        (b'{"id": 5, "op": "intent", "tool": "file.read", "params": {"path": NaN}}\n', "JSON"),
    ],
)
def test_bad_frames_are_bad_requests_and_the_connection_survives(server, data, needle):
    serve, _ws, _sid, key = server
    raw = _agent_raw(serve, key)
    raw.send_bytes(data)
    reply = raw.recv()
    assert reply["ok"] is False and reply["error"]["code"] == "BAD_REQUEST", reply
    assert needle.lower() in reply["error"]["message"].lower()
    ok = raw.call({"id": 6, "op": "intent", "tool": "file.read", "params": {"path": "work/a.txt"}})
    assert ok["id"] == 6 and ok["ok"] is True
    raw.close()


def test_line_over_one_mib_is_too_large_and_closes(server):
    serve, _ws, _sid, key = server
    raw = _agent_raw(serve, key)
    blob = "x" * (1 << 20)
    raw.send_bytes(
        b'{"id": 1, "op": "intent", "tool": "file.read", "params": {"path": "'
        + blob.encode()
        + b'"}}\n'
    )
    reply = raw.recv()
    assert reply["error"]["code"] == "TOO_LARGE"
    assert raw.closed_by_peer()
    # the server is still fine for others
    with AgentClient(key, socket_path=serve.socket_path) as agent:
        assert agent.intent("file.read", {"path": "work/a.txt"}).decision == "ALLOW"


def test_agent_cannot_administer_and_it_is_audited(server):
    serve, _ws, sid, key = server
    raw = _agent_raw(serve, key)
    for op in ("session.list", "policy.set", "approval.decide", "events.subscribe", "secret.set"):
        reply = raw.call({"id": op, "op": op, "session_id": sid, "policy": {}})
        assert reply["error"]["code"] == "FORBIDDEN", reply
    raw.close()

    async def check():
        async with await AdminClient.connect(serve.data) as admin:
            events = await admin.query_audit(types=["pipe.rejected"], limit=10_000)
        # aggregated per peer and interval: each event tallies the ops and codes it covers
        return [e["data"] for e in events if "FORBIDDEN" in e["data"]["codes"]]

    wanted = {"session.list", "policy.set", "secret.set"}
    deadline = time.monotonic() + 10
    while True:
        rejected = run(check())
        seen = {op for d in rejected for op in d["ops"]}
        if seen >= wanted or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert seen >= wanted, rejected


def test_cross_session_run_is_refused(server):
    serve, ws, _sid, key = server
    _other_sid, other_key = run(new_session(serve, ws))
    with (
        AgentClient(key, socket_path=serve.socket_path) as a,
        AgentClient(other_key, socket_path=serve.socket_path) as b,
    ):
        run_id = a.begin_run("mine")
        with pytest.raises(ForbiddenError):
            b.intent("file.read", {"path": "work/a.txt"}, run_id=run_id)
        with pytest.raises(ForbiddenError):
            b.end_run(run_id)
        assert a.intent("file.read", {"path": "work/a.txt"}, run_id=run_id).run_id == run_id
        assert a.end_run(run_id)["steps"] == 1


def test_closed_session_key_stops_working(server):
    serve, ws, _sid, _key = server
    sid, key = run(new_session(serve, ws))

    async def close():
        async with await AdminClient.connect(serve.data) as admin:
            await admin.close_session(sid)

    run(close())
    with pytest.raises(UnauthenticatedError):
        AgentClient(key, socket_path=serve.socket_path)


async def _wait_approvals(admin, n):
    """Wait (on the event stream, from the current head) until n approvals are pending."""
    head = (await admin.status()).audit_head_seq
    pending = await admin.list_approvals()
    if len(pending) >= n:
        return pending
    stream = admin.subscribe(from_seq=head + 1)
    try:
        async for msg in stream:
            if msg.kind == "audit" and msg.payload["type"] == "approval.requested":
                pending = await admin.list_approvals()
                if len(pending) >= n:
                    return pending
    finally:
        await stream.aclose()
    raise AssertionError("stream ended")


def test_approvals_approve_deny_timeout_remember(server):
    serve, ws, _sid, _key = server
    sid, key = run(new_session(serve, ws, APPROVAL_POLICY))

    async def scenario():
        async with (
            await AdminClient.connect(serve.data) as admin,
            await AsyncAgentClient.connect(key, socket_path=serve.socket_path) as agent,
        ):
            a = asyncio.create_task(agent.intent("file.read", {"path": "work/a.txt"}))
            b = asyncio.create_task(agent.intent("file.read", {"path": "work/a.txt"}))
            pending = await asyncio.wait_for(_wait_approvals(admin, 2), 10)
            await admin.decide_approval(pending[0].approval_id, True)
            await admin.decide_approval(pending[1].approval_id, False)
            results = await asyncio.gather(a, b, return_exceptions=True)
            kinds = sorted(type(r).__name__ for r in results)
            assert kinds == ["ApprovalDeniedError", "IntentResult"], results
            # timeout (2 s in this server)
            with pytest.raises(ApprovalTimeoutError):
                await agent.intent("file.read", {"path": "work/a.txt"})
            # approve and remember: the matched rule narrowed to this file, its approval kept
            c = asyncio.create_task(agent.intent("file.read", {"path": "work/a.txt"}))
            (p,) = await asyncio.wait_for(_wait_approvals(admin, 1), 10)
            assert p.remember_override["constraints"]["roots"] == ["work/a.txt"]
            await admin.decide_approval(p.approval_id, True, remember=True)
            assert (await c).decision == "ALLOW"
            policy = await admin.get_policy(sid)
            assert policy.overrides[0].approval == APPROVAL_POLICY["overrides"][0]["approval"]
            assert policy.overrides[0].constraints.roots == ["work/a.txt"]
            decided = await admin.query_audit(session_id=sid, types=["approval.decided"])
            assert [d["data"]["allow"] for d in decided] == [True, False, False, True]
            assert decided[2]["data"]["timed_out"] is True

    run(scenario())
    assert ApprovalDeniedError


def test_events_subscribe_streams_new_events(server):
    serve, _ws, _sid, key = server

    async def scenario():
        async with await AdminClient.connect(serve.data) as admin:
            head = (await admin.status()).audit_head_seq
            stream = admin.subscribe(from_seq=head + 1)
            with AgentClient(key, socket_path=serve.socket_path) as agent:
                await asyncio.to_thread(agent.intent, "file.read", {"path": "work/a.txt"})
            types = []
            async for msg in stream:
                if msg.kind == "audit":
                    assert msg.payload["seq"] == head + 1 + len(types)
                    types.append(msg.payload["type"])
                    if msg.payload["type"] == "tool.executed":
                        break
            await stream.aclose()
            assert "agent.connected" in types and "capability.issued" in types

    run(scenario())


def test_idle_connections_limits_and_rate(tmp_path):
    serve = Serve(
        tmp_path / "data",
        {
            "TALON_PIPE_IDLE_TIMEOUT": "0.5",
            "TALON_PIPE_MAX_CONNECTIONS": "3",
            "TALON_PIPE_RATE": "5",
            "TALON_PIPE_BURST": "5",
        },
    ).start()
    try:
        ws = make_workspace(tmp_path)
        _sid, key = run(new_session(serve, ws))
        # idle: closed after 0.5 s without a frame (told why: no hello)
        idle = Raw(serve.socket_path)
        assert idle.recv()["error"]["code"] == "UNAUTHENTICATED"
        assert idle.closed_by_peer()
        # rate: burst of 5, then RATE_LIMITED, connection kept
        raw = _agent_raw(serve, key)
        codes = []
        for i in range(8):
            r = raw.call({"id": i, "op": "run.begin"})
            codes.append("OK" if r["ok"] else r["error"]["code"])
        assert codes[:4] == ["OK"] * 4 and "RATE_LIMITED" in codes
        # max connections: 3 authenticated (raw + 2), the 4th hello is refused; connections
        # without a hello do not count (they have their own cap, test_hardening_pipe.py)
        extra = [_agent_raw(serve, key), _agent_raw(serve, key)]
        over = Raw(serve.socket_path)
        reply = over.call({"id": 0, "op": "hello", "auth": {"agent_key": key}})
        assert (
            reply["error"]["code"] == "RATE_LIMITED" and "connections" in reply["error"]["message"]
        )
        for r in (*extra, over, raw):
            r.close()
    finally:
        code, _err = serve.terminate()
        assert code == 0


@pytest.mark.slow
def test_unsafe_socket_dir_is_refused(tmp_path):
    data = tmp_path / "data"
    (data / "run").mkdir(parents=True)
    os.chmod(data / "run", 0o777)
    serve = Serve(data)
    with pytest.raises(RuntimeError, match="writable by group or others"):
        serve.start(timeout=20)
    os.chmod(data / "run", 0o700)
    (data / "run").rename(data / "real-run")
    (data / "run").symlink_to(data / "real-run")
    with pytest.raises(RuntimeError, match="symlink"):
        Serve(data).start(timeout=20)


def test_one_slow_reader_does_not_block_others(server):
    serve, _ws, _sid, key = server
    # a client that never reads its replies
    slow = _agent_raw(serve, key)
    stop = threading.Event()

    def flood():
        frame = (
            b'{"id": 1, "op": "intent", "tool": "file.read", "params": {"path": "work/a.txt"}}\n'
        )
        try:
            for _ in range(200):
                if stop.is_set():
                    return
                slow.send_bytes(frame)
        except OSError:
            return

    t = threading.Thread(target=flood, daemon=True)
    t.start()
    with AgentClient(key, socket_path=serve.socket_path, timeout=10) as agent:
        for _ in range(20):
            assert agent.intent("file.read", {"path": "work/a.txt"}).decision == "ALLOW"
    stop.set()
    slow.close()
    t.join(5)
