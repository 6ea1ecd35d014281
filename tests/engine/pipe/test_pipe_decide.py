"""The agent ops `decide` and `tool.report` on the real socket: every bad field is a clear
BAD_REQUEST, a decision never executes anything, an admin cannot use them."""

from __future__ import annotations

import pytest
from support.pipe import Raw, Serve, make_workspace, new_session, run

HASH = "sha256:" + "0" * 64


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    root = tmp_path_factory.mktemp("decide")
    serve = Serve(root / "data").start()
    ws = make_workspace(root)
    _sid, key = run(new_session(serve, ws))
    yield serve, ws, key
    serve.stop_quietly()


def agent(serve, key) -> Raw:
    raw = Raw(serve.socket_path)
    assert raw.call({"id": 0, "op": "hello", "auth": {"agent_key": key}})["ok"]
    return raw


@pytest.mark.parametrize(
    ("frame", "needle"),
    [
        ({"op": "decide"}, "missing field 'tool'"),
        ({"op": "decide", "tool": "rm.everything"}, "unknown tool"),
        ({"op": "decide", "tool": "file.read", "params": []}, "params"),
        (
            {"op": "decide", "tool": "file.read", "params": {"path": "a", "x": 1}},
            "unknown parameter",
        ),
        ({"op": "decide", "tool": "agent.native", "params": {"nam": "x"}}, "agent.native"),
        ({"op": "decide", "tool": "file.read", "params": {"path": "a"}, "ref": 5}, "ref"),
        ({"op": "decide", "tool": "file.read", "params": {"path": "a"}, "ref": "r" * 300}, "ref"),
        (
            {"op": "decide", "tool": "file.read", "params": {"path": "a"}, "run_id": "run_x"},
            "no running run",
        ),
        ({"op": "tool.report", "ref": "r", "status": "ok", "output_sha256": HASH}, "bytes"),
        (
            {"op": "tool.report", "ref": "", "status": "ok", "output_sha256": HASH, "bytes": 1},
            "ref",
        ),
        (
            {"op": "tool.report", "ref": "r", "status": "fine", "output_sha256": HASH, "bytes": 1},
            "status",
        ),
        (
            {"op": "tool.report", "ref": "r", "status": "ok", "output_sha256": "md5:x", "bytes": 1},
            "output_sha256",
        ),
        (
            {"op": "tool.report", "ref": "r", "status": "ok", "output_sha256": HASH, "bytes": -1},
            "bytes",
        ),
        (
            {"op": "tool.report", "ref": "r", "status": "ok", "output_sha256": HASH, "bytes": True},
            "bytes",
        ),
    ],
)
def test_bad_fields_are_bad_requests(server, frame, needle):
    serve, _ws, key = server
    raw = agent(serve, key)
    try:
        reply = raw.call({"id": 1, **frame})
        assert reply["ok"] is False, reply
        # unknown params are the policy's refusal, as for `intent`
        assert reply["error"]["code"] in ("BAD_REQUEST", "NOT_FOUND", "POLICY_DENIED"), reply
        assert needle in reply["error"]["message"], reply
        # the connection survives
        assert raw.call(
            {"id": 2, "op": "decide", "tool": "file.read", "params": {"path": "work/a.txt"}}
        )["ok"]
    finally:
        raw.close()


def test_decide_executes_nothing(server):
    serve, ws, key = server
    raw = agent(serve, key)
    try:
        target = ws / "work" / "never.txt"
        reply = raw.call(
            {
                "id": 1,
                "op": "decide",
                "tool": "file.write",
                "params": {"path": str(target), "content": "x"},
            }
        )
        # file.write is not allowed by READ_POLICY: denied, and nothing written either way
        assert reply["ok"] is False and reply["error"]["code"] == "POLICY_DENIED"
        reply = raw.call(
            {
                "id": 2,
                "op": "decide",
                "tool": "file.read",
                "params": {"path": str(ws / "work" / "a.txt")},
            }
        )
        assert reply["ok"] and reply["executor"] == "agent" and "result" not in reply
        assert not target.exists()
    finally:
        raw.close()


def test_admin_cannot_decide(server):
    serve, _ws, _key = server
    raw = Raw(serve.socket_path)
    try:
        assert raw.call({"id": 0, "op": "hello", "auth": {"admin_token": serve.admin_token}})["ok"]
        reply = raw.call({"id": 1, "op": "decide", "tool": "file.read", "params": {"path": "a"}})
        assert reply["ok"] is False
    finally:
        raw.close()
