"""The flow of one intent (DESIGN section 2), as the agent-facing half of the Engine.

`submit` audits every step (intent received, decision, approval, capability, execution, run
end) and makes them durable before it returns or raises. Errors reach the caller as
`TalonError`s whose `details` carry the run and intent ids (and `suggested_fix` on a denial).
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..audit.runs import recordable_hashed
from ..core import ids
from ..core.canon import NotCanonical, canonical, canonical_sha256, jsonable, sha256_tag
from ..errors import (
    BadRequest,
    ConstraintViolation,
    ErrorCode,
    Forbidden,
    NotFound,
    PolicyDenied,
    TalonError,
    TokenInvalid,
)
from ..policy import evaluate as policy_engine
from ..policy.models import Decision, Session, ToolIntent
from .approvals import AGENT_CANCEL, ApprovalOutcome
from .host import EngineHost
from .limits import Aggregator, ApprovalLimits, RateLimited, ToolScheduler, parked, produced
from .skills import parse_skill_answer
from .store import INLINE_TOOLS

if TYPE_CHECKING:
    from ..audit.runs import RunProjection
    from .approvals import ApprovalQueue
    from .bus import EventBus

#: most tool intents followed from one skill answer
MAX_SKILL_INTENTS = 16
MAX_CONTENT_CHARS = 4096
RUN_STATUS_RE = re.compile(r"^[a-z][a-z_]{0,31}$")


def canonical_intent_hash(tool: str, params: dict[str, Any]) -> str:
    """The sha256 of the canonical `{tool, params}` a token is bound to; BadRequest when the
    params are not canonical JSON."""
    try:
        return canonical_sha256({"tool": tool, "params": params})
    except NotCanonical as exc:
        raise BadRequest(f"params are not canonical JSON: {exc}") from exc


class _Step:
    """One intent's run bookkeeping and the events written together: `add` queues one,
    `flush` writes the queue with one `AuditLog.append_many` (one lock, one os.write). The
    flow flushes before every await and before the broker runs, so the log holds the same
    events in the same order as one append each, and every event still reaches disk (group
    commit) before the agent hears. `status` and `refused` decide how a one-shot run ends."""

    __slots__ = (
        "audit",
        "intent_id",
        "one_shot",
        "pending",
        "refused",
        "run_id",
        "session_id",
        "status",
    )

    def __init__(self, audit: Any, session_id: str, run_id: str, one_shot: bool) -> None:
        self.audit = audit
        self.session_id = session_id
        self.run_id = run_id
        self.one_shot = one_shot
        self.intent_id = ""
        self.status = "ok"
        self.refused = False
        self.pending: list[tuple[str, str | None, str | None, dict[str, Any]]] = []

    def add(self, etype: str, data: dict[str, Any]) -> None:
        self.pending.append((etype, self.session_id, self.run_id, data))

    def flush(self) -> list[dict[str, Any]]:
        """Write what is queued; returns the events written (none when nothing was)."""
        if not self.pending:
            return []
        specs, self.pending = self.pending, []
        written: list[dict[str, Any]] = self.audit.append_many(specs)
        return written

    @property
    def ref(self) -> dict[str, str]:
        return {"run_id": self.run_id, "intent_id": self.intent_id}


class _IntentRun:
    """`async with`: the one place an intent's run ends, submitted or decided. On the way out
    a failure sets the step's status (denied for a denial code, else error) and names the run
    and intent in a TalonError's details; then a one-shot run gets its `run.finished` (unless
    refused before anything was logged), the step is flushed and made durable, and the engine
    is told when it went idle."""

    __slots__ = ("flow", "step")

    def __init__(self, flow: IntentFlow, step: _Step) -> None:
        self.flow = flow
        self.step = step

    async def __aenter__(self) -> _Step:
        return self.step

    async def __aexit__(self, etype: Any, exc: BaseException | None, tb: Any) -> None:
        step, flow = self.step, self.flow
        if isinstance(exc, TalonError):
            if step.status == "ok":
                step.status = "denied" if exc.code in _DENIAL_CODES else "error"
            exc.details.setdefault("run_id", step.run_id)
            exc.details.setdefault("intent_id", step.intent_id)
        elif exc is not None:
            step.status = "error"
        flow._active -= 1
        if step.one_shot and not step.refused:
            step.add("run.finished", {"status": step.status, "steps": 1})
        step.flush()
        await flow.durable()
        if flow._active == 0:
            flow._idle.set()


class IntentFlow(EngineHost):
    """Mixed into `Engine`: runs and intents from agents (and from skills' answers).

    What the flow uses of its host is declared here and in `EngineHost`, so this module needs
    no import of `engine.py` (the Engine sets these attributes and defines these methods)."""

    bus: EventBus
    approvals: ApprovalQueue
    runs: RunProjection
    max_output_bytes: int
    _active: int
    _idle: asyncio.Event
    tools: ToolScheduler
    approval_limits: ApprovalLimits
    approval_load: dict[str, list[int]]
    _refused: Aggregator

    if TYPE_CHECKING:

        def _session(self, session_id: str, *, open_only: bool = False) -> Session: ...

    async def begin_run(self, session_id: str, subject: str, content: str = "") -> str:
        """Open a run in the session; returns its id."""
        self._session(session_id, open_only=True)
        if not isinstance(content, str) or len(content) > MAX_CONTENT_CHARS:
            raise BadRequest(f"content must be a string of at most {MAX_CONTENT_CHARS} characters")
        run_id = ids.new_id("run")
        content, _ = self.store.redactor(content)
        self._record(
            "run.started",
            {"subject": subject, "content": content, "one_shot": False},
            session_id=session_id,
            run_id=run_id,
        )
        await self.durable()
        return run_id

    def _own_run(self, session_id: str, run_id: Any) -> Any:
        if not isinstance(run_id, str):
            raise BadRequest("run_id must be a string")
        run = self.runs.get(run_id)
        if run is None:
            raise NotFound(f"no running run {run_id!r}", details={"run_id": run_id})
        if run.session_id != session_id:
            raise Forbidden(
                f"run {run_id!r} belongs to another session", details={"run_id": run_id}
            )
        if run.status != "running":
            raise BadRequest(f"run {run_id!r} is already {run.status}", details={"run_id": run_id})
        return run

    async def end_run(
        self, session_id: str, subject: str, run_id: str, status: str = "ok"
    ) -> dict[str, Any]:
        """Finish a run of the session; returns `{run_id, status, steps}`."""
        if not isinstance(status, str) or not RUN_STATUS_RE.match(status):
            raise BadRequest("status must be a short lowercase word such as ok or error")
        run = self._own_run(session_id, run_id)
        steps = run.steps
        self._record(
            "run.finished", {"status": status, "steps": steps}, session_id=session_id, run_id=run_id
        )
        await self.durable()
        return {"run_id": run_id, "status": status, "steps": steps}

    async def submit(
        self,
        session_id: str,
        subject: str,
        intent: ToolIntent,
        run_id: str | None = None,
        *,
        _depth: int = 0,
    ) -> dict[str, Any]:
        """Decide and (if allowed) execute one intent; returns `{run_id, intent_id, decision,
        result}` or raises a TalonError (PolicyDenied, ApprovalDenied/Timeout as codes, ...)."""
        if not self.started:
            raise TalonError("the engine is not running", code=ErrorCode.INTERNAL)
        session = self._session(session_id, open_only=True)
        ih = canonical_intent_hash(intent.tool, intent.params)
        async with self._intent_run(session_id, subject, run_id) as step:
            decision = await self._judge(
                step,
                session,
                subject,
                intent,
                intent.tool,
                intent.params,
                ih,
                lambda: policy_engine.evaluate(
                    intent, self.store.policy(session_id), workspace=session.workspace
                ),
            )
            result = await self._execute(session, subject, intent, ih, decision, step, _depth)
            return {
                "run_id": step.run_id,
                "intent_id": step.intent_id,
                "decision": "ALLOW",
                "result": result,
            }

    def _intent_run(self, session_id: str, subject: str, run_id: str | None) -> _IntentRun:
        """Open the run of one intent: a one-shot run (`run.started` queued) when `run_id` is
        None, else the caller's own running run; the intent gets its id."""
        one_shot = run_id is None
        if run_id is None:
            run_id = ids.new_id("run")
        else:
            self._own_run(session_id, run_id)
        step = _Step(self.audit, session_id, run_id, one_shot)
        if one_shot:
            step.add("run.started", {"subject": subject, "content": "", "one_shot": True})
        step.intent_id = ids.new_id("int")
        self._active += 1
        return _IntentRun(self, step)

    async def _judge(
        self,
        step: _Step,
        session: Session,
        subject: str,
        intent: ToolIntent | None,
        tool: str,
        params: dict[str, Any],
        ih: str,
        verdict: Callable[[], Decision],
        mark: dict[str, Any] | None = None,
    ) -> Decision:
        """The policy's part of one intent, for `submit` and for the hooks' `decide` alike:
        `policy.intent.received`, the verdict, `policy.decision` (with `mark` in both), then
        a denial raised with the decision's audit seq, or an approval waited for (within the
        pending-approval caps). Returns the decision that allows it."""
        mark = mark or {}
        session_id, intent_id = session.id, step.intent_id
        params_rec, _ = self.store.redactor(params)
        step.add(
            "policy.intent.received",
            {
                "intent_id": intent_id,
                "subject": subject,
                "tool": tool,
                "params": params_rec,
                "origin": intent.origin if intent is not None else "agent",
                "intent_hash": ih,
                **mark,
            },
        )
        decision = verdict()
        denied = decision.decision == "DENY"
        # a reason or fix quoting a secret's value would log it: redacted, no such fix
        decision.reason, _ = self.store.redactor(decision.reason)
        if decision.suggested_fix and self.store.redactor(decision.suggested_fix)[1]:
            decision.suggested_fix = None
        step.add(
            "policy.decision",
            {
                "intent_id": intent_id,
                "tool": tool,
                "decision": decision.decision,
                "reason": decision.reason,
                "by": "policy",
                "override_index": decision.override_index,
                "suggested_fix": jsonable(decision.suggested_fix),
                "code": (decision.code or str(ErrorCode.POLICY_DENIED)) if denied else None,
                **mark,
            },
        )
        if denied:
            step.status = "denied"
            denial = (
                ConstraintViolation
                if decision.code == ErrorCode.CONSTRAINT_VIOLATION
                else PolicyDenied
            )
            decided = step.flush()[-1]  # the policy.decision: its seq goes to the agent
            raise denial(
                f"{tool} denied: {decision.reason}",
                details={
                    **step.ref,
                    "reason": decision.reason,
                    "suggested_fix": jsonable(decision.suggested_fix),
                    "audit_seq": decided["seq"],
                },
            )
        if decision.decision == "REQUIRE_APPROVAL":
            if intent is None:  # only a Talon tool's intent can be shown for approval
                raise TalonError(f"{tool} cannot wait for an approval", code=ErrorCode.INTERNAL)
            size = len(canonical(params))
            refusal = self._approval_refusal(session_id, subject, size)
            if refusal is not None:
                # refused before anything is logged or queued: one aggregated event
                step.pending.clear()
                step.refused = True
                self._refused.note((session_id, subject), {"tool": tool, "reason": refusal})
                raise RateLimited(refusal, details={"reason": refusal})
            step.flush()
            self._hold_approval(session_id, subject, size, 1)
            try:
                decision = await self._await_approval(
                    session, subject, intent, params_rec, decision, intent_id, step.run_id
                )
            finally:
                self._hold_approval(session_id, subject, size, -1)
        return decision

    def _approval_refusal(self, session_id: str, subject: str, params_bytes: int) -> str | None:
        """Why one more pending approval of this session and agent is over the caps, or None."""
        limits = self.approval_limits
        s_count, s_bytes = self.approval_load.get(session_id, (0, 0))
        a_count, _ = self.approval_load.get(subject, (0, 0))
        if s_count >= limits.per_session:
            return f"this session already has {s_count} intents waiting for an approval"
        if a_count >= limits.per_agent:
            return f"this agent already has {a_count} intents waiting for an approval"
        if s_bytes + params_bytes > limits.params_bytes_per_session:
            return (
                f"the params of this session's intents waiting for an approval would exceed "
                f"{limits.params_bytes_per_session} bytes"
            )
        return None

    def _hold_approval(self, session_id: str, subject: str, params_bytes: int, sign: int) -> None:
        for key, size in ((session_id, params_bytes), (subject, 0)):
            load = self.approval_load.setdefault(key, [0, 0])
            load[0] += sign
            load[1] += sign * size
            if load[0] <= 0:
                del self.approval_load[key]

    def _record_refused(
        self,
        key: Any,
        count: int,
        details: dict[str, Any],
        tally: dict[str, dict[str, int]],
    ) -> None:
        """The aggregated audit event for intents refused at the approval caps."""
        if not self.started:
            return
        session_id, subject = key
        self._record(
            "approval.refused",
            {
                "subject": subject,
                "count": count,
                "code": str(ErrorCode.RATE_LIMITED),
                "tool": details.get("tool"),
                "tools": tally.get("tool", {}),
                "reason": details.get("reason"),
            },
            session_id=session_id,
        )

    async def _await_approval(
        self,
        session: Session,
        subject: str,
        intent: ToolIntent,
        params_rec: dict[str, Any],
        decision: Decision,
        intent_id: str,
        run_id: str,
    ) -> Decision:
        """Wait for the operator; returns the decision of the *current* policy (judged again
        after the approval, so its constraints and ttl are the ones the token gets)."""
        remembered = self.remembered_for(session.id, intent)
        run = self.runs.get(run_id)
        request = self.approvals.open(
            session_id=session.id,
            run_id=run_id,
            subject=subject,
            tool=intent.tool,
            params=params_rec,
            origin=intent.origin,
            intent_id=intent_id,
            reason=decision.reason,
            remember_override=jsonable(remembered.override) if remembered else None,
            intent=intent,
            run_content=run.content if run is not None else "",
        )
        self._record(
            "approval.requested",
            {
                "approval_id": request.approval_id,
                "intent_id": intent_id,
                "tool": intent.tool,
                "params": params_rec,
                "origin": intent.origin,
                "subject": subject,
                "expires": request.expires,
            },
            session_id=session.id,
            run_id=run_id,
        )
        self.bus.publish("approval", {"action": "requested", "approval": request.model_dump()})
        await self.durable()
        try:
            with parked():
                outcome = await self.approvals.wait(request.approval_id)
        except asyncio.CancelledError:
            # the agent went away (or the engine is stopping): nobody waits for a decision
            self._expire_approval(request, intent_id, AGENT_CANCEL, False, session.id, run_id)
            raise
        if outcome.by not in ("operator", "policy"):  # those two were recorded by the decider
            self._expire_approval(
                request, intent_id, outcome.by, outcome.timed_out, session.id, run_id
            )
        current = decision
        by = "operator"
        if outcome.allow:
            # the policy may have changed since the decision: judge the intent again now, with
            # no await before the token is issued from what this returns
            current = self.judge_waiting(session.id, intent)
            if current.decision == "DENY":
                outcome = ApprovalOutcome(False, False, "policy", reason=current.reason)
        if outcome.by == "policy":
            by = "policy"
            code: ErrorCode | None = ErrorCode.POLICY_DENIED
            reason = "approval withdrawn: " + outcome.reason
        else:
            code = (
                None
                if outcome.allow
                else (
                    ErrorCode.APPROVAL_TIMEOUT if outcome.timed_out else ErrorCode.APPROVAL_DENIED
                )
            )
            reason = {
                (True, "operator"): "approved by the operator",
                (False, "operator"): "denied by the operator",
                (False, "timeout"): "no operator decision before the approval timed out",
                (False, "shutdown"): "the engine stopped before an operator decided",
                (False, AGENT_CANCEL): "withdrawn by the agent before an operator decided",
            }[(outcome.allow, outcome.by)]
        event = self._record(
            "policy.decision",
            {
                "intent_id": intent_id,
                "tool": intent.tool,
                "decision": "ALLOW" if code is None else "DENY",
                "reason": reason,
                "by": by,
                "override_index": current.override_index,
                "suggested_fix": None,
                "code": str(code) if code else None,
            },
            session_id=session.id,
            run_id=run_id,
        )
        if code is not None:
            raise TalonError(
                f"{intent.tool} not approved: {reason}",
                code=code,
                details={
                    "approval_id": request.approval_id,
                    "reason": reason,
                    "audit_seq": event["seq"],
                },
            )
        return current

    def remembered_for(
        self, session_id: str, intent: ToolIntent
    ) -> policy_engine.Remembered | None:
        """What "approve and remember" would add under the current policy; None when nothing
        can be remembered, including when the override would carry a secret's value (policy
        documents are shown and logged unredacted): then the operator approves once."""
        session = self.store.get_session(session_id)
        if session is None:
            return None
        remembered = policy_engine.remember_override(
            intent, self.store.policy(session_id), workspace=session.workspace
        )
        if remembered is None or self.store.redactor(remembered.override)[1]:
            return None
        return remembered

    def judge_waiting(self, session_id: str, intent: ToolIntent) -> Decision:
        """The current policy's decision on a waiting intent (DENY once its session closed)."""
        session = self.store.get_session(session_id)
        if session is None or session.status != "open":
            return Decision(decision="DENY", reason=f"session {session_id} is closed")
        decision = policy_engine.evaluate(
            intent, self.store.policy(session_id), workspace=session.workspace
        )
        reason, _ = self.store.redactor(decision.reason)
        if decision.decision == "DENY":
            reason = f"the current policy denies it: {reason}"
        return decision.model_copy(update={"reason": reason, "suggested_fix": None})

    def _expire_approval(
        self,
        request: Any,
        intent_id: str,
        by: str,
        timed_out: bool,
        session_id: str,
        run_id: str | None,
    ) -> None:
        """Record a waiting intent that no operator allowed (timeout, shutdown, agent gone)."""
        self._record(
            "approval.decided",
            {
                "approval_id": request.approval_id,
                "intent_id": intent_id,
                "allow": False,
                "remember": False,
                "by": by,
                "timed_out": timed_out,
                "override_added": None,
            },
            session_id=session_id,
            run_id=run_id,
        )
        self.bus.publish("approval", {"action": "expired", "approval": request.model_dump()})

    async def _execute(
        self,
        session: Session,
        subject: str,
        intent: ToolIntent,
        ih: str,
        decision: Decision,
        step: _Step,
        depth: int,
    ) -> Any:
        """Issue the token, run the broker, record the outcome. `step` holds the events not
        written yet. They are written before the broker runs any tool with an effect or an
        await (the log shows the capability before any effect of its use); a read run inline
        on the loop (INLINE_TOOLS: no await, nothing can observe the log in between) has its
        events written with its outcome, in the same order, in one write."""
        sid, ref = session.id, step.ref
        slot = None
        if intent.tool not in INLINE_TOOLS:
            # a thread of the tool pool, within this session's and agent's share, taken before
            # the token is issued (a wait in the queue must not eat the token's ttl)
            slot = self.tools.try_acquire(sid, subject)
            if slot is None:
                step.flush()  # about to wait: the log shows the decision meanwhile
                try:
                    slot = await self.tools.acquire(sid, subject)
                except RateLimited as exc:
                    self._tool_failed(exc, intent, ref, step, time.perf_counter())
                    raise
        try:
            run_id, intent_id = step.run_id, step.intent_id
            issued = self.store.issuer.issue(
                session_id=sid,
                subject=subject,
                tool=intent.tool,
                constraints=decision.constraints,
                intent_hash=ih,
                ttl_seconds=decision.ttl_seconds,
            )
            step.add(
                "capability.issued",
                {
                    "intent_id": intent_id,
                    "jti": issued.jti,
                    "token_sha256": issued.sha256,
                    "tool": intent.tool,
                    "exp": issued.exp,
                    "ttl_seconds": decision.ttl_seconds,
                },
            )
            skill = self.store.skill_for_image(intent.params.get("image"))
            if intent.tool == "docker.run" and skill is not None:
                step.add(
                    "skill.started",
                    {
                        "skill": skill.name,
                        "version": skill.version,
                        "image": skill.image,
                        "intent_id": intent_id,
                    },
                )
            if intent.tool not in INLINE_TOOLS:
                step.flush()
            started = time.perf_counter()
            try:
                raw = await self.store.execute(
                    intent, issued.token, session, subject, slot.run if slot is not None else None
                )
            except TalonError as exc:
                self._tool_failed(exc, intent, ref, step, started)
                self._skill_not_run(skill if intent.tool == "docker.run" else None, ref, step)
                raise
            except Exception as exc:  # a bug or an OS error inside a tool: audited, reported
                err = TalonError(f"{intent.tool} failed: {exc}", code=ErrorCode.INTERNAL)
                self._tool_failed(err, intent, ref, step, started)
                self._skill_not_run(skill if intent.tool == "docker.run" else None, ref, step)
                raise err from exc
            duration_ms = int((time.perf_counter() - started) * 1000)
            result, redacted = self.store.redactor(jsonable(raw))
            output, truncated, size, output_sha256 = recordable_hashed(
                result, self.max_output_bytes
            )
            produced(size)  # the reply will carry it: counted against the connection's share
            step.add(
                "tool.executed",
                {
                    "intent_id": intent_id,
                    "tool": intent.tool,
                    "status": "ok",
                    "code": None,
                    "message": "",
                    "output": output,
                    "output_sha256": output_sha256,
                    "bytes": size,
                    "truncated": truncated,
                    "redacted": redacted,
                    "duration_ms": duration_ms,
                },
            )
            if intent.tool == "docker.run" and isinstance(result, dict):
                if skill is not None:
                    step.add(
                        "skill.finished",
                        {
                            "skill": skill.name,
                            "version": skill.version,
                            "image": skill.image,
                            "intent_id": intent_id,
                            "exit_code": result.get("exit_code"),
                        },
                    )
                if depth == 0:
                    step.flush()
                    if slot is not None:
                        slot.release()  # the follow-up intents take slots of their own
                    follow = await self._follow_skill(session, subject, result, run_id)
                    if follow is not None:
                        result = {**result, "skill_intents": follow}
            return result
        finally:
            if slot is not None:
                slot.release()

    def _tool_failed(
        self,
        exc: TalonError,
        intent: ToolIntent,
        ref: dict[str, str],
        step: _Step,
        started: float,
    ) -> None:
        broker_denial = isinstance(exc, ConstraintViolation | TokenInvalid)
        message, _ = self.store.redactor(exc.message)
        if broker_denial:
            step.add(
                "policy.decision",
                {
                    "intent_id": ref["intent_id"],
                    "tool": intent.tool,
                    "decision": "DENY",
                    "reason": message,
                    "by": "broker",
                    "override_index": None,
                    "suggested_fix": None,
                    "code": str(exc.code),
                },
            )
        step.add(
            "tool.executed",
            {
                "intent_id": ref["intent_id"],
                "tool": intent.tool,
                "status": "denied" if broker_denial else "error",
                "code": str(exc.code),
                "message": message,
                "output": None,
                "output_sha256": sha256_tag(canonical(None)),
                "bytes": 0,
                "truncated": False,
                "redacted": message != exc.message,
                "duration_ms": int((time.perf_counter() - started) * 1000),
            },
        )
        exc.message = message

    def _skill_not_run(self, skill: Any, ref: dict[str, str], step: _Step) -> None:
        """Close a `skill.started` whose run was refused or failed (no exit code)."""
        if skill is None:
            return
        step.add(
            "skill.finished",
            {
                "skill": skill.name,
                "version": skill.version,
                "image": skill.image,
                "intent_id": ref["intent_id"],
                "exit_code": None,
            },
        )

    async def _follow_skill(
        self, session: Session, subject: str, result: dict[str, Any], run_id: str
    ) -> list[dict[str, Any]] | None:
        """A skill's answer may ask for tool intents: each goes through `submit` again, marked
        untrusted (origin "skill"), in the same run. Returns one outcome per intent."""
        stdout = result.get("stdout")
        if not isinstance(stdout, str):
            return None
        answer = parse_skill_answer(stdout)
        if answer is None or not isinstance(answer.get("intents"), list):
            return None
        outcomes: list[dict[str, Any]] = []
        for raw in answer["intents"][:MAX_SKILL_INTENTS]:
            try:
                if not isinstance(raw, dict) or set(raw) - {"tool", "params"}:
                    raise BadRequest("a skill intent must be an object {tool, params}")
                intent = ToolIntent.model_validate(
                    {"tool": raw.get("tool"), "params": raw.get("params") or {}, "origin": "skill"}
                )
            except (BadRequest, ValueError) as exc:
                outcomes.append({"ok": False, "error": BadRequest(str(exc)).to_wire()})
                continue
            try:
                done = await self.submit(session.id, subject, intent, run_id, _depth=1)
                outcomes.append({"ok": True, "tool": intent.tool, **done})
            except TalonError as exc:
                outcomes.append({"ok": False, "tool": intent.tool, "error": exc.to_wire()})
        if len(answer["intents"]) > MAX_SKILL_INTENTS:
            outcomes.append(
                {
                    "ok": False,
                    "error": BadRequest(
                        f"only the first {MAX_SKILL_INTENTS} intents of a skill answer are followed"
                    ).to_wire(),
                }
            )
        return outcomes


_DENIAL_CODES = {
    ErrorCode.POLICY_DENIED,
    ErrorCode.CONSTRAINT_VIOLATION,
    ErrorCode.APPROVAL_DENIED,
    ErrorCode.APPROVAL_TIMEOUT,
    ErrorCode.TOKEN_INVALID,
}
