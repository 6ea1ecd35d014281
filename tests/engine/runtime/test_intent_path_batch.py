"""The intent path's batched audit writes, the broker's intent hash and its constraints cache."""

from __future__ import annotations

import pytest
from support.policies import READ_POLICY as POLICY

from talon_tui.engine.audit import log as audit_mod
from talon_tui.engine.audit.log import verify_log
from talon_tui.engine.broker import broker as broker_mod
from talon_tui.engine.core.canon import NotCanonical, canonical, intent_hash, sha256_tag
from talon_tui.engine.core.keys import load_public
from talon_tui.engine.errors import TalonError
from talon_tui.engine.policy.models import CONSTRAINT_MODELS, ToolIntent

ONE_SHOT = [
    "run.started",
    "policy.intent.received",
    "policy.decision",
    "capability.issued",
    "tool.executed",
    "run.finished",
]


async def _agent(engine, workspace):
    _session, key = await engine.create_session("t", str(workspace), POLICY)
    return engine.authenticate_agent(key)


def _types(engine, run_id):
    return [e["type"] for e in engine.store.query(None, run_id, None, 0, 1000)]


def _watch(engine, monkeypatch):
    """Lines per audit os.write, and the last log line each time the broker starts."""
    writes, at_execute = [], []
    real_write = audit_mod.os.write

    def write(fd, data):
        if fd == engine.audit._fd:
            writes.append(bytes(data).count(b"\n"))
        return real_write(fd, data)

    monkeypatch.setattr(audit_mod.os, "write", write)
    real_execute = engine.store.broker.execute

    def execute(*args, **kw):
        at_execute.append(engine.store.data.audit_log.read_bytes().splitlines()[-1])
        return real_execute(*args, **kw)

    monkeypatch.setattr(engine.store.broker, "execute", execute)
    return writes, at_execute


async def test_inline_read_is_one_write_in_design_order(engine, workspace, monkeypatch):
    sid, subject = await _agent(engine, workspace)
    writes, at_execute = _watch(engine, monkeypatch)
    intent = ToolIntent(tool="file.read", params={"path": "work/a.txt"})
    out = await engine.submit(sid, subject, intent)
    monkeypatch.undo()
    assert out["result"]["content"] == "hello"
    assert _types(engine, out["run_id"]) == ONE_SHOT
    assert writes == [6]  # a read on the loop: nothing could look at the log in between
    assert b'"type":"run.started"' not in at_execute[0]
    assert engine.audit._durable == engine.audit.next_seq  # durable before the caller heard
    received = engine.store.query(None, out["run_id"], ["policy.intent.received"], 0, 1)[0]
    assert received["data"]["intent_hash"] == intent_hash("file.read", {"path": "work/a.txt"})


async def test_capability_is_on_the_log_before_a_tool_with_effects_runs(
    engine, workspace, monkeypatch
):
    policy = {
        "version": 1,
        "overrides": [
            {
                "tool": "file.write",
                "allow": True,
                "approval": "never",
                "constraints": {"roots": ["work"], "max_bytes": 100},
            }
        ],
    }
    _session, key = await engine.create_session("w", str(workspace), policy)
    sid, subject = engine.authenticate_agent(key)
    writes, at_execute = _watch(engine, monkeypatch)
    intent = ToolIntent(tool="file.write", params={"path": "work/b.txt", "content": "x"})
    out = await engine.submit(sid, subject, intent)
    monkeypatch.undo()
    assert (workspace / "work" / "b.txt").read_text() == "x"
    assert _types(engine, out["run_id"]) == ONE_SHOT
    assert writes == [4, 2]  # up to capability.issued before the broker runs, then the rest
    assert b'"type":"capability.issued"' in at_execute[0]
    assert engine.audit._durable == engine.audit.next_seq


