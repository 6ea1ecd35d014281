"""What the Engine holds open on a data directory: state, audit log, keys, tokens, broker.

A thin adapter over the modules that own each part (state.StateStore, audit.AuditLog,
tokens, secrets, broker, replay), with the in-memory caches the intent path needs so that no
intent touches tinydb: open sessions, their parsed policies, the secret redactor, skills by
image.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import functools
import logging
import os
import queue
import secrets as pysecrets
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any

from ..api import (
    ReplayResult,
    RunComparison,
    SessionTimeline,
    SimulationChange,
    SkillInfo,
    VerifyReport,
)
from ..audit import index as audit_index
from ..audit import replay as replay_mod
from ..audit import session_replay
from ..audit.errors import AuditClosed
from ..audit.log import AuditLog, verify_log
from ..broker.broker import Broker
from ..core import keys
from ..core.paths import DataDir, write_private
from ..core.redact import SecretRedaction
from ..errors import BadRequest, NotFound, TalonError
from ..policy.checks import image_is_pinned
from ..policy.models import Policy, Session, Skill, ToolIntent
from .mcp import McpRegistry
from .secrets import SecretStore
from .skills import SignatureStatus, load_trusted_keys, verify_skill
from .state import StateStore
from .tokens import (
    CapabilityIssuer,
    CapabilityVerifier,
    JtiCache,
    RevocationList,
    TokenMacKey,
)

log = logging.getLogger(__name__)

#: tools whose broker work is small local file I/O: run inline, no thread hop
INLINE_TOOLS = frozenset({"file.read"})


class EngineLocked(TalonError):
    """Another engine already runs on this data directory."""


class EngineStore:
    def __init__(self, data: DataDir, *, docker_runtime: str | None = None) -> None:
        self.data = data
        self.docker_runtime = docker_runtime
        self._sessions: dict[str, Session] = {}
        self._policies: dict[str, Policy] = {}
        self._skills_by_image: dict[str, Skill] = {}
        self._skills: tuple[Skill, ...] = ()
        self.redactor: SecretRedaction = SecretRedaction({})
        self._lock_fd: int | None = None

    # ------------------------------------------------------------------ engine.lock, admin token

    def lock(self) -> None:
        """Take `engine.lock` (flock): one engine per data directory."""
        fd = os.open(self.data.lock_path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            try:
                holder = os.read(fd, 64).decode("ascii", "replace").strip() or "?"
            finally:
                os.close(fd)
            raise EngineLocked(
                f"another Talon engine (pid {holder}) is already running on {self.data.root}; "
                "stop it first, or attach to it as an admin client",
                details={"data_dir": str(self.data.root), "pid": holder},
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        os.fsync(fd)
        self._lock_fd = fd

    def unlock(self) -> None:
        if self._lock_fd is not None:
            os.ftruncate(self._lock_fd, 0)
            fcntl.flock(self._lock_fd, fcntl.LOCK_UN)
            os.close(self._lock_fd)
            self._lock_fd = None

    def admin_token(self) -> str:
        """TALON_ADMIN_TOKEN, else `<data>/admin.token` (0600), made on first start."""
        env = os.environ.get("TALON_ADMIN_TOKEN")
        if env and env.strip():
            return env.strip()
        path = self.data.admin_token_path
        if path.exists():
            if path.stat().st_mode & 0o077:
                os.chmod(path, 0o600)
            return path.read_text(encoding="ascii").strip()
        token = "tln_adm_" + pysecrets.token_urlsafe(32)
        write_private(path, (token + "\n").encode("ascii"))
        return token

    # ------------------------------------------------------------------ open / close

    def open(self, checkpoint_every: int) -> None:
        """Blocking: load keys and state, open (and recover) the audit log."""
        self.audit_priv, self.audit_pub = keys.load_or_create(self.data.keys_dir, "audit")
        self.state = StateStore(self.data.state_path, workspaces_dir=self.data.workspaces_dir)
        self.secrets = SecretStore(self.data.secrets_dir)
        self.revocations = RevocationList()
        # issuer and broker share this process and the token never leaves it: HMAC-SHA256
        # under a key made now and kept only in memory (SECURITY.md, "In-process token MAC")
        token_key = TokenMacKey.generate()
        self.issuer = CapabilityIssuer(token_key)
        self.verifier = CapabilityVerifier(
            token_key,
            replay_cache=JtiCache(),
            revocations=self.revocations,
            min_iat=int(time.time()) - 1,
        )
        self.mcp = McpRegistry(self.state, self.secrets)
        self.broker = Broker(
            self.verifier,
            secrets=self.secrets,
            docker_runtime=self.docker_runtime,
            skill_verifier=self.skill_verified,
            data_dir=str(self.data.root),
            mcp_host=self.mcp,
        )
        for s in self.state.list_sessions():
            self._sessions[s.id] = s
            self._policies[s.id] = self.state.get_policy(s.id)
        self._reload_skills()
        self.reload_secrets()
        self.audit = AuditLog(
            self.data.audit_dir, self.audit_priv, checkpoint_every=checkpoint_every
        )
        self.audit.open()
        # the index is derived and untrusted: check it (MAC, then the log's size and last
        # hash) before anything reads through it, and rebuild it from the log when it fails
        self.index_key = audit_index.index_key(self.audit_priv)
        self.index_status = audit_index.AuditIndex.load(
            self.data.audit_dir, key=self.index_key
        ).status
        self.index_rebuilt(self.index_status)
        #: the index the session replay reads through, kept between its windows and jumps
        self.replay_index = audit_index.IndexCache(self.data.audit_dir, key=self.index_key)
        self.audit.sync()

    def index_rebuilt(self, status: str) -> None:
        """Record a rebuild of the audit index for a reason other than its absence (an edited
        or stale index, or an event that did not check out): the signed log keeps the evidence
        that readers' rebuilds erase from `index.bin`."""
        if status.startswith("rebuilt: ") and status != "rebuilt: absent":
            log.warning("audit/index.bin %s", status)
            try:
                self.audit.append("audit.index_rebuilt", data={"reason": status[9:][:500]})
            except AuditClosed:  # a read racing shutdown: the warning above is all there is
                return

    def close(self) -> None:
        broker = getattr(self, "broker", None)
        if broker is not None:
            broker.close()
        try:
            self.audit.close()
        finally:
            self.state.close()

    def close_quietly(self) -> None:
        for part in ("broker", "audit", "state"):
            obj = getattr(self, part, None)
            if obj is not None:
                with contextlib.suppress(Exception):  # failing to start: keep the first error
                    obj.close()

    def read_all(self) -> list[dict[str, Any]]:
        """Every logged event in order (for rebuilding the run projection at start)."""
        path = self.data.audit_log
        if not path.exists():
            return []
        return [event for _offset, event in audit_index.iter_events(path)]

    # ------------------------------------------------------------------ sessions, policies

    def sessions(self) -> list[Session]:
        return list(self._sessions.values())

    def get_session(self, session_id: str) -> Session | None:
        return self._sessions.get(session_id)

    def create_session(
        self, label: str, workspace: str | None, policy: Policy
    ) -> tuple[Session, str]:
        session, key = self.state.create_session(label, workspace, policy)
        self._sessions[session.id] = session
        self._policies[session.id] = policy
        return session, key

    def close_session(self, session_id: str) -> None:
        self._sessions[session_id] = self.state.close_session(session_id)

    def issue_agent_key(self, session_id: str) -> str:
        return self.state.issue_agent_key(session_id)

    def session_for_key(self, key: str) -> Session | None:
        return self.state.session_for_agent_key(key)

    def policy(self, session_id: str) -> Policy:
        try:
            return self._policies[session_id]
        except KeyError:
            raise NotFound(f"no session {session_id!r}") from None

    def set_policy(self, session_id: str, policy: Policy, *, actor: str, reason: str) -> None:
        self.state.set_policy(session_id, policy, actor=actor, reason=reason)
        self._policies[session_id] = policy

    # ------------------------------------------------------------------ skills, secrets

    def _reload_skills(self) -> None:
        skills = self.state.list_skills()
        self._skills = tuple(skills)  # replaced whole: broker threads read a snapshot
        self._skills_by_image = {s.image: s for s in skills}

    def skill_verified(self, image: str, image_id: str) -> bool:
        """The broker's `skill_check` (called from its thread, for `require_signed` runs):
        True only if a registered skill names exactly this image — the pinned reference Docker
        resolved, or the image id it resolved to — and its signature verifies now against
        `<data>/keys/trusted/*.pub` (a key removed since registration no longer counts).
        Only the engine's own registry and key files are consulted, never the intent."""
        if not isinstance(image, str) or not isinstance(image_id, str) or not image_id:
            return False
        candidates = [s for s in self._skills if s.image in (image, image_id)]
        if not candidates:
            return False
        trusted = load_trusted_keys(self.data.trusted_keys_dir)
        if not trusted:
            return False
        return any(
            verify_skill(s, self.data.trusted_keys_dir, trusted_keys=trusted) == "verified"
            for s in candidates
        )

    def skills(self) -> list[SkillInfo]:
        return [
            SkillInfo(**s.model_dump(), signature_status=self._sig(s))
            for s in self.state.list_skills()
        ]

    def _sig(self, skill: Skill) -> SignatureStatus:
        return verify_skill(skill, self.data.trusted_keys_dir)

    def register_skill(self, skill: dict[str, Any]) -> SkillInfo:
        if not isinstance(skill, dict):
            raise BadRequest("skill must be a JSON object")
        # the engine stamps the registration time; a client's value is ignored
        skill = {k: v for k, v in skill.items() if k != "registered"}
        image = skill.get("image")
        if not isinstance(image, str) or not image_is_pinned(image):
            raise BadRequest(
                f"skill image {str(image)[:200]!r} is not pinned: give it as "
                "name@sha256:<digest> or sha256:<image id> (a tag can be moved to another image)"
            )
        if not isinstance(skill.get("manifest", {}), dict):
            raise BadRequest("skill manifest must be a JSON object")
        for field in ("signature", "key_id"):
            value = skill.get(field)
            if value is not None and (not isinstance(value, str) or not value):
                raise BadRequest(f"skill {field} must be a non-empty string when given")
        sk = self.state.add_skill(skill)
        self._reload_skills()
        return SkillInfo(**sk.model_dump(), signature_status=self._sig(sk))

    def skill_for_image(self, image: Any) -> Skill | None:
        if not isinstance(image, str):
            return None
        return self._skills_by_image.get(image)

    def set_secret(self, name: str, value: str) -> None:
        self.secrets.set(name, value)
        self.state.add_secret_ref(name)
        self.reload_secrets()

    def reload_secrets(self) -> None:
        self.redactor = SecretRedaction(self.secrets.values())

    # ------------------------------------------------------------------ broker

    async def execute(
        self,
        intent: ToolIntent,
        token: str,
        session: Session,
        subject: str,
        runner: Callable[[Callable[[], Any]], Awaitable[Any]] | None = None,
    ) -> dict[str, Any]:
        """Run the broker: inline for INLINE_TOOLS, else through `runner` (the engine's tool
        slot on its own pool) or, without one, the loop's default executor."""
        call = functools.partial(
            self.broker.execute, intent, token, session=session, subject=subject
        )
        if intent.tool in INLINE_TOOLS:
            return call()
        if runner is not None:
            return await runner(call)
        return await asyncio.get_running_loop().run_in_executor(None, call)

    def docker_available(self) -> bool:
        """Whether Docker answers (cached for 30 s: the console asks often)."""
        now = time.monotonic()
        cached = getattr(self, "_docker_seen", None)
        if cached is not None and now - cached[0] < 30:
            return cached[1]
        ok = self._ping_docker()
        self._docker_seen = (now, ok)
        return ok

    def _ping_docker(self) -> bool:
        try:
            from ..broker import docker as docker_mod

            return docker_mod.ping()
        except Exception:  # noqa: BLE001 - any failure means "not available"
            return False

    # ------------------------------------------------------------------ audit reading

    def head_seq(self) -> int:
        head = self.audit.head
        if isinstance(head, dict):
            return int(head.get("seq", -1))
        return int(getattr(head, "seq", -1))

    def last_checkpoint(self) -> tuple[int, str] | None:
        cp = getattr(self.audit, "last_checkpoint", None)
        if cp is None:
            return None
        if isinstance(cp, dict):
            return int(cp["seq"]), str(cp.get("ts", ""))
        return int(cp.seq), str(getattr(cp, "ts", ""))

    def query(
        self,
        session_id: str | None,
        run_id: str | None,
        types: list[str] | None,
        from_seq: int,
        limit: int,
    ) -> list[dict[str, Any]]:
        if not self.data.audit_log.exists():
            return []
        return audit_index.query(
            self.data.audit_dir,
            session_id=session_id,
            run_id=run_id,
            types=types,
            from_seq=from_seq,
            limit=limit,
            key=self.index_key,
            on_rebuild=self.index_rebuilt,
        )

    def verify(self) -> VerifyReport:
        report = verify_log(self.data.audit_dir, self.audit_pub)
        report.index = audit_index.check_index(self.data.audit_dir, self.index_key)
        return report

    def replay(self, run_id: str, policy: dict[str, Any] | None) -> ReplayResult:
        return replay_mod.replay(
            self.data.audit_dir,
            run_id,
            policy=policy,
            public_key=self.audit_pub,
            index_key=self.index_key,
            on_index_rebuild=self.index_rebuilt,
        )

    def simulate(self, session_id: str, policy: Policy) -> list[SimulationChange]:
        return replay_mod.simulate(
            self.data.audit_dir,
            policy,
            session_id=session_id,
            index_key=self.index_key,
            on_index_rebuild=self.index_rebuilt,
        )

    def session_timeline(
        self,
        session_id: str,
        policy: Policy | None,
        from_seq: int,
        to_seq: int | None,
        max_markers: int,
        summary: bool = True,
    ) -> SessionTimeline:
        return session_replay.session_timeline(
            self.data.audit_dir,
            session_id,
            policy=policy,
            from_seq=from_seq,
            to_seq=to_seq,
            max_markers=max_markers,
            summary=summary,
            index_key=self.index_key,
            on_index_rebuild=self.index_rebuilt,
            # a what-if reads the whole session: through an index of its own, so that the
            # windows and jumps of the replay on screen do not wait for it
            cache=self.replay_index if policy is None else None,
        )

    def session_jump(self, session_id: str, kind: str, seq: int, direction: int) -> int | None:
        return session_replay.session_jump(
            self.data.audit_dir,
            session_id,
            kind,
            seq,
            direction,
            on_index_rebuild=self.index_rebuilt,
            cache=self.replay_index,
        )

    def compare_runs(self, run_a: str, run_b: str) -> RunComparison:
        return session_replay.compare_runs(
            self.data.audit_dir,
            run_a,
            run_b,
            index_key=self.index_key,
            on_index_rebuild=self.index_rebuilt,
        )


