"""Broker.execute end to end with real capability tokens: nothing runs unless the token is for
exactly this intent, and constraints come from the token, never from the caller."""

from __future__ import annotations

import os
import shutil

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from support.http_server import start

from talon_tui.engine.broker import Broker
from talon_tui.engine.core.canon import intent_hash
from talon_tui.engine.errors import BadRequest, ConstraintViolation, TokenInvalid
from talon_tui.engine.policy.models import Session, ToolIntent
from talon_tui.engine.runtime.tokens import CapabilityIssuer, CapabilityVerifier

FILE_CONS = {"roots": ["work"], "max_bytes": 1000}


@pytest.fixture
def key():
    return Ed25519PrivateKey.generate()


@pytest.fixture
def issuer(key):
    return CapabilityIssuer(key)


@pytest.fixture
def broker(key):
    return Broker(CapabilityVerifier(key.public_key()))


@pytest.fixture
def session(tmp_path):
    ws = tmp_path / "ws"
    (ws / "work").mkdir(parents=True)
    (ws / "work" / "a.txt").write_text("original")
    (ws / "secret.txt").write_text("outside the root")
    return Session(id="sess_1", label="t", workspace=str(ws), created="2026-01-01T00:00:00Z")


@pytest.fixture(scope="module")
def srv():
    s = start("127.0.0.1")
    yield s
    s.shutdown()
    s.server_close()


def tok(issuer, tool, params, cons, *, sid="sess_1", sub="agent:a"):
    return issuer.issue(
        session_id=sid,
        subject=sub,
        tool=tool,
        constraints=cons,
        intent_hash=intent_hash(tool, params),
        ttl_seconds=60,
    ).token


def intent(tool, params):
    return ToolIntent(tool=tool, params=params)


def test_read_and_write_with_valid_tokens(broker, issuer, session):
    p = {"path": "work/a.txt"}
    r = broker.execute(
        intent("file.read", p), tok(issuer, "file.read", p, FILE_CONS), session=session
    )
    assert r["content"] == "original"
    p = {"path": "work/a.txt", "content": "new"}
    r = broker.execute(
        intent("file.write", p),
        tok(issuer, "file.write", p, FILE_CONS),
        session=session,
        subject="agent:a",
    )
    assert r["bytes"] == 3
    assert open(os.path.join(session.workspace, "work/a.txt")).read() == "new"


def test_replayed_token_executes_nothing(broker, issuer, session):
    p = {"path": "work/a.txt", "content": "first"}
    t = tok(issuer, "file.write", p, FILE_CONS)
    broker.execute(intent("file.write", p), t, session=session)
    path = os.path.join(session.workspace, "work/a.txt")
    with open(path, "w") as f:
        f.write("changed by operator")
    with pytest.raises(TokenInvalid, match="already used"):
        broker.execute(intent("file.write", p), t, session=session)
    assert open(path).read() == "changed by operator"


def test_changed_params_execute_nothing(broker, issuer, session):
    p = {"path": "work/a.txt", "content": "allowed"}
    t = tok(issuer, "file.write", p, FILE_CONS)
    for evil in [
        {"path": "work/a.txt", "content": "evil"},
        {"path": "work/b.txt", "content": "allowed"},
        {**p, "encoding": "utf-8"},
    ]:
        with pytest.raises(TokenInvalid):
            broker.execute(intent("file.write", evil), t, session=session)
    assert open(os.path.join(session.workspace, "work/a.txt")).read() == "original"
    assert not os.path.exists(os.path.join(session.workspace, "work/b.txt"))


def test_wrong_tool_wrong_session_wrong_subject(broker, issuer, session):
    p = {"path": "work/a.txt"}
    t = tok(issuer, "file.read", p, FILE_CONS)
    with pytest.raises(TokenInvalid, match="file.read"):
        broker.execute(intent("file.write", {**p, "content": "x"}), t, session=session)
    other = session.model_copy(update={"id": "sess_2"})
    with pytest.raises(TokenInvalid):
        broker.execute(intent("file.read", p), t, session=other)
    with pytest.raises(TokenInvalid, match="subject"):
        broker.execute(intent("file.read", p), t, session=session, subject="agent:b")
    assert open(os.path.join(session.workspace, "work/a.txt")).read() == "original"


def test_forged_token_refused(broker, session):
    p = {"path": "work/a.txt", "content": "x"}
    forged = tok(CapabilityIssuer(Ed25519PrivateKey.generate()), "file.write", p, FILE_CONS)
    with pytest.raises(TokenInvalid):
        broker.execute(intent("file.write", p), forged, session=session)
    with pytest.raises(TokenInvalid):
        broker.execute(intent("file.write", p), "", session=session)
    assert open(os.path.join(session.workspace, "work/a.txt")).read() == "original"


