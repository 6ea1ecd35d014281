"""StateStore: sessions, policies with history, agent key hashes, skills, secret names;
persistence across reopen, corrupt files, workspaces, thread safety."""

from __future__ import annotations

import json
import os
import stat
import threading

import pytest

from talon_tui.engine.errors import BadRequest, NotFound, PolicyInvalid
from talon_tui.engine.policy.models import Policy, Skill
from talon_tui.engine.runtime.state import (
    AGENT_KEY_PREFIX,
    SessionClosed,
    StateCorrupt,
    StateStore,
    agent_key_sha256,
    policy_sha256,
)

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
DOCKER_POLICY = {
    "version": 1,
    "overrides": [
        {
            "tool": "docker.run",
            "constraints": {"images": ["sha256:" + "a" * 64], "cpus": 0.5},
        }
    ],
}


@pytest.fixture
def path(tmp_path):
    return tmp_path / "data" / "state.json"


@pytest.fixture
def store(path):
    s = StateStore(path)
    yield s
    s.close()


# --------------------------------------------------------------------------- sessions


def test_create_session_defaults(store, path):
    session, key = store.create_session("demo")
    assert session.id.startswith("sess_") and session.label == "demo"
    assert session.status == "open" and session.closed is None and session.created
    ws = path.parent / "workspaces" / session.id
    assert session.workspace == str(ws)
    assert ws.is_dir() and stat.S_IMODE(ws.stat().st_mode) == 0o700
    assert key.startswith(AGENT_KEY_PREFIX) and len(key) >= len(AGENT_KEY_PREFIX) + 43
    assert store.get_policy(session.id) == Policy()
    assert store.get_session(session.id) == session
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_agent_key_is_never_stored(store, path):
    _session, key = store.create_session("demo")
    text = path.read_text()
    assert key not in text
    assert key[len(AGENT_KEY_PREFIX) :] not in text
    assert agent_key_sha256(key) in text


def test_given_workspace_must_be_an_absolute_existing_directory(store, tmp_path):
    ws = tmp_path / "ws"
    ws.mkdir()
    session, _ = store.create_session("w", workspace=str(ws))
    assert session.workspace == str(ws.resolve())
    with pytest.raises(BadRequest, match="must be an absolute path"):
        store.create_session("w", workspace="relative/dir")
    with pytest.raises(BadRequest, match="does not exist"):
        store.create_session("w", workspace=str(tmp_path / "missing"))
    f = tmp_path / "file"
    f.write_text("x")
    with pytest.raises(BadRequest, match="is not a directory"):
        store.create_session("w", workspace=str(f))
    assert len(store.list_sessions()) == 1


def test_workspace_symlink_is_resolved(store, tmp_path):
    real = tmp_path / "real"
    real.mkdir()
    link = tmp_path / "link"
    link.symlink_to(real)
    session, _ = store.create_session("w", workspace=str(link))
    assert session.workspace == str(real.resolve())


@pytest.mark.parametrize("label", ["", "   ", None, "x" * 201])
def test_bad_labels_refused(store, label):
    with pytest.raises(BadRequest, match="label"):
        store.create_session(label)
    assert store.list_sessions() == []


def test_invalid_initial_policy_creates_nothing(store, path):
    with pytest.raises(PolicyInvalid, match="needs constraints"):
        store.create_session("x", policy={"version": 1, "overrides": [{"tool": "file.read"}]})
    assert store.list_sessions() == []
    assert not (path.parent / "workspaces").exists() or not any(
        (path.parent / "workspaces").iterdir()
    )


def test_list_get_close(store):
    a, _ = store.create_session("a")
    b, _ = store.create_session("b")
    assert [s.id for s in store.list_sessions()] == [a.id, b.id]
    closed = store.close_session(a.id)
    assert closed.status == "closed" and closed.closed
    assert store.get_session(a.id) == closed
    assert store.close_session(a.id) == closed
    assert [s.id for s in store.list_sessions(status="open")] == [b.id]
    assert [s.id for s in store.list_sessions(status="closed")] == [a.id]
    with pytest.raises(NotFound, match="no session 'sess_nope'"):
        store.get_session("sess_nope")
    with pytest.raises(NotFound):
        store.close_session("sess_nope")


# --------------------------------------------------------------------------- policies


