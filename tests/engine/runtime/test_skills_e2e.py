"""Signed skills end to end, through the in-process Engine and the real Docker engine.

`skill.register` / `skill.list` (signature status never "verified" unless a trusted key signed
exactly that skill), `require_signed: true` overrides that run only verified skills (refusals
create no container), and a skill's JSON answer followed back through the policy engine as
untrusted intents (origin "skill"): approval mode `untrusted`, denials, audit order.
"""

from __future__ import annotations

import asyncio
import json
import time

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from talon_tui.engine.broker import docker as docker_mod
from talon_tui.engine.engine import Engine
from talon_tui.engine.errors import BadRequest, ErrorCode, TalonError
from talon_tui.engine.pipe import ops
from talon_tui.engine.policy.models import ToolIntent
from talon_tui.engine.runtime.skills import signed_skill, trust_public_key

MANIFEST = {"tools": ["file.read"], "description": "reads a.txt"}
OTHER_IMAGE = "sha256:" + "ab" * 32


def skill_command(*intents: dict) -> list[str]:
    answer = json.dumps({"intents": list(intents)})
    return ["sh", "-c", f"cat >/dev/null; echo '{answer}'"]


READ_A = {"tool": "file.read", "params": {"path": "work/a.txt"}}


def policy(image: str, *, read_approval: str = "untrusted", require_signed: bool = True) -> dict:
    return {
        "version": 1,
        "overrides": [
            {
                "tool": "file.read",
                "allow": True,
                "approval": read_approval,
                "constraints": {"roots": ["work"], "max_bytes": 1 << 20},
            },
            {
                "tool": "docker.run",
                "allow": True,
                "approval": "never",
                "constraints": {
                    "images": [image],
                    "require_signed": require_signed,
                    "timeout_seconds": 20,
                },
            },
        ],
    }


@pytest.fixture
async def engine(tmp_path):
    eng = Engine(tmp_path / "data", approval_timeout=30)
    await eng.start()
    yield eng
    await eng.stop()


@pytest.fixture
def publisher(engine):
    """A publisher whose public key is in `<data>/keys/trusted/`."""
    key = Ed25519PrivateKey.generate()
    trust_public_key(engine.data.trusted_keys_dir, key.public_key(), "publisher")
    return key


async def _agent(engine, workspace, pol):
    _session, key = await engine.create_session("skills", str(workspace), pol)
    return engine.authenticate_agent(key)


def _events(engine, run_id):
    return engine.store.query(None, run_id, None, 0, 10_000)


def _admin(engine) -> ops.OpContext:
    return ops.OpContext(engine=engine, session_id=None, subject="admin", conn=None)


# --------------------------------------------------------------------------- registration


async def _register(engine, skill: dict) -> dict:
    return (await ops.dispatch(_admin(engine), "skill.register", {"skill": skill}))["skill"]


async def _list(engine) -> dict[str, str]:
    out = await ops.dispatch(_admin(engine), "skill.list", {})
    return {f"{s['name']}@{s['version']}": s["signature_status"] for s in out["skills"]}


async def test_register_and_list_signature_status(engine, publisher):
    stranger = Ed25519PrivateKey.generate()
    good = signed_skill(publisher, "good", "1", OTHER_IMAGE, MANIFEST).model_dump()
    untrusted = signed_skill(stranger, "stranger", "1", OTHER_IMAGE, MANIFEST).model_dump()
    tampered = signed_skill(publisher, "tampered", "1", OTHER_IMAGE, MANIFEST).model_dump()
    tampered["manifest"] = {"tools": ["file.read", "shell.exec"]}
    moved = signed_skill(publisher, "moved", "1", OTHER_IMAGE, MANIFEST).model_dump()
    moved["image"] = "sha256:" + "cd" * 32
    unsigned = {"name": "plain", "version": "1", "image": OTHER_IMAGE, "manifest": MANIFEST}
    junk = {**unsigned, "name": "junk", "signature": "not-base64!", "key_id": "sha256:00"}

    assert (await _register(engine, good))["signature_status"] == "verified"
    assert (await _register(engine, untrusted))["signature_status"] == "bad"
    assert (await _register(engine, tampered))["signature_status"] == "bad"
    assert (await _register(engine, moved))["signature_status"] == "bad"
    assert (await _register(engine, unsigned))["signature_status"] == "unsigned"
    assert (await _register(engine, junk))["signature_status"] == "bad"
    assert await _list(engine) == {
        "good@1": "verified",
        "stranger@1": "bad",
        "tampered@1": "bad",
        "moved@1": "bad",
        "plain@1": "unsigned",
        "junk@1": "bad",
    }
    # trust is read from the key files each time: a removed key un-verifies the skill
    (engine.data.trusted_keys_dir / "publisher.pub").unlink()
    assert (await _list(engine))["good@1"] == "bad"


