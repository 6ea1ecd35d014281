"""The Engine facade: one object that ties policy, tokens, broker and audit together.

It implements `api.EngineAPI` (what the console uses) plus the agent side: `submit`,
`begin_run`, `end_run`. The flow of one intent is DESIGN section 2; the events and their data
are INTERNALS' table. Every event of a step is written and fsynced (group commit, in a thread,
never on the event loop) before the caller learns the outcome.

All engine state is touched from the event loop thread only; blocking work (fsync, the broker,
verification, replay) runs in a thread pool.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import os
import threading
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from .api import (
    AgentPeer,
    ApprovalPreview,
    ApprovalRequest,
    BusMessage,
    EngineStatus,
    ReplayResult,
    RunComparison,
    RunSummary,
    SessionInfo,
    SessionTimeline,
    SimulationChange,
    SkillInfo,
    VerifyReport,
)
from .audit.runs import RunProjection
from .broker.preview import preview as broker_preview
from .core import frames, ids
from .core.canon import jsonable
from .core.paths import DataDir
from .errors import BadRequest, ErrorCode, Forbidden, NotFound, PolicyDenied, TalonError
from .policy.models import Policy, Session, parse_policy
from .runtime.approvals import ApprovalOutcome, ApprovalQueue
from .runtime.bus import EventBus
from .runtime.delegated import DelegatedFlow
from .runtime.limits import Aggregator, ApprovalLimits, ToolLimits, ToolScheduler
from .runtime.mcp import McpFlow
from .runtime.state import policy_sha256
from .runtime.store import EngineStore, GroupCommit

VERSION = "0.1.0"
STOP_GRACE_SECONDS = 10.0
#: an approval preview's lines: at most this many, each cut at this many characters
PREVIEW_MAX_LINES = 5000
PREVIEW_LINE_CHARS = 2000


class Engine(DelegatedFlow, McpFlow):
    """The in-process engine. `await start()` before use, `await stop()` at the end."""

    def __init__(
        self,
        data_dir: str | os.PathLike[str],
        *,
        docker_runtime: str | None = None,
        approval_timeout: float = 120.0,
        checkpoint_every: int = 1000,
        max_output_bytes: int = 64 * 1024,
        bus_queue_size: int = 10_000,
        tool_limits: ToolLimits | None = None,
        approval_limits: ApprovalLimits | None = None,
        aggregate_seconds: float = 10.0,
    ) -> None:
        self.data = DataDir(Path(data_dir).absolute())
        self.docker_runtime = docker_runtime
        self.checkpoint_every = checkpoint_every
        self.max_output_bytes = max_output_bytes
        self.approvals = ApprovalQueue(approval_timeout)
        self.bus = EventBus(bus_queue_size)
        self.runs = RunProjection()
        self.peers: dict[str, AgentPeer] = {}
        self.admin_token = ""
        self.started = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread: int | None = None
        self._pool = ThreadPoolExecutor(max_workers=8, thread_name_prefix="talon-engine")
        #: blocking tools run here, under per-session and per-agent limits (limits.py)
        self.tools = ToolScheduler(tool_limits)
        self.approval_limits = approval_limits or ApprovalLimits()
        #: session_id / subject -> [pending approvals, bytes of their params]
        self.approval_load: dict[str, list[int]] = {}
        self.aggregate_seconds = aggregate_seconds
        self._refused = Aggregator(self._record_refused, aggregate_seconds, ("tool",))
        #: the pipe's limits, shown by `status` (set by the pipe server when it starts)
        self.pipe_limits: dict[str, float] = {}
        self._active = 0
        self._idle = asyncio.Event()
        self._idle.set()
        #: called with a conn_id when that agent's session closes (the pipe drops it)
        self.on_session_closed: Any = None
        #: set by `talon serve --export`: head seq -> one status row per exporter
        self.export_status: Callable[[int], list[dict[str, Any]]] | None = None
        self._reaping: asyncio.Task[None] | None = None
        #: session id -> callbacks told the new policy version (agent op `policy.watch`)
        self._policy_watchers: dict[str, set[Callable[[int], None]]] = {}

    # ------------------------------------------------------------------ lifecycle

    @property
    def audit_path(self) -> Path:
        return self.data.audit_log

    async def __aenter__(self) -> Engine:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def start(self) -> None:
        """Lock the data dir, open state and the audit log (recovering a torn tail), rebuild
        the run projection from the log, and record `engine.started`."""
        if self.started:
            return
        self._loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()
        self.data.ensure()
        self.store = EngineStore(self.data, docker_runtime=self.docker_runtime)
        self.store.lock()
        try:
            self.admin_token = self.store.admin_token()
            await self._loop.run_in_executor(self._pool, self.store.open, self.checkpoint_every)
            self.audit = self.store.audit
            self.store.mcp.emit = self._mcp_emit
            self._commit = GroupCommit(self.audit, self._pool)
            for event in await self._loop.run_in_executor(self._pool, self.store.read_all):
                self.runs.apply(event)
            self.audit.add_listener(self._on_event)
            self.started = True
            self._record(
                "engine.started",
                {"version": VERSION, "pid": os.getpid(), "data_dir": str(self.data.root)},
            )
            for run in self.runs.running():
                self._record(
                    "run.finished",
                    {"status": "interrupted", "steps": run.steps},
                    session_id=run.session_id,
                    run_id=run.run_id,
                )
            await self.durable()
            self._reaping = self._loop.create_task(self._reap_leftover_containers())
        except BaseException:
            self.started = False
            self.store.close_quietly()
            self.store.unlock()
            raise

    async def stop(self, reason: str = "shutdown", grace: float = STOP_GRACE_SECONDS) -> None:
        """Deny waiting approvals, let in-flight intents finish (bounded by `grace`), record
        `engine.stopped`, write the final checkpoint and release the lock."""
        if not self.started:
            return
        self.deny_waiting()
        if self._reaping is not None and not self._reaping.done():
            self._reaping.cancel()
        if self._active:
            self._idle.clear()
            try:
                await asyncio.wait_for(self._idle.wait(), timeout=grace)
            except TimeoutError:
                pass
        self._refused.flush_all()
        self._record("engine.stopped", {"reason": reason})
        self.started = False
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._pool, self.store.close)
        self._commit.close()
        self.bus.close()
        self.store.unlock()
        self._pool.shutdown(wait=False)
        self.tools.shutdown()

    async def _reap_leftover_containers(self) -> None:
        """Containers an earlier run of this engine left (kill -9, power loss): removed in the
        background after start, one `tool.reaped` event each."""
        reaped = await asyncio.get_running_loop().run_in_executor(
            self._pool, self.store.broker.reap_leftover_containers
        )
        if reaped and self.started:
            for container in reaped:
                self._record("tool.reaped", container)
            await self.durable()

    def deny_waiting(self) -> None:
        """Shutdown begins: every intent waiting for an approval is denied now."""
        self.approvals.cancel_all()  # each waiter records and publishes its own denial

    # ------------------------------------------------------------------ audit plumbing

    def _on_event(self, event: dict[str, Any]) -> None:
        """Audit listener: keep the projection and the bus in log order."""
        if threading.get_ident() != self._loop_thread and self._loop is not None:
            try:
                self._loop.call_soon_threadsafe(self._apply_event, event)
            except RuntimeError:  # loop closed: nobody is listening any more
                return
            return
        self._apply_event(event)

    def _apply_event(self, event: dict[str, Any]) -> None:
        change = self.runs.apply(event)
        bus = self.bus
        if not bus.subscriber_count:
            return  # nobody listens: skip building messages (two model dumps per intent)
        bus.publish("audit", event)
        if change is not None:
            action, run = change
            bus.publish("run", {"action": action, "run": run.model_dump()})

    # ------------------------------------------------------------------ agents and auth

    def check_admin_token(self, token: Any) -> bool:
        return (
            isinstance(token, str)
            and bool(self.admin_token)
            and hmac.compare_digest(token.encode(), self.admin_token.encode())
        )

    def authenticate_agent(self, agent_key: Any) -> tuple[str, str]:
        """(session_id, subject) for a valid agent key of an open session."""
        if not isinstance(agent_key, str) or not agent_key:
            raise TalonError("hello needs auth.agent_key", code=ErrorCode.UNAUTHENTICATED)
        session = self.store.session_for_key(agent_key)
        if session is None:
            raise TalonError(
                "unknown, re-issued or closed-session agent key", code=ErrorCode.UNAUTHENTICATED
            )
        digest = hashlib.sha256(agent_key.encode("utf-8")).hexdigest()
        return session.id, "agent:" + digest[:12]

    def agent_connected(self, peer: AgentPeer) -> None:
        """Record a pipe connection: `agent.connected`, or `admin.connected` for an operator's
        console or CLI (an admin is not an agent: the log tells them apart by type)."""
        self.peers[peer.conn_id] = peer
        self._record(
            "admin.connected" if peer.role == "admin" else "agent.connected",
            {
                "conn_id": peer.conn_id,
                "role": peer.role,
                "subject": peer.subject,
                "uid": peer.uid,
                "pid": peer.pid,
            },
            session_id=peer.session_id,
        )
        self.bus.publish("agent", {"action": "connected", "peer": peer.model_dump()})

    def agent_disconnected(self, conn_id: str) -> None:
        peer = self.peers.pop(conn_id, None)
        if peer is None or not self.started:
            return
        self._record(
            "admin.disconnected" if peer.role == "admin" else "agent.disconnected",
            {"conn_id": conn_id, "subject": peer.subject},
            session_id=peer.session_id,
        )
        self.bus.publish("agent", {"action": "disconnected", "peer": peer.model_dump()})

    def pipe_rejected(
        self,
        conn_id: str,
        code: str,
        reason: str,
        op: str | None,
        session_id: str | None = None,
        *,
        count: int = 1,
        uid: int | None = None,
        codes: dict[str, int] | None = None,
        ops: dict[str, int] | None = None,
    ) -> None:
        """One `pipe.rejected` event; `count` rejections of this peer since the last one (the
        pipe aggregates them per peer and interval)."""
        if self.started:
            self._record(
                "pipe.rejected",
                {
                    "conn_id": conn_id,
                    "code": code,
                    "reason": reason,
                    "op": op,
                    "count": count,
                    "uid": uid,
                    "codes": codes or {code: count},
                    "ops": ops or ({} if op is None else {op: count}),
                },
                session_id=session_id,
            )

    # ------------------------------------------------------------------ EngineAPI: sessions

    async def status(self) -> EngineStatus:
        pending = self.approvals.list()
        oldest = None
        if pending:
            first = min(p.created for p in pending)
            oldest = int((ids.utcnow() - _parse_ts(first)).total_seconds())
        cp = self.store.last_checkpoint()
        head = self.store.head_seq()
        return EngineStatus(
            data_dir=str(self.data.root),
            mode="in-process",
            sessions_open=sum(1 for s in self.store.sessions() if s.status == "open"),
            pending_approvals=len(pending),
            oldest_approval_age_s=oldest,
            agents_connected=sum(1 for p in self.peers.values() if p.role == "agent"),
            audit_head_seq=head,
            last_checkpoint_seq=cp[0] if cp else None,
            last_checkpoint_ts=cp[1] if cp else None,
            docker_runtime=self.docker_runtime,
            docker_available=await asyncio.get_running_loop().run_in_executor(
                self._pool, self.store.docker_available
            ),
            limits=self.limits(),
            exports=self.export_status(head) if self.export_status else [],
        )

    def limits(self) -> dict[str, float]:
        """Every configured limit and the tool pool's current use (for `status`)."""
        al = self.approval_limits
        return {
            **self.tools.snapshot(),
            "approvals_per_session": al.per_session,
            "approvals_per_agent": al.per_agent,
            "approval_params_bytes_per_session": al.params_bytes_per_session,
            **self.pipe_limits,
        }

    async def list_sessions(self) -> list[SessionInfo]:
        out = []
        for s in self.store.sessions():
            out.append(
                SessionInfo(
                    **s.model_dump(),
                    runs=self.runs.session_runs.get(s.id, 0),
                    last_activity=self.runs.session_last_activity.get(s.id),
                    agents_connected=sum(1 for p in self.peers.values() if p.session_id == s.id),
                )
            )
        return out

    def _session(self, session_id: str, *, open_only: bool = False) -> Session:
        session = self.store.get_session(session_id)
        if session is None:
            raise NotFound(f"no session {session_id!r}", details={"session_id": session_id})
        if open_only and session.status != "open":
            raise Forbidden(f"session {session_id!r} is closed", details={"session_id": session_id})
        return session

    async def create_session(
        self, label: str, workspace: str | None = None, policy: dict[str, Any] | None = None
    ) -> tuple[Session, str]:
        parsed = parse_policy(policy) if policy is not None else Policy()
        session, key = self.store.create_session(label, workspace, parsed)
        self._record(
            "session.created",
            {
                "label": session.label,
                "workspace": session.workspace,
                "policy_sha256": policy_sha256(parsed),
            },
            session_id=session.id,
        )
        self._policy_event(session.id, parsed, None, actor="operator", reason="initial policy")
        await self.durable()
        return session, key

    async def close_session(self, session_id: str) -> None:
        self._session(session_id, open_only=True)
        self.store.close_session(session_id)
        self.store.revocations.revoke_session(session_id)
        self._record("session.closed", {}, session_id=session_id)
        self._rejudge_waiting(session_id)
        for conn_id, peer in list(self.peers.items()):
            if peer.session_id == session_id and self.on_session_closed is not None:
                self.on_session_closed(conn_id)
        await self.durable()

    async def issue_agent_key(self, session_id: str) -> str:
        self._session(session_id, open_only=True)
        return self.store.issue_agent_key(session_id)

    async def get_policy(self, session_id: str) -> Policy:
        self._session(session_id)
        return self.store.policy(session_id).model_copy(deep=True)

    async def set_policy(
        self, session_id: str, policy: dict[str, Any], *, actor: str = "operator", reason: str = ""
    ) -> Policy:
        self._session(session_id, open_only=True)
        parsed = parse_policy(policy)
        self._replace_policy(session_id, parsed, actor=actor, reason=reason or "policy set")
        await self.durable()
        return parsed.model_copy(deep=True)

    def _replace_policy(self, session_id: str, parsed: Policy, *, actor: str, reason: str) -> None:
        previous = self.store.policy(session_id)
        self.store.set_policy(session_id, parsed, actor=actor, reason=reason)
        self._policy_event(session_id, parsed, previous, actor=actor, reason=reason)
        self._rejudge_waiting(session_id)
        watchers = self._policy_watchers.get(session_id)
        if watchers:
            version = self.policy_version(session_id)
            for notify in list(watchers):
                notify(version)

    # ------------------------------------------------------------------ agent: own policy

    def policy_version(self, session_id: str) -> int:
        """How many times the session's policy was replaced (0: the one it was created with)."""
        return int(self.store.state.last_policy_change(session_id).seq)

    async def view_policy(self, session_id: str) -> dict[str, Any]:
        """Agent op `policy.view`: the agent's own session's policy, read-only."""
        self._session(session_id, open_only=True)
        return {
            "session_id": session_id,
            "version": self.policy_version(session_id),
            "policy": self.store.policy(session_id).to_doc(),
        }

    def watch_policy(self, session_id: str, notify: Callable[[int], None]) -> Callable[[], None]:
        """Call `notify(version)` whenever the session's policy changes; returns the function
        that stops it. Only that session's changes reach it."""
        self._session(session_id, open_only=True)
        self._policy_watchers.setdefault(session_id, set()).add(notify)

        def stop() -> None:
            watchers = self._policy_watchers.get(session_id)
            if watchers is not None:
                watchers.discard(notify)
                if not watchers:
                    del self._policy_watchers[session_id]

        return stop

    def withdraw_intent(self, owner: asyncio.Task[Any]) -> list[str]:
        """Agent op `intent.cancel`: the approval the request's task `owner` waits for leaves
        the queue; its intent then answers APPROVAL_DENIED (audited `by: agent-cancel`)."""
        return self.approvals.withdraw(owner)

    def _policy_event(
        self, session_id: str, policy: Policy, previous: Policy | None, *, actor: str, reason: str
    ) -> None:
        self._record(
            "policy.updated",
            {
                "policy": jsonable(policy.to_doc()),
                "policy_sha256": policy_sha256(policy),
                "previous_sha256": policy_sha256(previous) if previous is not None else None,
                "actor": actor,
                "reason": reason,
            },
            session_id=session_id,
        )

    # ------------------------------------------------------------------ EngineAPI: runs, agents

    async def list_runs(
        self, session_id: str | None = None, limit: int = 500, offset: int = 0
    ) -> list[RunSummary]:
        return self.runs.list(session_id, limit, offset)

    async def list_agents(self) -> list[AgentPeer]:
        return [p.model_copy() for p in self.peers.values()]

    # ------------------------------------------------------------------ EngineAPI: approvals

    async def list_approvals(self) -> list[ApprovalRequest]:
        return self.approvals.list()

    async def get_approval(self, approval_id: str) -> ApprovalRequest:
        """The whole waiting request (NotFound once decided or expired)."""
        return self.approvals.get(approval_id).model_copy()

    async def decide_approval(self, approval_id: str, allow: bool, remember: bool = False) -> None:
        """Decide one waiting intent. An approval is judged again against the current policy
        first: if that now denies the intent, it is denied (by "policy") and PolicyDenied
        says why. "Remember" adds the current matched override narrowed to exactly the intent
        (`policy.evaluate.remember_override`), never anything looser."""
        request = self.approvals.get(approval_id)  # NotFound when gone
        intent = self.approvals.intent(approval_id)
        allow, remember = bool(allow), bool(remember)
        if allow:
            current = self.judge_waiting(request.session_id, intent)
            if current.decision == "DENY":
                self._withdraw_approval(approval_id, current.reason)
                await self.durable()
                raise PolicyDenied(
                    f"{request.tool} was not approved: {current.reason}",
                    details={"approval_id": approval_id, "reason": current.reason},
                )
        override_added = None
        if allow and remember:
            remembered = self.remembered_for(request.session_id, intent)
            if remembered is not None:
                doc = self.store.policy(request.session_id).to_doc()
                doc["overrides"].insert(remembered.index, remembered.override)
                self._replace_policy(
                    request.session_id,
                    parse_policy(doc),
                    actor="approval",
                    reason=f"approved and remembered {approval_id}",
                )
                override_added = remembered.override
        self._record(
            "approval.decided",
            {
                "approval_id": approval_id,
                "intent_id": self.approvals.intent_id(approval_id),
                "allow": allow,
                "remember": remember,
                "by": "operator",
                "timed_out": False,
                "override_added": override_added,
            },
            session_id=request.session_id,
            run_id=request.run_id,
        )
        self.approvals.decide(approval_id, ApprovalOutcome(allow, remember, "operator"))
        self.bus.publish("approval", {"action": "decided", "approval": request.model_dump()})
        await self.durable()

    async def approval_preview(self, approval_id: str) -> ApprovalPreview:
        """What allowing a waiting intent would do, taken now: the broker reads (never writes)
        the current file through its confinement, resolves the fetch's address, and lays out
        argv or the container. Secret values in it are redacted; the lines are capped."""
        request = self.approvals.get(approval_id)  # NotFound when gone
        intent = self.approvals.intent(approval_id)
        session = self.store.get_session(request.session_id)
        workspace = session.workspace if session is not None else None
        current = self.judge_waiting(request.session_id, intent)
        constraints = current.constraints if current.decision != "DENY" else None
        taken = ids.now_iso()
        raw = await asyncio.get_running_loop().run_in_executor(
            self._pool, broker_preview, intent, constraints, workspace
        )
        redacted, _hit = self.store.redactor(
            [[list(f) for f in raw["fields"]], raw["lines"], raw["note"]]
        )
        fields, lines, note = redacted
        if current.decision == "DENY":
            note = f"{note + '; ' if note else ''}{current.reason}"
        cut: list[str] = []
        budget = frames.MAX_PAGE_CHARS  # the whole preview fits one admin line (frames.py)
        for ln in lines[:PREVIEW_MAX_LINES]:
            ln = ln if len(ln) <= PREVIEW_LINE_CHARS else ln[:PREVIEW_LINE_CHARS] + "…"
            budget -= len(ln) + 1
            if budget < 0:
                break
            cut.append(ln)
        return ApprovalPreview(
            approval_id=approval_id,
            tool=request.tool,
            taken=taken,
            fields=[(str(a), str(b)) for a, b in fields],
            lines=cut,
            lines_total=len(lines),
            bytes=int(raw["bytes"]),
            note=note,
        )

    def _withdraw_approval(self, approval_id: str, reason: str) -> None:
        """The current policy denies a waiting intent: record it and take it out of the queue
        (its waiter answers the agent with POLICY_DENIED)."""
        request = self.approvals.get(approval_id)
        self._record(
            "approval.decided",
            {
                "approval_id": approval_id,
                "intent_id": self.approvals.intent_id(approval_id),
                "allow": False,
                "remember": False,
                "by": "policy",
                "timed_out": False,
                "override_added": None,
                "reason": reason,
            },
            session_id=request.session_id,
            run_id=request.run_id,
        )
        self.approvals.decide(approval_id, ApprovalOutcome(False, False, "policy", reason=reason))
        self.bus.publish("approval", {"action": "decided", "approval": request.model_dump()})

    def _rejudge_waiting(self, session_id: str) -> None:
        """After a policy change (or a session's end): every waiting intent of the session the
        current policy denies leaves the queue, denied; the others get the remembered override
        the current policy would add."""
        for approval_id in self.approvals.waiting_in(session_id):
            intent = self.approvals.intent(approval_id)
            current = self.judge_waiting(session_id, intent)
            if current.decision == "DENY":
                self._withdraw_approval(approval_id, current.reason)
                continue
            remembered = self.remembered_for(session_id, intent)
            override = jsonable(remembered.override) if remembered is not None else None
            request = self.approvals.get(approval_id)
            if override != request.remember_override:
                self.approvals.set_remember_override(approval_id, override)
                self.bus.publish(
                    "approval", {"action": "updated", "approval": request.model_dump()}
                )

    # ------------------------------------------------------------------ EngineAPI: audit, replay

    async def query_audit(
        self,
        session_id: str | None = None,
        run_id: str | None = None,
        types: list[str] | None = None,
        from_seq: int = 0,
        limit: int = 1000,
    ) -> list[dict[str, Any]]:
        return await asyncio.get_running_loop().run_in_executor(
            self._pool, self.store.query, session_id, run_id, types, from_seq, limit
        )

    async def get_audit_event(self, seq: int) -> dict[str, Any]:
        """The whole logged event `seq` (NotFound past the head)."""
        found = await self.query_audit(from_seq=seq, limit=1) if seq >= 0 else []
        if not found or found[0].get("seq") != seq:
            raise NotFound(f"no audit event with seq {seq}", details={"seq": seq})
        return found[0]

    async def verify_audit(self) -> VerifyReport:
        await self.durable()
        return await asyncio.get_running_loop().run_in_executor(self._pool, self.store.verify)

    async def replay(self, run_id: str, policy: dict[str, Any] | None = None) -> ReplayResult:
        await self.durable()
        return await asyncio.get_running_loop().run_in_executor(
            self._pool, self.store.replay, run_id, policy
        )

    async def simulate(self, session_id: str, policy: dict[str, Any]) -> list[SimulationChange]:
        self._session(session_id)
        parsed = parse_policy(policy)
        await self.durable()
        return await asyncio.get_running_loop().run_in_executor(
            self._pool, self.store.simulate, session_id, parsed
        )

    async def session_timeline(
        self,
        session_id: str,
        policy: dict[str, Any] | None = None,
        from_seq: int = 0,
        to_seq: int | None = None,
        max_markers: int = 2000,
        summary: bool = True,
    ) -> SessionTimeline:
        parsed = parse_policy(policy) if policy is not None else None
        await self.durable()
        return await asyncio.get_running_loop().run_in_executor(
            self._pool,
            self.store.session_timeline,
            session_id,
            parsed,
            int(from_seq),
            None if to_seq is None else int(to_seq),
            int(max_markers),
            bool(summary),
        )

    async def session_jump(
        self, session_id: str, kind: str, seq: int, direction: int = 1
    ) -> int | None:
        """The seq of the session's next (direction > 0) or previous denial, approval or
        policy change from `seq`, or None."""
        await self.durable()
        return await asyncio.get_running_loop().run_in_executor(
            self._pool, self.store.session_jump, session_id, kind, int(seq), int(direction)
        )

    async def compare_runs(self, run_a: str, run_b: str) -> RunComparison:
        await self.durable()
        return await asyncio.get_running_loop().run_in_executor(
            self._pool, self.store.compare_runs, run_a, run_b
        )

    # ------------------------------------------------------------------ EngineAPI: skills, tokens

    async def list_skills(self) -> list[SkillInfo]:
        return self.store.skills()

    async def register_skill(self, skill: dict[str, Any]) -> SkillInfo:
        return self.store.register_skill(skill)

    async def revoke_token(self, jti: str | None = None, session_id: str | None = None) -> None:
        if (jti is None) == (session_id is None):
            raise BadRequest("give exactly one of jti or session_id")
        if jti is not None:
            self.store.revocations.revoke_jti(jti)
            self._record("token.revoked", {"jti": jti})
        else:
            self._session(session_id)  # type: ignore[arg-type]
            self.store.revocations.revoke_session(session_id)  # type: ignore[arg-type]
            self._record("token.revoked", {"session_id": session_id}, session_id=session_id)
        await self.durable()

    async def set_secret(self, name: str, value: str) -> None:
        await asyncio.get_running_loop().run_in_executor(
            self._pool, self.store.set_secret, name, value
        )

    # ------------------------------------------------------------------ EngineAPI: events

    def subscribe(self, from_seq: int | None = None) -> AsyncIterator[BusMessage]:
        """Live bus messages; with `from_seq`, first the logged events from that seq on."""
        sub = self.bus.subscribe()
        if from_seq is None:
            return aiter(sub)
        return self._backlog_then_live(sub, from_seq)

    async def _backlog_then_live(self, sub: Any, from_seq: int) -> AsyncIterator[BusMessage]:
        last = from_seq - 1
        try:
            while True:
                batch = await self.query_audit(from_seq=last + 1, limit=1000)
                for event in batch:
                    last = event["seq"]
                    yield BusMessage(kind="audit", payload=event)
                if len(batch) < 1000:
                    break
            async for msg in sub:
                if msg.kind == "audit" and msg.payload.get("seq", last + 1) <= last:
                    continue  # already sent from the log
                yield msg
        finally:
            sub.close()


def _parse_ts(ts: str) -> datetime:
    return datetime.strptime(ts, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
