"""Issue 9.4: a secret is usable only where a policy grants it.

Real HTTP servers on 127.0.0.2 and 127.0.0.3 record every request; the engine runs in-process
with its real broker. The point of each test is what the server never received.
"""

from __future__ import annotations

import json

import pytest
from support.http_server import recorder

from talon_tui.engine.broker.http import run_http_fetch
from talon_tui.engine.engine import Engine
from talon_tui.engine.errors import ConstraintViolation, ErrorCode, PolicyInvalid, TalonError
from talon_tui.engine.policy import evaluate as policy_engine
from talon_tui.engine.policy.models import (
    HttpConstraints,
    HttpFetchParams,
    ToolIntent,
    parse_policy,
)

SECRET = "gh-token-VALUE-4f1d9c"


s2 = recorder("127.0.0.2")
s3 = recorder("127.0.0.3")


@pytest.fixture(autouse=True)
def _clear(s2, s3):
    s2.requests.clear()
    s3.requests.clear()


@pytest.fixture
async def engine(tmp_path):
    eng = Engine(tmp_path / "data", approval_timeout=5)
    await eng.start()
    await eng.set_secret("api", SECRET)
    await eng.set_secret("other", "other-VALUE-77aa01")
    yield eng
    await eng.stop()


def _override(srv, **cons):
    return {
        "tool": "http.fetch",
        "allow": True,
        "approval": "never",
        "constraints": {
            "domains": [srv.server_address[0]],
            "schemes": ["http"],
            "ports": [srv.port],
            "allow_private_addresses": True,
            "methods": ["GET"],
            **cons,
        },
    }


async def _agent(engine, tmp_path, *overrides):
    ws = tmp_path / "ws"
    ws.mkdir(exist_ok=True)
    policy = {"version": 1, "overrides": list(overrides)}
    session, key = await engine.create_session("t", str(ws), policy)
    return engine.authenticate_agent(key)


def _fetch(url, ref="api"):
    return ToolIntent(
        tool="http.fetch",
        params={"url": url, "headers": {"Authorization": {"secret_ref": ref}}},
    )


def _decisions(engine, run_id):
    return [
        e["data"]
        for e in engine.store.query(None, run_id, None, 0, 100)
        if e["type"] == "policy.decision"
    ]


def _saw_secret(srv) -> bool:
    return any(SECRET in json.dumps(r["headers"]) for r in srv.requests)


# --------------------------------------------------------------------------- end to end


async def test_secret_not_granted_is_refused_before_any_request(engine, tmp_path, s2):
    """Today any session can name any secret: the server received it."""
    sid, subject = await _agent(engine, tmp_path, _override(s2))
    with pytest.raises(TalonError) as exc:
        await engine.submit(sid, subject, _fetch(s2.base + "/echo"))
    assert exc.value.code == ErrorCode.CONSTRAINT_VIOLATION
    assert "not granted" in exc.value.message
    assert s2.requests == []  # the server got no request at all
    (decision,) = _decisions(engine, exc.value.details["run_id"])
    assert decision["decision"] == "DENY" and decision["code"] == "CONSTRAINT_VIOLATION"
    assert SECRET not in json.dumps(engine.store.query(None, None, None, 0, 1000))


async def test_secret_granted_for_another_domain_is_refused(engine, tmp_path, s2, s3):
    sid, subject = await _agent(engine, tmp_path, _override(s2), _override(s3, secrets=["api"]))
    with pytest.raises(TalonError) as exc:
        await engine.submit(sid, subject, _fetch(s2.base + "/echo"))
    assert exc.value.code == ErrorCode.CONSTRAINT_VIOLATION
    assert s2.requests == [] and s3.requests == []


async def test_other_secret_than_the_granted_one_is_refused(engine, tmp_path, s2):
    sid, subject = await _agent(engine, tmp_path, _override(s2, secrets=["other"]))
    with pytest.raises(TalonError) as exc:
        await engine.submit(sid, subject, _fetch(s2.base + "/echo", ref="api"))
    assert exc.value.code == ErrorCode.CONSTRAINT_VIOLATION
    assert s2.requests == []


async def test_granted_secret_is_sent_and_the_granting_override_is_chosen(engine, tmp_path, s2):
    # override #0 reaches the host without secrets; #1 grants the secret: #1 must apply
    sid, subject = await _agent(engine, tmp_path, _override(s2), _override(s2, secrets=["api"]))
    out = await engine.submit(sid, subject, _fetch(s2.base + "/echo"))
    assert out["result"]["status_code"] == 200
    assert s2.requests[0]["headers"]["Authorization"] == SECRET
    assert SECRET not in json.dumps(out)
    (decision,) = _decisions(engine, out["run_id"])
    assert decision["override_index"] == 1


