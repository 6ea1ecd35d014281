"""Durable engine state in `<data>/state.json` (tinydb), DESIGN section 7.

Only small, human-scale documents live here: sessions, each session's policy with the history
of its changes, registered skills, hashes of agent keys (never the keys) and the names of
secrets. Nothing per intent or per event: runs and steps are a projection of the audit log.

Every write replaces the file atomically (temp, fsync, rename, fsync dir) with mode 0600, so a
crash leaves the old or the new state, never half of one. A file that does not parse stops the
engine with an error naming it; state is never silently reset.
"""

from __future__ import annotations

import hmac
import json
import os
import secrets
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError
from tinydb import Query, TinyDB
from tinydb.storages import Storage

from ..core.canon import canonical, jsonable, sha256_tag
from ..core.ids import new_id, now_iso
from ..core.paths import write_private
from ..errors import BadRequest, NotFound, TalonError
from ..policy.models import Policy, Session, Skill, format_validation_error, parse_policy
from .secrets import check_name

SCHEMA_VERSION = 1
AGENT_KEY_PREFIX = "tln_ag_"
MAX_LABEL_CHARS = 200

_TABLES = (
    "meta",
    "sessions",
    "policies",
    "agent_keys",
    "skills",
    "secret_refs",
    "mcp_servers",
    "mcp_pins",
)


class StateCorrupt(TalonError):
    """state.json cannot be read as Talon state; the message names the file and the problem."""


class SessionClosed(BadRequest):
    pass


class PolicyChange(BaseModel):
    """One entry of a session's policy history (the first is the policy it was created with)."""

    model_config = ConfigDict(defer_build=True)  # built on first use (as policy.models)

    seq: int
    session_id: str
    policy: Policy
    sha256: str
    previous_sha256: str | None
    ts: str
    actor: str
    reason: str


def policy_sha256(policy: Policy) -> str:
    """`"sha256:" + hex` of the canonical policy document (floats written as their decimal
    string, since canonical JSON has no floats); what `policy.updated` events carry."""
    return sha256_tag(canonical(jsonable(policy.to_doc())))


def agent_key_sha256(key: str) -> str:
    """Agent keys are 32 random bytes, so a plain sha256 is a sufficient one-way hash."""
    return sha256_tag(key.encode("utf-8"))


# --------------------------------------------------------------------------- storage