async def test_denied_and_broker_refused_intents_keep_their_events(engine, workspace):
    sid, subject = await _agent(engine, workspace)
    with pytest.raises(TalonError) as err:
        await engine.submit(sid, subject, ToolIntent(tool="file.read", params={"path": "x/a"}))
    run_id = err.value.details["run_id"]
    assert _types(engine, run_id) == [
        "run.started",
        "policy.intent.received",
        "policy.decision",
        "run.finished",
    ]
    with pytest.raises(TalonError) as err:  # allowed by policy, refused by the broker
        await engine.submit(sid, subject, ToolIntent(tool="file.read", params={"path": "work/no"}))
    run_id = err.value.details["run_id"]
    assert _types(engine, run_id)[:4] == ONE_SHOT[:4]
    assert _types(engine, run_id)[-2:] == ["tool.executed", "run.finished"]
    run = engine.runs.get(run_id)
    assert run is None or run.status != "running"
    await engine.stop()
    assert verify_log(engine.data.audit_dir, load_public(engine.data.keys_dir, "audit")).valid


@pytest.mark.parametrize(
    "params",
    [
        {"path": "work/a.txt"},
        {"path": "ü/\u2028/\x00", "n": 2**53, "l": [True, None, {"b": 1, "a": [-(2**53)]}]},
        {"z": 1, "a": (1, 2), "m": {"y": "", "x": {}}},
    ],
)
def test_broker_intent_hash_is_the_canonical_one(params):
    stdlib = sha256_tag(canonical({"tool": "file.read", "params": params}))
    assert intent_hash("file.read", params) == stdlib


@pytest.mark.parametrize(
    "params", [{"x": 1.0}, {"x": 2**53 + 1}, {"x": "\ud800"}, {"\udc00": 1}, {"x": {1: 2}}]
)
def test_broker_intent_hash_refuses_what_has_no_canonical_form(params):
    with pytest.raises(NotCanonical):
        intent_hash("file.read", params)


def test_constraints_are_validated_once_per_distinct_claim(monkeypatch):
    broker = broker_mod.Broker(verifier=None)
    model = CONSTRAINT_MODELS["file.read"]
    calls = []
    real = model.model_validate
    monkeypatch.setattr(model, "model_validate", lambda v, **kw: calls.append(v) or real(v, **kw))
    a = broker._constraints("file.read", {"roots": ["work"], "max_bytes": 10})
    b = broker._constraints("file.read", {"max_bytes": 10, "roots": ["work"]})  # same claim
    c = broker._constraints("file.read", {"roots": ["other"], "max_bytes": 10})
    assert a is b and a is not c and len(calls) == 2
    assert list(c.roots) == ["other"]
    with pytest.raises(TalonError):  # invalid constraints are refused every time, never cached
        broker._constraints("file.read", {"roots": ["work"], "bogus": 1})
    with pytest.raises(TalonError):
        broker._constraints("file.read", {"roots": ["work"], "bogus": 1})
    monkeypatch.setattr(broker_mod, "CONSTRAINT_CACHE_SIZE", 3)
    for i in range(10):
        broker._constraints("file.read", {"roots": [f"r{i}"]})
    assert len(broker._cons_cache) == 3


@pytest.mark.parametrize(
    "cons",
    [
        {"roots": ["work"], "max_bytes": 1 << 20, "ttl_seconds": 60},
        {"domains": ["ü.example", "\u2028"], "ports": [], "x": None, "y": True},
        {},
    ],
)
def test_issued_tokens_are_byte_identical_to_pyjwt(monkeypatch, cons):
    import jwt
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from talon_tui.engine.runtime import tokens

    key = Ed25519PrivateKey.generate()
    issuer = tokens.CapabilityIssuer(key, clock=lambda: 1_764_090_000.7)
    issued = issuer.issue(
        session_id="sess_1",
        subject="agent ü",
        tool="file.read",
        constraints=cons,
        intent_hash="sha256:" + "a" * 64,
        ttl_seconds=30,
    )
    payload = {
        "iss": tokens.ISSUER,
        "aud": tokens.AUDIENCE,
        "sub": "agent ü",
        "sid": "sess_1",
        "tool": "file.read",
        "cons": cons,
        "ih": "sha256:" + "a" * 64,
        "jti": issued.jti,
        "iat": 1_764_090_000,
        "nbf": 1_764_090_000,
        "exp": 1_764_090_030,
    }
    expected = jwt.encode(payload, key, algorithm="EdDSA", headers={"typ": tokens.TOKEN_TYPE})
    assert issued.token == expected
    assert issued.sha256 == tokens.token_sha256(expected)
    assert issued.exp == 1_764_090_030