@pytest.mark.parametrize(
    "change, match",
    [
        ({"image": "registry.local/skill:latest"}, "not pinned"),
        ({"image": "registry.local/skill"}, "not pinned"),
        ({"image": ""}, "not pinned"),
        ({"image": None}, "not pinned"),
        ({"manifest": ["file.read"]}, "manifest"),
        ({"manifest": "file.read"}, "manifest"),
        ({"signature": 12}, "signature"),
        ({"signature": ""}, "signature"),
        ({"key_id": ["x"]}, "key_id"),
        ({"name": ""}, "name"),
        ({"version": " "}, "version"),
        ({"signature_status": "verified"}, "invalid skill"),
        ({"trusted": True}, "invalid skill"),
    ],
)
async def test_register_refuses_malformed_skills(engine, change, match):
    skill = {"name": "s", "version": "1", "image": OTHER_IMAGE, "manifest": {}, **change}
    with pytest.raises(BadRequest, match=match):
        await _register(engine, skill)
    assert await _list(engine) == {}


async def test_register_op_needs_an_object(engine):
    with pytest.raises(BadRequest, match="skill"):
        await ops.dispatch(_admin(engine), "skill.register", {"skill": "x"})


async def test_registered_time_is_the_engines(engine, publisher):
    doc = signed_skill(publisher, "s", "1", OTHER_IMAGE, MANIFEST).model_dump()
    doc["registered"] = "1999-01-01T00:00:00.000Z"
    info = await _register(engine, doc)
    assert info["registered"] and not info["registered"].startswith("1999")
    assert info["signature_status"] == "verified"


# --------------------------------------------------------------------------- docker runs


@pytest.fixture
def docker_calls(monkeypatch, docker_api, test_labels):
    """Every broker docker.run goes to the test engine with this test's labels (so that
    `created()` sees exactly this test's containers); the call's kwargs are recorded."""
    real = docker_mod.run_docker
    calls: list[dict] = []

    def run(params, constraints, **kw):
        calls.append(dict(kw))
        kw.setdefault("client", docker_api)
        kw["labels"] = {**(kw.get("labels") or {}), **test_labels}
        return real(params, constraints, **kw)

    monkeypatch.setattr(docker_mod, "run_docker", run)
    return calls


@pytest.fixture
def created(docker_api, test_labels):
    """created(since) -> ids of containers with this test's label created since `since`."""
    ((key, value),) = test_labels.items()

    def _created(since: int) -> list[str]:
        events = docker_api.events(
            since=since,
            until=int(time.time()) + 1,
            filters={"type": "container", "event": "create", "label": f"{key}={value}"},
            decode=True,
        )
        return [e.get("id") or e.get("Actor", {}).get("ID") for e in events]

    return _created


def _docker_run(image: str, command: list[str]) -> ToolIntent:
    return ToolIntent(tool="docker.run", params={"image": image, "command": command})


@pytest.mark.docker
async def test_verified_skill_runs(engine, workspace, publisher, test_image, docker_calls, created):
    await _register(
        engine, signed_skill(publisher, "reader", "1", test_image, MANIFEST).model_dump()
    )
    sid, subject = await _agent(engine, workspace, policy(test_image, read_approval="never"))
    since = int(time.time()) - 1
    out = await engine.submit(sid, subject, _docker_run(test_image, skill_command(READ_A)))
    assert out["decision"] == "ALLOW"
    result = out["result"]
    assert result["exit_code"] == 0 and result["timed_out"] is False
    (follow,) = result["skill_intents"]
    assert follow["ok"] is True and follow["tool"] == "file.read"
    assert follow["result"]["content"] == "hello"
    assert follow["run_id"] == out["run_id"]
    # the broker got the engine's verifier, not something from the intent
    assert docker_calls[0]["skill_check"] == engine.store.skill_verified
    assert len(created(since)) == 1


