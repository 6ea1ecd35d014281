"""Safe replay and what-if simulation, read from the audit log only (nothing executes).

`replay` rebuilds a run's timeline from the log through the index, checks each recorded tool
output against its recorded `output_sha256`, and reports whether the whole chain verifies (a
run in the middle of a valid log is valid). Given another policy, it marks the decisions that
policy would change. `simulate` does the same re-evaluation for a whole session or run and
lists only the changes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from pydantic import ValidationError

from ..api import ReplayResult, ReplayStep, SimulationChange
from ..core.canon import NotCanonical, canonical, sha256_tag
from ..errors import BadRequest, NotFound
from ..policy.models import Policy, ToolIntent, parse_policy
from .index import KEY_FROM_DATA_DIR, AuditIndex, read_indexed
from .verify import verify_log


def output_digest(output: Any) -> str | None:
    """`sha256:` + hex of the canonical output, or None if it has no canonical form."""
    try:
        return sha256_tag(canonical(output))
    except NotCanonical:
        return None


def _as_policy(policy: Policy | dict[str, Any] | None) -> Policy | None:
    if policy is None or isinstance(policy, Policy):
        return policy
    return parse_policy(policy)


def judge_recorded(
    event: dict[str, Any], policy: Policy, workspace: str | None
) -> tuple[str, str, int | None]:
    """(decision, reason, override index) that `policy` gives a recorded
    `policy.intent.received`: the one reading of a recorded intent that run replay and session
    replay both use, so a what-if never differs between them. A recorded intent that is not
    valid is DENY, as the engine would decide it."""
    from ..policy.evaluate import (
        evaluate,  # imported on use: replay without a policy needs no evaluator
    )

    data: Any = event.get("data") or {}
    try:
        intent = ToolIntent(
            tool=data.get("tool"),
            params=data.get("params") or {},
            origin=data.get("origin") or "agent",
        )
    except ValidationError as exc:
        return "DENY", f"the recorded intent is not valid: {exc.errors()[0]['msg']}", None
    decision = evaluate(intent, policy, workspace=workspace)
    return decision.decision, decision.reason, decision.override_index


def recorded_change(
    intent_ev: dict[str, Any], before: str, policy: Policy, workspace: str | None
) -> tuple[SimulationChange | None, int | None]:
    """The change `policy` makes to a recorded decision (`before`) of a recorded intent, or
    None when it decides the same; with the index of the override that decides it now."""
    after, why, override = judge_recorded(intent_ev, policy, workspace)
    if after == before:
        return None, override
    data = intent_ev.get("data") or {}
    change = SimulationChange(
        seq=intent_ev["seq"],
        run_id=intent_ev.get("run_id"),
        tool=str(data.get("tool")),
        params=data.get("params") or {},
        before=before,
        after=after,
        reason=why,
    )
    return change, override


def _workspace(index: AuditIndex, session_id: str | None) -> str | None:
    if session_id is None:
        return None
    seqs = index.seqs_for(session_id=session_id)[:50]
    for event in index.events(seqs, session_id=session_id):
        if event.get("type") == "session.created":
            ws = (event.get("data") or {}).get("workspace")
            return ws if isinstance(ws, str) else None
    return None


def _split_args(args: tuple[Any, ...], public_key: Ed25519PublicKey | None) -> tuple[Any, Any]:
    """Accept both `(public_key, run_id)` and `(run_id,)` with `public_key=`."""
    if len(args) == 2 and public_key is None:
        return args[0], args[1]
    if len(args) == 1:
        return public_key, args[0]
    raise TypeError(
        "replay(audit_dir, public_key, run_id) or replay(audit_dir, run_id, public_key=)"
    )


def replay(
    audit_dir: Path,
    *args: Any,
    policy: Policy | dict[str, Any] | None = None,
    public_key: Ed25519PublicKey | None = None,
    index_key: Any = KEY_FROM_DATA_DIR,
    on_index_rebuild: Callable[[str], None] | None = None,
) -> ReplayResult:
    """The timeline of `run_id` as recorded, with outputs checked and the chain verified.

    Called as `replay(audit_dir, public_key, run_id)` or `replay(audit_dir, run_id,
    public_key=key)`. Raises NotFound for a run the log does not know. Events are read
    through the index and each one checked (`index.read_indexed`).
    """
    public_key, run_id = _split_args(args, public_key)
    what_if = _as_policy(policy)

    def read(index: AuditIndex) -> tuple[list[dict[str, Any]], str | None]:
        seqs = index.seqs_for(run_id=run_id)
        if not seqs:
            raise NotFound(f"no run {run_id} in the audit log", details={"run_id": run_id})
        events = list(index.events(seqs, run_id=run_id))
        sid = next((e.get("session_id") for e in events if e.get("session_id")), None)
        return events, _workspace(index, sid) if what_if is not None else None

    events, workspace = read_indexed(audit_dir, read, key=index_key, on_rebuild=on_index_rebuild)
    report = verify_log(audit_dir, public_key)
    session_id = next((e.get("session_id") for e in events if e.get("session_id")), None)

    steps: list[ReplayStep] = []
    intents: dict[str, dict[str, Any]] = {}
    judged: set[str] = set()
    changed: list[int] = []
    for ev in events:
        data: Any = ev.get("data") or {}
        etype = ev.get("type", "")
        step = ReplayStep(seq=ev.get("seq", -1), ts=ev.get("ts", ""), type=etype)
        step.tool = data.get("tool")
        if data.get("executor") == "agent":
            step.executor = "agent"
        if etype in ("policy.intent.received", "approval.requested"):
            step.params = data.get("params")
            if etype == "policy.intent.received" and isinstance(data.get("intent_id"), str):
                intents[data["intent_id"]] = ev
        elif etype == "policy.decision":
            step.decision, step.reason = data.get("decision"), data.get("reason")
            intent_ev = intents.get(data.get("intent_id"))
            first_policy_verdict = data.get("by", "policy") == "policy" and (
                data.get("intent_id") not in judged
            )
            if what_if is not None and intent_ev is not None and first_policy_verdict:
                judged.add(data["intent_id"])
                after, why, _override = judge_recorded(intent_ev, what_if, workspace)
                step.what_if_decision = after
                if after != step.decision:
                    step.changed_by_policy = True
                    changed.append(step.seq)
                    step.reason = f"{step.reason} | with the other policy: {why}"
        elif etype == "approval.decided":
            step.decision = "ALLOW" if data.get("allow") else "DENY"
            step.reason = "timed out" if data.get("timed_out") else f"decided by {data.get('by')}"
        elif etype == "capability.issued":
            step.token_sha256 = data.get("token_sha256")
        elif etype == "tool.executed":
            step.output = data.get("output")
            step.output_sha256 = data.get("output_sha256")
            step.output_matches = output_digest(step.output) == step.output_sha256
            step.reason = data.get("message") or data.get("status")
        elif etype == "tool.reported":
            # run by the agent: Talon holds the output's sha256 as reported, not the output
            step.tool = data.get("native")
            step.output_sha256 = data.get("output_sha256")
            step.reason = f"reported by the agent: {data.get('status')}"
        steps.append(step)
    return ReplayResult(
        run_id=run_id,
        session_id=session_id,
        chain_valid=report.valid,
        chain_first_bad_seq=report.first_bad_seq,
        steps=steps,
        changed_by_policy=changed if what_if is not None else None,
    )


def _decisions(events: Iterator[dict[str, Any]]) -> Iterator[tuple[dict[str, Any], str]]:
    """(intent event, the policy's recorded decision) for each recorded intent."""
    intents: dict[str, dict[str, Any]] = {}
    for ev in events:
        data = ev.get("data") or {}
        iid = data.get("intent_id")
        if ev.get("type") == "policy.intent.received" and isinstance(iid, str):
            intents[iid] = ev
        elif ev.get("type") == "policy.decision" and data.get("by", "policy") == "policy":
            intent_ev = intents.pop(iid, None) if isinstance(iid, str) else None
            if intent_ev is not None:
                yield intent_ev, str(data.get("decision"))


def simulate(
    audit_dir: Path,
    *args: Any,
    session_id: str | None = None,
    run_id: str | None = None,
    index_key: Any = KEY_FROM_DATA_DIR,
    on_index_rebuild: Callable[[str], None] | None = None,
) -> list[SimulationChange]:
    """Each recorded decision that `policy` would change, for a session or a run.

    Called as `simulate(audit_dir, target_id, policy)` (a session or run id) or
    `simulate(audit_dir, policy, session_id=…)` / `run_id=…`. Nothing executes.
    """
    if len(args) == 2:
        target, policy = args
    elif len(args) == 1:
        target, policy = None, args[0]
    else:
        raise TypeError("simulate(audit_dir, target_id, policy) or simulate(audit_dir, policy, …)")
    parsed = _as_policy(policy)
    if parsed is None:
        raise BadRequest("simulate needs a policy")

    def read(index: AuditIndex) -> tuple[list[tuple[dict[str, Any], str]], str | None]:
        sid, rid = session_id, run_id
        if target is not None:
            if target in index.runs:
                rid = target
            elif target in index.sessions:
                sid = target
            else:
                raise NotFound(f"no session or run {target} in the audit log")
        if sid is None and rid is None:
            raise BadRequest("simulate needs a session_id or a run_id")
        seqs = index.seqs_for(run_id=rid, session_id=sid)
        if not seqs:
            raise NotFound(f"no events for {'run ' + rid if rid else 'session ' + str(sid)}")
        events = list(index.events(seqs, run_id=rid, session_id=sid))
        workspace = _workspace(index, sid or events[0].get("session_id"))
        return list(_decisions(iter(events))), workspace

    decisions, workspace = read_indexed(audit_dir, read, key=index_key, on_rebuild=on_index_rebuild)
    changes: list[SimulationChange] = []
    for intent_ev, before in decisions:
        change, _override = recorded_change(intent_ev, before, parsed, workspace)
        if change is not None:
            changes.append(change)
    return changes