def test_policy_set_get_and_history(store):
    session, _ = store.create_session("p", policy=READ_POLICY)
    first = store.get_policy(session.id)
    assert first.overrides[0].tool == "file.read"
    new = store.set_policy(session.id, DOCKER_POLICY, actor="cli", reason="needs docker")
    assert isinstance(new, Policy) and store.get_policy(session.id) == new
    assert store.get_policy(session.id).overrides[0].constraints.cpus == 0.5
    history = store.policy_history(session.id)
    assert [h.seq for h in history] == [0, 1]
    assert [h.actor for h in history] == ["operator", "cli"]
    assert [h.reason for h in history] == ["session created", "needs docker"]
    assert history[0].sha256 == policy_sha256(first)
    assert history[1].previous_sha256 == history[0].sha256
    assert history[0].previous_sha256 is None
    assert history[1].sha256.startswith("sha256:") and history[1].sha256 != history[0].sha256
    assert store.last_policy_change(session.id) == history[1]


def test_policy_sha256_is_stable_and_content_based():
    a = Policy.model_validate(DOCKER_POLICY)
    b = Policy.model_validate(json.loads(json.dumps(DOCKER_POLICY)))
    assert policy_sha256(a) == policy_sha256(b)
    assert policy_sha256(a) != policy_sha256(Policy())


def test_invalid_policy_refused_and_history_unchanged(store):
    session, _ = store.create_session("p")
    with pytest.raises(PolicyInvalid, match="domains"):
        store.set_policy(
            session.id,
            {"version": 1, "overrides": [{"tool": "http.fetch", "constraints": {"domains": []}}]},
            actor="operator",
            reason="bad",
        )
    assert len(store.policy_history(session.id)) == 1


def test_policy_on_closed_or_unknown_session_refused(store):
    session, _ = store.create_session("p")
    store.close_session(session.id)
    with pytest.raises(SessionClosed, match="closed"):
        store.set_policy(session.id, READ_POLICY, actor="operator", reason="")
    with pytest.raises(NotFound):
        store.set_policy("sess_nope", READ_POLICY, actor="operator", reason="")
    with pytest.raises(NotFound):
        store.get_policy("sess_nope")


# --------------------------------------------------------------------------- agent keys


def test_agent_key_lookup_and_reissue(store):
    a, key_a = store.create_session("a")
    b, key_b = store.create_session("b")
    assert store.session_for_agent_key(key_a) == a
    assert store.session_for_agent_key(key_b) == b
    new_a = store.issue_agent_key(a.id)
    assert new_a != key_a
    assert store.session_for_agent_key(key_a) is None
    assert store.session_for_agent_key(new_a) == a
    assert store.session_for_agent_key(key_b) == b


@pytest.mark.parametrize("bad", ["", "tln_ag_", "tln_ag_x", "nope", None, 5, "tln_ag_" + "a" * 500])
def test_unknown_agent_keys(store, bad):
    store.create_session("a")
    assert store.session_for_agent_key(bad) is None


def test_closing_a_session_revokes_its_key(store):
    a, key = store.create_session("a")
    store.close_session(a.id)
    assert store.session_for_agent_key(key) is None
    with pytest.raises(SessionClosed):
        store.issue_agent_key(a.id)


def test_agent_key_hash_alone_does_not_authenticate(store):
    _a, key = store.create_session("a")
    assert store.session_for_agent_key(agent_key_sha256(key)) is None


# --------------------------------------------------------------------------- skills


def skill(**kw):
    base = {
        "name": "summarize",
        "version": "1.0.0",
        "image": "sha256:" + "b" * 64,
        "manifest": {"tools": ["http.fetch"]},
    }
    base.update(kw)
    return base


def test_skills_add_list_get_replace(store):
    s1 = store.add_skill(skill())
    assert isinstance(s1, Skill) and s1.registered
    s2 = store.add_skill(Skill(**skill(version="1.1.0", signature="sig", key_id="sha256:k")))
    store.add_skill(skill(name="alpha"))
    assert [(s.name, s.version) for s in store.list_skills()] == [
        ("alpha", "1.0.0"),
        ("summarize", "1.0.0"),
        ("summarize", "1.1.0"),
    ]
    assert store.get_skill("summarize") == s2
    assert store.get_skill("summarize", "1.0.0") == s1
    replaced = store.add_skill(skill(manifest={"tools": []}))
    assert store.get_skill("summarize", "1.0.0").manifest == {"tools": []}
    assert replaced.manifest == {"tools": []}
    assert len(store.list_skills()) == 3
    store.remove_skill("alpha", "1.0.0")
    with pytest.raises(NotFound, match="no skill 'alpha'"):
        store.get_skill("alpha")
    with pytest.raises(NotFound, match="version '9'"):
        store.get_skill("summarize", "9")