@pytest.mark.docker
async def test_skill_verifier_matches_the_reference_or_the_resolved_image_id(
    engine, workspace, publisher, test_image
):
    """The verifier matches the image the broker resolved: a skill registered by image id
    verifies a run of that id, and nothing registered for another image does."""
    await _register(
        engine, signed_skill(publisher, "other", "1", OTHER_IMAGE, MANIFEST).model_dump()
    )
    store = engine.store
    assert store.skill_verified(test_image, test_image) is False
    await _register(
        engine, signed_skill(publisher, "reader", "1", test_image, MANIFEST).model_dump()
    )
    assert store.skill_verified(test_image, test_image) is True
    assert store.skill_verified("talon-test/busybox@sha256:" + "0" * 64, test_image) is True
    assert store.skill_verified(OTHER_IMAGE, "sha256:" + "ef" * 32) is True  # by reference
    assert store.skill_verified("sha256:" + "ef" * 32, "sha256:" + "ef" * 32) is False
    assert store.skill_verified(test_image, "") is False


def _unsigned(key, image):
    return {"name": "reader", "version": "1", "image": image, "manifest": MANIFEST}


def _untrusted(key, image):
    return signed_skill(Ed25519PrivateKey.generate(), "reader", "1", image, MANIFEST).model_dump()


def _tampered(key, image):
    doc = signed_skill(key, "reader", "1", image, MANIFEST).model_dump()
    doc["manifest"] = {"tools": ["file.read", "shell.exec"], "description": "reads a.txt"}
    return doc


def _other_image(key, image):
    """A verified skill exists, but for another image."""
    return signed_skill(key, "reader", "1", OTHER_IMAGE, MANIFEST).model_dump()


def _bad_signature(key, image):
    doc = signed_skill(key, "reader", "1", image, MANIFEST).model_dump()
    sig = doc["signature"]
    doc["signature"] = ("A" if sig[0] != "A" else "B") + sig[1:]
    return doc


@pytest.mark.docker
@pytest.mark.parametrize(
    "make, status",
    [
        (_unsigned, "unsigned"),
        (_untrusted, "bad"),
        (_tampered, "bad"),
        (_bad_signature, "bad"),
        (_other_image, "verified"),
        (None, None),
    ],
    ids=["unsigned", "untrusted-key", "tampered-manifest", "bad-signature", "other-image", "none"],
)
async def test_unverified_skill_is_refused_before_any_container(
    engine, workspace, publisher, test_image, docker_calls, created, make, status
):
    if make is not None:
        info = await _register(engine, make(publisher, test_image))
        assert info["signature_status"] == status
    sid, subject = await _agent(engine, workspace, policy(test_image, read_approval="never"))
    since = int(time.time()) - 1
    with pytest.raises(TalonError) as exc_info:
        await engine.submit(sid, subject, _docker_run(test_image, skill_command(READ_A)))
    err = exc_info.value
    assert err.code == ErrorCode.CONSTRAINT_VIOLATION
    assert "verified signature" in err.message
    assert len(docker_calls) == 1  # the broker was asked, and refused
    assert created(since) == []
    events = _events(engine, err.details["run_id"])
    types = [e["type"] for e in events]
    # the skill's file.read never happened
    assert [e["data"]["tool"] for e in events if e["type"] == "policy.intent.received"] == [
        "docker.run"
    ]
    (broker_denial,) = [
        e["data"] for e in events if e["type"] == "policy.decision" and e["data"]["by"] == "broker"
    ]
    assert broker_denial["decision"] == "DENY"
    assert broker_denial["code"] == "CONSTRAINT_VIOLATION"
    (executed,) = [e["data"] for e in events if e["type"] == "tool.executed"]
    assert executed["status"] == "denied"
    if make is not None and make is not _other_image:
        # a registered (but unverified) skill: its start is closed with no exit code
        assert types.index("skill.started") < types.index("tool.executed")
        assert types.index("tool.executed") < types.index("skill.finished")
        (finished,) = [e["data"] for e in events if e["type"] == "skill.finished"]
        assert finished["exit_code"] is None
    else:
        assert "skill.started" not in types and "skill.finished" not in types


@pytest.mark.docker
async def test_trusted_key_removed_after_registration_refuses(
    engine, workspace, publisher, test_image, docker_calls, created
):
    await _register(
        engine, signed_skill(publisher, "reader", "1", test_image, MANIFEST).model_dump()
    )
    (engine.data.trusted_keys_dir / "publisher.pub").unlink()
    sid, subject = await _agent(engine, workspace, policy(test_image, read_approval="never"))
    since = int(time.time()) - 1
    with pytest.raises(TalonError) as exc_info:
        await engine.submit(sid, subject, _docker_run(test_image, ["true"]))
    assert exc_info.value.code == ErrorCode.CONSTRAINT_VIOLATION
    assert created(since) == []