async def test_redirect_to_another_overrides_domain_carries_no_secret(engine, tmp_path, s2, s3):
    """s2 is granted the secret; s3 is allowed by another override without it. The token
    carries only the matched override's constraints, so the hop to s3 is never made."""
    sid, subject = await _agent(engine, tmp_path, _override(s2, secrets=["api"]), _override(s3))
    out = await engine.submit(sid, subject, _fetch(s2.base + f"/redirect?to={s3.base}/echo"))
    assert s2.requests[0]["headers"]["Authorization"] == SECRET
    assert out["result"]["redirect_refused"]
    assert s3.requests == []


async def test_redirect_within_the_granting_override_drops_the_secret_cross_origin(
    engine, tmp_path, s2, s3
):
    both = _override(s2, secrets=["api"])
    both["constraints"]["domains"] = ["127.0.0.2", "127.0.0.3"]
    both["constraints"]["ports"] = [s2.port, s3.port]
    sid, subject = await _agent(engine, tmp_path, both)
    out = await engine.submit(sid, subject, _fetch(s2.base + f"/redirect?to={s3.base}/echo"))
    assert out["result"]["status_code"] == 200
    assert len(s3.requests) == 1 and not _saw_secret(s3)
    # a same-origin redirect keeps it: the host it goes to is the granted one
    s2.requests.clear()
    out = await engine.submit(sid, subject, _fetch(s2.base + f"/redirect?to={s2.base}/echo"))
    assert [r["headers"]["Authorization"] for r in s2.requests] == [SECRET, SECRET]


async def test_secret_ref_outside_http_headers_is_refused(engine, tmp_path, s2):
    sid, subject = await _agent(engine, tmp_path, _override(s2, secrets=["api"]))
    body_ref = ToolIntent(
        tool="http.fetch", params={"url": s2.base + "/echo", "body": {"secret_ref": "api"}}
    )
    with pytest.raises(TalonError) as exc:
        await engine.submit(sid, subject, body_ref)
    assert exc.value.code == ErrorCode.POLICY_DENIED and "params" in exc.value.message
    url_ref = ToolIntent(tool="http.fetch", params={"url": {"secret_ref": "api"}})
    with pytest.raises(TalonError):
        await engine.submit(sid, subject, url_ref)
    env_ref = ToolIntent(
        tool="docker.run",
        params={"image": "sha256:" + "a" * 64, "env": {"T": {"secret_ref": "api"}}},
    )
    with pytest.raises(TalonError):
        await engine.submit(sid, subject, env_ref)
    assert s2.requests == []


# --------------------------------------------------------------------------- the broker alone


class _CountingStore:
    def __init__(self):
        self.asked: list[str] = []

    def get(self, name):
        self.asked.append(name)
        return SECRET


def test_broker_refuses_a_token_without_the_grant(s2):
    """A token's cons without `secrets` (minted before grants existed, or for an override
    that lists none) never lets the broker read or send a secret."""
    store = _CountingStore()
    cons = HttpConstraints(
        domains=["127.0.0.2"], schemes=["http"], ports=[s2.port], allow_private_addresses=True
    )
    params = HttpFetchParams(
        url=s2.base + "/echo", headers={"Authorization": {"secret_ref": "api"}}
    )
    with pytest.raises(ConstraintViolation, match="does not grant"):
        run_http_fetch(params, cons, secrets=store)
    assert s2.requests == [] and store.asked == []


def test_broker_redirect_outside_the_grant_is_not_contacted(s2, s3):
    store = _CountingStore()
    cons = HttpConstraints(
        domains=["127.0.0.2"],
        schemes=["http"],
        ports=[s2.port, s3.port],
        allow_private_addresses=True,
        secrets=["api"],
    )
    params = HttpFetchParams(
        url=s2.base + f"/redirect?status=307&to={s3.base}/echo",
        headers={"Authorization": {"secret_ref": "api"}},
    )
    out = run_http_fetch(params, cons, secrets=store)
    assert "127.0.0.3" in out["redirect_refused"]
    assert s3.requests == []


# --------------------------------------------------------------------------- the policy


def _api_policy(**cons):
    return parse_policy(
        {
            "version": 1,
            "overrides": [
                {
                    "tool": "http.fetch",
                    "constraints": {"domains": ["api.example.com"], **cons},
                }
            ],
        }
    )


def _api_intent(url="https://api.example.com/v1", ref="gh"):
    return ToolIntent(
        tool="http.fetch", params={"url": url, "headers": {"X-Token": {"secret_ref": ref}}}
    )