def test_constraints_come_from_token(broker, issuer, session):
    p = {"path": "secret.txt"}
    t = tok(issuer, "file.read", p, FILE_CONS)  # a valid token for an intent outside its roots
    with pytest.raises(ConstraintViolation, match="outside the allowed roots"):
        broker.execute(intent("file.read", p), t, session=session)


def test_token_without_usable_constraints_allows_nothing(broker, issuer, session):
    p = {"path": "work/a.txt"}
    for cons in [{}, {"roots": []}, {"roots": ["work"], "evil": True}]:
        with pytest.raises(ConstraintViolation, match="constraints are invalid"):
            broker.execute(
                intent("file.read", p), tok(issuer, "file.read", p, cons), session=session
            )


def test_unknown_or_mistyped_params_refused(broker, issuer, session):
    for p in [{"path": "work/a.txt", "follow_symlinks": True}, {"path": ["work/a.txt"]}, {}]:
        with pytest.raises(ConstraintViolation, match="params refused"):
            broker.execute(
                intent("file.read", p), tok(issuer, "file.read", p, FILE_CONS), session=session
            )


def test_float_params_bad_request(broker, session):
    with pytest.raises(BadRequest):
        broker.execute(intent("file.read", {"path": 1.5}), "x.y.z", session=session)


def test_closed_session_runs_nothing(broker, issuer, session):
    p = {"path": "work/a.txt", "content": "x"}
    closed = session.model_copy(update={"status": "closed"})
    with pytest.raises(ConstraintViolation, match="closed"):
        broker.execute(
            intent("file.write", p), tok(issuer, "file.write", p, FILE_CONS), session=closed
        )
    assert open(os.path.join(session.workspace, "work/a.txt")).read() == "original"


def test_http_token_problems_send_no_request(broker, issuer, session, srv):
    cons = {
        "domains": ["127.0.0.1"],
        "schemes": ["http"],
        "ports": [srv.port],
        "allow_private_addresses": True,
    }
    p = {"url": srv.base + "/ok"}
    t = tok(issuer, "http.fetch", p, cons)
    srv.requests.clear()
    with pytest.raises(TokenInvalid):
        broker.execute(intent("http.fetch", {"url": srv.base + "/other"}), t, session=session)
    with pytest.raises(TokenInvalid):
        broker.execute(intent("http.fetch", {**p, "method": "GET"}), t, session=session)
    assert srv.requests == []
    r = broker.execute(intent("http.fetch", p), t, session=session)
    assert r["status_code"] == 200 and len(srv.requests) == 1
    with pytest.raises(TokenInvalid, match="already used"):
        broker.execute(intent("http.fetch", p), t, session=session)
    assert len(srv.requests) == 1


def test_http_secret_via_broker(key, issuer, session, srv):
    class Store:
        def get(self, name):
            return {"api": "broker-secret-123456"}[name]

    broker = Broker(CapabilityVerifier(key.public_key()), secrets=Store())
    cons = {
        "domains": ["127.0.0.1"],
        "schemes": ["http"],
        "ports": [srv.port],
        "allow_private_addresses": True,
        "secrets": ["api"],
    }
    p = {"url": srv.base + "/echo", "headers": {"Authorization": {"secret_ref": "api"}}}
    srv.requests.clear()
    r = broker.execute(intent("http.fetch", p), tok(issuer, "http.fetch", p, cons), session=session)
    assert srv.requests[0]["headers"]["Authorization"] == "broker-secret-123456"
    assert "broker-secret-123456" not in str(r)


def test_shell_via_broker(broker, issuer, session):
    echo = os.path.realpath(shutil.which("echo"))
    p = {"argv": [echo, "hi"], "cwd": "work"}
    cons = {"commands": [echo], "roots": ["work"]}
    r = broker.execute(intent("shell.exec", p), tok(issuer, "shell.exec", p, cons), session=session)
    assert r["stdout"] == "hi\n" and r["exit_code"] == 0
    p2 = {"argv": ["/bin/sh", "-c", "id"], "cwd": "work"}
    with pytest.raises(ConstraintViolation):
        broker.execute(
            intent("shell.exec", p2), tok(issuer, "shell.exec", p2, cons), session=session
        )


def test_docker_dispatch_refuses_tag_before_docker(broker, issuer, session):
    p = {"image": "busybox:latest"}
    cons = {"images": ["busybox:latest"]}
    with pytest.raises(ConstraintViolation):
        broker.execute(intent("docker.run", p), tok(issuer, "docker.run", p, cons), session=session)