@pytest.mark.docker
async def test_intent_params_cannot_vouch_for_a_skill(
    engine, workspace, test_image, docker_calls, created
):
    """Nothing in the intent counts as a signature: extra params are refused by name."""
    sid, subject = await _agent(engine, workspace, policy(test_image, read_approval="never"))
    since = int(time.time()) - 1
    intent = ToolIntent(
        tool="docker.run",
        params={"image": test_image, "command": ["true"], "signature": "x", "skill": "reader"},
    )
    with pytest.raises(TalonError) as exc_info:
        await engine.submit(sid, subject, intent)
    assert exc_info.value.code in (ErrorCode.POLICY_DENIED, ErrorCode.CONSTRAINT_VIOLATION)
    assert created(since) == []


# --------------------------------------------------------------------------- follow-through


async def _wait_for_approvals(engine, count: int, timeout: float = 20.0):
    deadline = time.monotonic() + timeout
    while len(await engine.list_approvals()) < count:
        assert time.monotonic() < deadline, "no approval request appeared"
        await asyncio.sleep(0.02)
    return await engine.list_approvals()


@pytest.mark.docker
@pytest.mark.parametrize("allow", [True, False], ids=["approved", "denied"])
async def test_skill_intent_waits_for_approval_agent_intent_does_not(
    engine, workspace, publisher, test_image, docker_calls, allow
):
    await _register(
        engine, signed_skill(publisher, "reader", "1", test_image, MANIFEST).model_dump()
    )
    sid, subject = await _agent(engine, workspace, policy(test_image, read_approval="untrusted"))
    run_id = await engine.begin_run(sid, subject, "skill follow-through")

    # the same intent from the agent itself: no approval under approval "untrusted"
    own = await engine.submit(sid, subject, ToolIntent(**READ_A), run_id)
    assert own["result"]["content"] == "hello"
    assert await engine.list_approvals() == []

    task = asyncio.ensure_future(
        engine.submit(sid, subject, _docker_run(test_image, skill_command(READ_A)), run_id)
    )
    (pending,) = await _wait_for_approvals(engine, 1)
    assert pending.origin == "skill"
    assert pending.tool == "file.read" and pending.params == READ_A["params"]
    assert pending.run_id == run_id and pending.session_id == sid
    await asyncio.sleep(0.05)
    assert not task.done()  # the docker.run waits for its skill's intent

    await engine.decide_approval(pending.approval_id, allow)
    out = await asyncio.wait_for(task, 20)
    assert out["decision"] == "ALLOW" and out["run_id"] == run_id
    assert out["result"]["exit_code"] == 0
    (follow,) = out["result"]["skill_intents"]
    if allow:
        assert follow["ok"] is True
        assert follow["result"]["content"] == "hello"
    else:
        assert follow["ok"] is False
        assert follow["error"]["code"] == "APPROVAL_DENIED"
    await engine.end_run(sid, subject, run_id)

    events = _events(engine, run_id)
    received = [e["data"] for e in events if e["type"] == "policy.intent.received"]
    assert [(r["tool"], r["origin"]) for r in received] == [
        ("file.read", "agent"),
        ("docker.run", "agent"),
        ("file.read", "skill"),
    ]
    (requested,) = [e["data"] for e in events if e["type"] == "approval.requested"]
    assert requested["origin"] == "skill" and requested["intent_id"] == received[2]["intent_id"]
    reads = [
        e["data"]
        for e in events
        if e["type"] == "tool.executed" and e["data"]["tool"] == "file.read"
    ]
    assert len(reads) == (2 if allow else 1)