class AtomicJSONStorage(Storage):
    """tinydb storage: read the whole file, replace it atomically on write (mode 0600)."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)

    def read(self) -> dict[str, dict[str, Any]] | None:
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise StateCorrupt(f"cannot read state file {self.path}: {exc}") from exc
        if not raw.strip():
            raise StateCorrupt(
                f"state file {self.path} is empty; restore it from a backup or move it away "
                "to start with empty state (it was not reset)"
            )
        try:
            data = json.loads(raw)
        except (ValueError, UnicodeDecodeError) as exc:
            raise StateCorrupt(
                f"state file {self.path} is not valid JSON ({exc}); restore it from a backup or "
                "move it away to start with empty state (it was not reset)"
            ) from exc
        if not isinstance(data, dict) or not all(
            isinstance(t, dict) and all(isinstance(d, dict) for d in t.values())
            for t in data.values()
        ):
            raise StateCorrupt(
                f"state file {self.path} does not hold tinydb tables (an object of objects of "
                "documents); restore it from a backup or move it away (it was not reset)"
            )
        return data

    def write(self, data: dict[str, dict[str, Any]]) -> None:
        body = json.dumps(data, ensure_ascii=False, sort_keys=True, indent=1)
        write_private(self.path, body.encode("utf-8") + b"\n")

    def close(self) -> None:
        pass


# --------------------------------------------------------------------------- store


class StateStore:
    """Sessions, policies and their history, skills, agent key hashes and secret names."""

    def __init__(
        self, path: str | os.PathLike[str], *, workspaces_dir: str | os.PathLike[str] | None = None
    ) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.workspaces_dir = (
            Path(workspaces_dir) if workspaces_dir is not None else self.path.parent / "workspaces"
        )
        self._lock = threading.RLock()
        self._db = TinyDB(self.path, storage=AtomicJSONStorage)
        with self._lock:
            self._check_schema()

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def _check_schema(self) -> None:
        data = self._db.storage.read()
        meta = self._db.table("meta")
        if data is None:
            meta.insert({"schema": SCHEMA_VERSION})
            return
        unknown = sorted(set(data) - set(_TABLES))
        if unknown:
            raise StateCorrupt(f"state file {self.path} holds unknown tables {unknown}")
        docs = meta.all()
        if docs and docs[0].get("schema") != SCHEMA_VERSION:
            raise StateCorrupt(
                f"state file {self.path} has schema {docs[0].get('schema')!r}; "
                f"this Talon reads schema {SCHEMA_VERSION}"
            )
        self._validate_documents()
        if not docs:
            meta.insert({"schema": SCHEMA_VERSION})

    def _validate_documents(self) -> None:
        """Parse every stored document once at open so damage is reported up front."""
        try:
            for doc in self._db.table("sessions").all():
                Session.model_validate(dict(doc))
            for doc in self._db.table("policies").all():
                parse_policy(doc["policy"])
            for doc in self._db.table("skills").all():
                Skill.model_validate(dict(doc))
        except (ValidationError, KeyError, TalonError) as exc:
            detail = format_validation_error(exc) if isinstance(exc, ValidationError) else str(exc)
            raise StateCorrupt(
                f"state file {self.path} holds a document that does not validate: {detail}"
            ) from exc

    # ----------------------------------------------------------------------- sessions

    def create_session(
        self,
        label: str,
        workspace: str | os.PathLike[str] | None = None,
        policy: Policy | Mapping[str, Any] | None = None,
        *,
        actor: str = "operator",
    ) -> tuple[Session, str]:
        """A new open session and its agent key (returned once, only its hash is stored).
        Without `workspace` the session gets `<workspaces_dir>/<session_id>` (0700)."""
        if not isinstance(label, str) or not label.strip():
            raise BadRequest("label must be a non-empty string")
        label = label.strip()
        if len(label) > MAX_LABEL_CHARS:
            raise BadRequest(f"label must be at most {MAX_LABEL_CHARS} characters")
        pol = _as_policy(policy)
        with self._lock:
            session_id = new_id("sess")
            ws = self._workspace(session_id, workspace)
            session = Session(id=session_id, label=label, workspace=str(ws), created=now_iso())
            self._db.table("sessions").insert(session.model_dump())
            self._append_policy(session_id, pol, actor=actor, reason="session created")
            key = self._new_agent_key(session_id)
            return session, key

    def _workspace(self, session_id: str, workspace: str | os.PathLike[str] | None) -> Path:
        if workspace is None or workspace == "":
            ws = self.workspaces_dir / session_id
            self.workspaces_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
            ws.mkdir(mode=0o700)
            os.chmod(ws, 0o700)
            return ws
        raw = os.fspath(workspace)
        if not isinstance(raw, str) or "\x00" in raw:
            raise BadRequest("workspace must be a path string")
        if not os.path.isabs(raw):
            raise BadRequest(f"workspace {raw!r} must be an absolute path")
        path = Path(raw)
        if not path.is_dir():
            what = "does not exist" if not path.exists() else "is not a directory"
            raise BadRequest(f"workspace {raw!r} {what}")
        return path.resolve(strict=True)

    def get_session(self, session_id: str) -> Session:
        with self._lock:
            doc = self._db.table("sessions").get(Query().id == session_id)
        if doc is None:
            raise NotFound(f"no session {session_id!r}", details={"session_id": session_id})
        return Session.model_validate(dict(doc))

    def list_sessions(self, status: str | None = None) -> list[Session]:
        with self._lock:
            docs = self._db.table("sessions").all()
        sessions = [Session.model_validate(dict(d)) for d in docs]
        if status is not None:
            sessions = [s for s in sessions if s.status == status]
        return sorted(sessions, key=lambda s: (s.created, s.id))

    def close_session(self, session_id: str) -> Session:
        """Close the session and revoke its agent key. Closing a closed session is a no-op."""
        with self._lock:
            session = self.get_session(session_id)
            if session.status == "closed":
                return session
            closed = session.model_copy(update={"status": "closed", "closed": now_iso()})
            self._db.table("sessions").update(
                {"status": "closed", "closed": closed.closed}, Query().id == session_id
            )
            self._revoke_agent_keys(session_id)
            return closed

    def _open_session(self, session_id: str) -> Session:
        session = self.get_session(session_id)
        if session.status != "open":
            raise SessionClosed(
                f"session {session_id!r} is closed", details={"session_id": session_id}
            )
        return session

    # ----------------------------------------------------------------------- policies

    def set_policy(
        self,
        session_id: str,
        policy: Policy | Mapping[str, Any],
        actor: str = "operator",
        reason: str = "",
    ) -> Policy:
        """Validate and store a session's new policy, appending it to the history."""
        if not isinstance(actor, str) or not actor:
            raise BadRequest("actor must be a non-empty string")
        pol = _as_policy(policy)
        with self._lock:
            self._open_session(session_id)
            self._append_policy(session_id, pol, actor=actor, reason=reason)
        return pol

    def _append_policy(self, session_id: str, policy: Policy, *, actor: str, reason: str) -> None:
        table = self._db.table("policies")
        previous = table.search(Query().session_id == session_id)
        last = max(previous, key=lambda d: d["seq"]) if previous else None
        table.insert(
            {
                "session_id": session_id,
                "seq": last["seq"] + 1 if last else 0,
                "policy": policy.to_doc(),
                "sha256": policy_sha256(policy),
                "previous_sha256": last["sha256"] if last else None,
                "ts": now_iso(),
                "actor": actor,
                "reason": reason,
            }
        )

    def policy_history(self, session_id: str) -> list[PolicyChange]:
        """Every policy the session has had, oldest first."""
        with self._lock:
            self.get_session(session_id)
            docs = self._db.table("policies").search(Query().session_id == session_id)
        docs.sort(key=lambda d: d["seq"])
        return [
            PolicyChange.model_validate({**d, "policy": parse_policy(d["policy"])}) for d in docs
        ]

    def get_policy(self, session_id: str) -> Policy:
        return self.last_policy_change(session_id).policy

    def last_policy_change(self, session_id: str) -> PolicyChange:
        history = self.policy_history(session_id)
        if not history:
            raise StateCorrupt(f"state file {self.path}: session {session_id!r} has no policy")
        return history[-1]

    # ----------------------------------------------------------------------- agent keys

    def issue_agent_key(self, session_id: str) -> str:
        """A new agent key for the session; the previous one stops working."""
        with self._lock:
            self._open_session(session_id)
            self._revoke_agent_keys(session_id)
            return self._new_agent_key(session_id)

    def _new_agent_key(self, session_id: str) -> str:
        key = AGENT_KEY_PREFIX + secrets.token_urlsafe(32)
        self._db.table("agent_keys").insert(
            {
                "session_id": session_id,
                "key_sha256": agent_key_sha256(key),
                "created": now_iso(),
                "revoked": None,
            }
        )
        return key

    def _revoke_agent_keys(self, session_id: str) -> None:
        q = Query()
        self._db.table("agent_keys").update(
            {"revoked": now_iso()},
            (q.session_id == session_id) & (q.revoked == None),  # noqa: E711
        )

    def session_for_agent_key(self, key: str) -> Session | None:
        """The open session an agent key belongs to, or None (unknown, re-issued, closed)."""
        if not isinstance(key, str) or not key.startswith(AGENT_KEY_PREFIX) or len(key) > 256:
            return None
        digest = agent_key_sha256(key)
        match: str | None = None
        with self._lock:
            docs = self._db.table("agent_keys").all()
            for doc in docs:
                # compare against every live hash, in constant time, without stopping early
                same = hmac.compare_digest(doc["key_sha256"], digest)
                if same and doc["revoked"] is None:
                    match = doc["session_id"]
            if match is None:
                return None
            session = self.get_session(match)
        return session if session.status == "open" else None

    # ----------------------------------------------------------------------- skills

    def add_skill(self, skill: Skill | Mapping[str, Any]) -> Skill:
        """Register (or replace) a skill by name and version."""
        try:
            sk = skill if isinstance(skill, Skill) else Skill.model_validate(dict(skill))
        except ValidationError as exc:
            raise BadRequest(f"invalid skill: {format_validation_error(exc)}") from exc
        if not sk.name.strip() or not sk.version.strip() or not sk.image.strip():
            raise BadRequest("a skill needs a non-empty name, version and image")
        if not sk.registered:
            sk = sk.model_copy(update={"registered": now_iso()})
        try:
            canonical(jsonable(sk.model_dump()))
        except ValueError as exc:
            raise BadRequest(f"invalid skill: {exc}") from exc
        q = Query()
        with self._lock:
            self._db.table("skills").upsert(
                sk.model_dump(), (q.name == sk.name) & (q.version == sk.version)
            )
        return sk

    def list_skills(self) -> list[Skill]:
        with self._lock:
            docs = self._db.table("skills").all()
        return sorted(
            (Skill.model_validate(dict(d)) for d in docs),
            key=lambda s: (s.name, s.registered, s.version),
        )

    def get_skill(self, name: str, version: str | None = None) -> Skill:
        """The skill `name` at `version`, or its most recently registered version."""
        found = [s for s in self.list_skills() if s.name == name]
        if version is not None:
            found = [s for s in found if s.version == version]
        if not found:
            what = f"{name!r}" + (f" version {version!r}" if version is not None else "")
            raise NotFound(f"no skill {what} is registered", details={"skill": name})
        return found[-1]

    def remove_skill(self, name: str, version: str) -> None:
        q = Query()
        with self._lock:
            removed = self._db.table("skills").remove((q.name == name) & (q.version == version))
        if not removed:
            raise NotFound(f"no skill {name!r} version {version!r} is registered")

    # ----------------------------------------------------------------------- secret names

    # ----------------------------------------------------------------------- mcp servers

    def put_mcp_server(self, doc: Mapping[str, Any]) -> None:
        """Insert or replace a registered MCP server (`name`, `command`, `env`, ...)."""
        with self._lock:
            self._db.table("mcp_servers").upsert(dict(doc), Query().name == doc["name"])

    def list_mcp_servers(self) -> list[dict[str, Any]]:
        with self._lock:
            return sorted(
                (dict(d) for d in self._db.table("mcp_servers").all()),
                key=lambda d: str(d.get("name")),
            )

    def remove_mcp_server(self, name: str) -> bool:
        """Forget the server and its pins; False when no such server."""
        q = Query()
        with self._lock:
            removed = self._db.table("mcp_servers").remove(q.name == name)
            self._db.table("mcp_pins").remove(q.server == name)
        return bool(removed)

    def mcp_pins(self, server: str | None = None) -> list[dict[str, Any]]:
        q = Query()
        with self._lock:
            table = self._db.table("mcp_pins")
            docs = table.all() if server is None else table.search(q.server == server)
        return [dict(d) for d in docs]

    def put_mcp_pin(self, doc: Mapping[str, Any]) -> None:
        """Insert or replace the pin of (`server`, `tool`)."""
        q = Query()
        with self._lock:
            self._db.table("mcp_pins").upsert(
                dict(doc), (q.server == doc["server"]) & (q.tool == doc["tool"])
            )

    def add_secret_ref(self, name: str) -> None:
        """Record that a secret called `name` exists (its value lives in SecretStore)."""
        check_name(name)
        q = Query()
        with self._lock:
            table = self._db.table("secret_refs")
            if not table.contains(q.name == name):
                table.insert({"name": name, "created": now_iso()})

    def list_secret_refs(self) -> list[str]:
        with self._lock:
            return sorted(d["name"] for d in self._db.table("secret_refs").all())

    def remove_secret_ref(self, name: str) -> None:
        with self._lock:
            removed = self._db.table("secret_refs").remove(Query().name == name)
        if not removed:
            raise NotFound(f"no secret {name!r} is recorded", details={"name": name})


def _as_policy(policy: Policy | Mapping[str, Any] | None) -> Policy:
    if policy is None:
        return Policy()
    if isinstance(policy, Policy):
        return parse_policy(policy.to_doc())
    return parse_policy(dict(policy))