@pytest.mark.parametrize(
    "bad",
    [{"name": ""}, {"image": " "}, {"extra": 1}, {"manifest": "x"}, {"manifest": {"n": 2**60}}],
)
def test_bad_skills_refused(store, bad):
    with pytest.raises(BadRequest):
        store.add_skill(skill(**bad))
    assert store.list_skills() == []


# --------------------------------------------------------------------------- secret names


def test_secret_refs(store, path):
    store.add_secret_ref("api_token")
    store.add_secret_ref("api_token")
    store.add_secret_ref("b.key")
    assert store.list_secret_refs() == ["api_token", "b.key"]
    store.remove_secret_ref("b.key")
    assert store.list_secret_refs() == ["api_token"]
    with pytest.raises(NotFound):
        store.remove_secret_ref("b.key")
    with pytest.raises(BadRequest, match="invalid"):
        store.add_secret_ref("../etc")


# --------------------------------------------------------------------------- persistence


def test_state_survives_reopen(path, tmp_path):
    s = StateStore(path)
    a, key = s.create_session("a", policy=READ_POLICY)
    s.set_policy(a.id, DOCKER_POLICY, actor="cli", reason="r")
    b, _ = s.create_session("b")
    s.close_session(b.id)
    s.add_skill(skill())
    s.add_secret_ref("tok")
    history = s.policy_history(a.id)
    s.close()

    r = StateStore(path)
    assert r.get_session(a.id) == a
    assert r.get_session(b.id).status == "closed"
    assert r.session_for_agent_key(key) == a
    assert r.get_policy(a.id) == Policy.model_validate(DOCKER_POLICY)
    assert r.policy_history(a.id) == history
    assert r.get_skill("summarize").image == "sha256:" + "b" * 64
    assert r.list_secret_refs() == ["tok"]
    c, _ = r.create_session("c")
    assert [s.id for s in r.list_sessions()] == [a.id, b.id, c.id]
    r.close()


@pytest.mark.parametrize(
    "content, match",
    [
        (b"{not json", "not valid JSON"),
        (b"", "is empty"),
        (b"[1, 2]", "tinydb tables"),
        (b'{"sessions": {"1": 5}}', "tinydb tables"),
        (b'{"bogus": {}}', "unknown tables"),
        (b'{"meta": {"1": {"schema": 99}}}', "schema 99"),
        (b'{"sessions": {"1": {"id": "s"}}}', "does not validate"),
        (b"\xff\xfe garbage", "not valid JSON"),
    ],
)
def test_corrupt_state_file_is_reported_not_reset(path, content, match):
    path.parent.mkdir(parents=True)
    path.write_bytes(content)
    with pytest.raises(StateCorrupt, match=match) as info:
        StateStore(path)
    assert str(path) in info.value.message
    assert path.read_bytes() == content


def test_no_temp_files_left_behind(store, path):
    for i in range(5):
        store.create_session(f"s{i}")
    assert sorted(p.name for p in path.parent.iterdir()) == ["state.json", "workspaces"]


# --------------------------------------------------------------------------- threads


def test_concurrent_writers_lose_nothing(store, path):
    n_threads, per_thread = 4, 5
    barrier = threading.Barrier(n_threads)
    errors: list[BaseException] = []
    session, _ = store.create_session("shared")

    def work(t: int) -> None:
        barrier.wait()
        try:
            for i in range(per_thread):
                store.create_session(f"t{t}-{i}")
                store.set_policy(session.id, READ_POLICY, actor="operator", reason=f"{t}-{i}")
                store.add_secret_ref(f"s{t}_{i}")
        except BaseException as exc:  # collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(t,)) for t in range(n_threads)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert errors == []
    assert len(store.list_sessions()) == 1 + n_threads * per_thread
    history = store.policy_history(session.id)
    assert [h.seq for h in history] == list(range(1 + n_threads * per_thread))
    assert len(store.list_secret_refs()) == n_threads * per_thread
    reopened = StateStore(path)
    assert len(reopened.list_sessions()) == 1 + n_threads * per_thread
    reopened.close()
    assert not [p for p in os.listdir(path.parent) if p.startswith(".")]