@pytest.mark.docker
async def test_skill_asking_for_a_disallowed_tool_is_denied_and_the_run_goes_on(
    engine, workspace, publisher, test_image, docker_calls
):
    await _register(
        engine, signed_skill(publisher, "reader", "1", test_image, MANIFEST).model_dump()
    )
    sid, subject = await _agent(engine, workspace, policy(test_image, read_approval="never"))
    run_id = await engine.begin_run(sid, subject, "greedy skill")
    fetch = {"tool": "http.fetch", "params": {"url": "https://example.com/"}}
    shell = {"tool": "shell.exec", "params": {"argv": ["/bin/sh", "-c", "id"]}}
    outside = {"tool": "file.read", "params": {"path": "../../etc/passwd"}}
    command = skill_command(fetch, shell, outside, READ_A)
    out = await engine.submit(sid, subject, _docker_run(test_image, command), run_id)
    f_out, s_out, o_out, r_out = out["result"]["skill_intents"]
    assert f_out["ok"] is False and f_out["error"]["code"] == "POLICY_DENIED"
    assert s_out["ok"] is False and s_out["error"]["code"] == "POLICY_DENIED"
    assert o_out["ok"] is False and o_out["error"]["code"] in ("POLICY_DENIED", "BAD_REQUEST")
    assert r_out["ok"] is True and r_out["result"]["content"] == "hello"

    # the run is still open for the agent
    again = await engine.submit(sid, subject, ToolIntent(**READ_A), run_id)
    assert again["result"]["content"] == "hello"
    assert (await engine.end_run(sid, subject, run_id))["status"] == "ok"

    events = _events(engine, run_id)
    skill_received = {
        e["data"]["intent_id"]: e["data"]["tool"]
        for e in events
        if e["type"] == "policy.intent.received" and e["data"]["origin"] == "skill"
    }
    denied = [
        e["data"]
        for e in events
        if e["type"] == "policy.decision"
        and e["data"]["decision"] == "DENY"
        and e["data"]["intent_id"] in skill_received
    ]
    assert {skill_received[d["intent_id"]] for d in denied} >= {"http.fetch", "shell.exec"}
    assert all(d["by"] == "policy" for d in denied)
    executed_tools = [e["data"]["tool"] for e in events if e["type"] == "tool.executed"]
    assert "http.fetch" not in executed_tools and "shell.exec" not in executed_tools
    assert (await engine.verify_audit()).valid


@pytest.mark.docker
async def test_skill_events_in_audit_order_and_the_log_verifies(
    engine, workspace, publisher, test_image, docker_calls
):
    await _register(
        engine, signed_skill(publisher, "reader", "1", test_image, MANIFEST).model_dump()
    )
    sid, subject = await _agent(engine, workspace, policy(test_image, read_approval="untrusted"))
    task = asyncio.ensure_future(
        engine.submit(sid, subject, _docker_run(test_image, skill_command(READ_A)))
    )
    (pending,) = await _wait_for_approvals(engine, 1)
    await engine.decide_approval(pending.approval_id, True)
    out = await asyncio.wait_for(task, 20)
    run_id = out["run_id"]

    events = _events(engine, run_id)
    seqs = [e["seq"] for e in events]
    assert seqs == sorted(seqs)
    outline = []
    for e in events:
        d = e["data"]
        if e["type"] == "policy.intent.received":
            outline.append((e["type"], d["tool"], d["origin"]))
        elif e["type"] in ("policy.decision", "tool.executed", "capability.issued"):
            outline.append((e["type"], d["tool"]))
        else:
            outline.append((e["type"],))
    assert outline == [
        ("run.started",),
        ("policy.intent.received", "docker.run", "agent"),
        ("policy.decision", "docker.run"),
        ("capability.issued", "docker.run"),
        ("skill.started",),
        ("tool.executed", "docker.run"),
        ("skill.finished",),
        ("policy.intent.received", "file.read", "skill"),
        ("policy.decision", "file.read"),  # REQUIRE_APPROVAL by policy
        ("approval.requested",),
        ("approval.decided",),
        ("policy.decision", "file.read"),  # ALLOW by operator
        ("capability.issued", "file.read"),
        ("tool.executed", "file.read"),
        ("run.finished",),
    ]
    by_type = {}
    for e in events:
        by_type.setdefault(e["type"], []).append(e["data"])
    docker_intent = by_type["policy.intent.received"][0]["intent_id"]
    started, finished = by_type["skill.started"][0], by_type["skill.finished"][0]
    for d in (started, finished):
        assert d["skill"] == "reader" and d["version"] == "1" and d["image"] == test_image
        assert d["intent_id"] == docker_intent
    assert finished["exit_code"] == 0
    decisions = by_type["policy.decision"]
    assert [(d["decision"], d["by"]) for d in decisions] == [
        ("ALLOW", "policy"),
        ("REQUIRE_APPROVAL", "policy"),
        ("ALLOW", "operator"),
    ]
    assert by_type["tool.executed"][1]["output"]["content"] == "hello"

    report = await engine.verify_audit()
    assert report.valid, report.message