def test_denial_suggests_exactly_that_secret_for_exactly_that_host():
    d = policy_engine.evaluate(_api_intent("https://files.example.com/a"), _api_policy())
    assert d.decision == "DENY" and d.code == "CONSTRAINT_VIOLATION"
    fix = d.suggested_fix
    assert fix["constraints"]["domains"] == ["files.example.com"]
    assert fix["constraints"]["secrets"] == ["gh"]
    assert fix["constraints"]["schemes"] == ["https"]
    fixed = parse_policy({"version": 1, "overrides": [fix]})
    assert policy_engine.evaluate(_api_intent("https://files.example.com/a"), fixed).decision != (
        "DENY"
    )
    # the fix grants nothing else: another secret, or another host, is still refused
    assert policy_engine.evaluate(_api_intent("https://files.example.com/a", "x"), fixed).code
    other_host = policy_engine.evaluate(_api_intent("https://api.example.com/v1"), fixed)
    assert other_host.decision == "DENY"


def test_granted_secret_allows_and_plain_http_gets_no_fix():
    ok = policy_engine.evaluate(_api_intent(), _api_policy(secrets=["gh"]))
    assert ok.decision != "DENY" and ok.constraints["secrets"] == ["gh"]
    clear = policy_engine.evaluate(_api_intent("http://api.example.com/"), _api_policy())
    assert clear.code == "CONSTRAINT_VIOLATION" and clear.suggested_fix is None
    assert "plain http" in clear.reason


def test_a_fetch_without_secrets_is_unchanged():
    d = policy_engine.evaluate(
        ToolIntent(tool="http.fetch", params={"url": "https://api.example.com/"}), _api_policy()
    )
    assert d.decision != "DENY" and d.code is None


def test_explicit_denial_still_wins_with_policy_denied():
    policy = parse_policy({"version": 1, "overrides": [{"tool": "http.fetch", "allow": False}]})
    d = policy_engine.evaluate(_api_intent(), policy)
    assert d.decision == "DENY" and d.code is None


@pytest.mark.parametrize("bad", ["", "a/b", "..", "x" * 65, "tok en"])
def test_secret_names_in_policies_are_checked(bad):
    with pytest.raises(PolicyInvalid, match="secrets"):
        _api_policy(secrets=[bad])


def test_granted_secret_echoed_in_hex_or_reversed_is_redacted(s2):
    """Defence in depth for a granted host that echoes the secret back transformed."""
    cons = HttpConstraints(
        domains=["127.0.0.2"],
        schemes=["http"],
        ports=[s2.port],
        allow_private_addresses=True,
        secrets=["api"],
    )
    params = HttpFetchParams(
        url=s2.base + "/echo",
        headers={
            "Authorization": {"secret_ref": "api"},
            "X-Hex": SECRET.encode().hex().upper(),
            "X-Rev": SECRET[::-1],
        },
    )
    out = run_http_fetch(params, cons, secrets=_CountingStore())
    dumped = json.dumps(out)
    assert s2.requests[0]["headers"]["Authorization"] == SECRET
    for form in (SECRET, SECRET.encode().hex(), SECRET.encode().hex().upper(), SECRET[::-1]):
        assert form not in dumped


# --------------------------------------------------------------------------- over the real pipe


def test_ungranted_secret_over_a_real_talon_serve(tmp_path, s2):
    """End to end: `talon serve`, an agent on the Unix socket, a recording server."""
    from support.pipe import Serve, make_workspace, run

    from talon_tui.client import AdminClient, AgentClient, ConstraintViolationError

    serve = Serve(tmp_path / "data").start()
    try:

        async def setup():
            async with await AdminClient.connect(serve.data) as admin:
                await admin.set_secret("api", SECRET)
                policy = {"version": 1, "overrides": [_override(s2)]}
                session, key = await admin.create_session(
                    "t", str(make_workspace(tmp_path)), policy
                )
                return session.id, key

        sid, key = run(setup())
        with AgentClient(key, socket_path=serve.socket_path) as agent:
            with pytest.raises(ConstraintViolationError) as exc:
                agent.intent(
                    "http.fetch",
                    {"url": s2.base + "/echo", "headers": {"X-Key": {"secret_ref": "api"}}},
                )
        assert s2.requests == []

        async def decisions():
            async with await AdminClient.connect(serve.data) as admin:
                return await admin.query_audit(session_id=sid, types=["policy.decision"])

        (event,) = run(decisions())
        assert event["data"]["code"] == "CONSTRAINT_VIOLATION"
        assert event["data"]["intent_id"] == exc.value.details["intent_id"]
    finally:
        serve.stop_quietly()