class GroupCommit:
    """Durability for the event loop: `await wait()` returns once every event appended
    before the call is on disk.

    Waiters queue up with the seq they need; one dedicated flusher thread runs `audit.sync()`
    (the fsync), never on the loop, and hands back to the loop once per sync, waking every
    waiter it covered. N concurrent intents cost one fsync rather than N, and each round is
    one futex wake out and one loop wake back (no executor work item, concurrent future and
    chained asyncio future per round, which showed in the profile as the "thread hop").
    """

    def __init__(self, audit: AuditLog, pool: Any = None) -> None:
        self.audit = audit
        self.pool = pool  # unused: kept for callers that pass the engine's pool
        self.durable_seq = audit.next_seq  # open() leaves everything on disk
        self._waiters: list[tuple[int, asyncio.Future]] = []
        #: one wake-up token per requested round; `_pending` (set by the loop, cleared by the
        #: flusher before it reads how far to sync) keeps at most one queued
        self._wake: queue.SimpleQueue[None] = queue.SimpleQueue()
        self._pending = False
        self._closed = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    async def wait(self) -> None:
        target = self.audit.next_seq
        if self.durable_seq >= target:
            return
        loop = asyncio.get_running_loop()
        fut = loop.create_future()
        self._waiters.append((target, fut))
        self._request(loop)
        await fut

    def _request(self, loop: asyncio.AbstractEventLoop) -> None:
        if self._thread is None:
            self._loop = loop
            self._thread = threading.Thread(target=self._run, name="talon-fsync", daemon=True)
            self._thread.start()
        if not self._pending:
            self._pending = True
            self._wake.put(None)

    def close(self) -> None:
        """Let the flusher thread end (the log syncs itself at close)."""
        self._closed = True
        self._wake.put(None)

    def _run(self) -> None:
        """The flusher thread: one `audit.sync()` per request round, result posted to the loop."""
        while True:
            self._wake.get()
            if self._closed and not self._pending:
                return
            self._pending = False
            # every waiter whose request this round cleared appended before this read
            upto = self.audit.next_seq
            exc: BaseException | None = None
            try:
                self.audit.sync()
            except BaseException as e:  # noqa: BLE001 - handed to every waiter, none is lost
                exc = e
            loop = self._loop
            if loop is None:
                return
            try:
                loop.call_soon_threadsafe(self._synced, upto, exc)
            except RuntimeError:  # the loop is closed: nobody is waiting any more
                return

    def _synced(self, upto: int, exc: BaseException | None) -> None:
        """On the loop: wake the waiters this sync covered (or fail them all)."""
        if exc is not None:
            waiters, self._waiters = self._waiters, []
            for _target, fut in waiters:
                if not fut.done():
                    fut.set_exception(exc)
            return
        if upto > self.durable_seq:
            self.durable_seq = upto
        still = []
        for target, fut in self._waiters:
            if target <= upto:
                if not fut.done():
                    fut.set_result(None)
            else:
                still.append((target, fut))
        self._waiters = still
        if still:  # appended during the sync: their own request is pending, this is a guard
            self._request(self._loop or asyncio.get_running_loop())
