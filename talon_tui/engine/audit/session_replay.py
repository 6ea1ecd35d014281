"""A whole session on one time axis, and two runs side by side, read from the log (nothing
executes).

Everything is read through the index and never holds the session's events in memory: the
runs come from the index's per-run seq lists (two events read per run), policy changes and
the jump lists from one pass over the session's lines that parses only lines whose raw bytes
name a type of interest (each parsed line is then checked as `AuditIndex.events` checks it),
and the step markers only for the window [from_seq, to_seq) asked for. The what-if is one
streaming pass that keeps only the intents still waiting for their decision.
"""

from __future__ import annotations

import bisect
import difflib
import json
import re
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson

from ..api import (
    PolicyChange,
    RunComparison,
    RunLane,
    RunStepDiff,
    SessionTimeline,
    SimulationChange,
    TimelineMarker,
    WhatIfGroup,
)
from ..errors import NotFound
from ..policy.models import Policy, ToolIntent
from .index import KEY_FROM_DATA_DIR, AuditIndex, read_indexed
from .replay import output_digest

#: the most seqs kept in each jump list
JUMPS_MAX = 100_000
#: the most markers one call returns
MARKERS_MAX = 50_000


def target_of(params: Any) -> str:
    """The one param that says what an intent touches (path, url, image, argv)."""
    if not isinstance(params, dict):
        return ""
    for key in ("path", "url", "image", "argv"):
        if key in params:
            value = params[key]
            return " ".join(str(v) for v in value) if isinstance(value, list) else str(value)
    return ""


def ms_between(a: str, b: str) -> int | None:
    try:
        da = datetime.fromisoformat(a.replace("Z", "+00:00"))
        db = datetime.fromisoformat(b.replace("Z", "+00:00"))
    except ValueError:
        return None
    return int((db - da).total_seconds() * 1000)


def _policy_lines(doc: Any) -> list[str]:
    return json.dumps(doc, indent=2, sort_keys=True, ensure_ascii=False).splitlines()


_WANTED = re.compile(
    rb'"type":"(?:policy\.updated|approval\.decided|session\.created)"|"decision":"DENY"'
)
_BLOCK = 8 << 20


def _raw_scan(index: AuditIndex, seqs: Any, session_id: str) -> Iterator[dict[str, Any]]:
    """The session's events that may be a policy change, an approval's end, the session's
    start or a denial: one regex over the log in 8 MiB blocks from the session's first event,
    so only the lines it hits are parsed (each then checked by the index, its type and
    session read again by the caller)."""
    if not seqs:
        return
    members = set(seqs) if len(seqs) < len(index.offsets) else None
    last_end = index.offsets[seqs[-1]]
    with open(index.log, "rb") as fh:
        base = index.offsets[seqs[0]]
        fh.seek(base)
        carry = b""
        while base <= last_end:
            block = fh.read(_BLOCK)
            if not block:
                break
            data = carry + block
            cut = data.rfind(b"\n") + 1
            if cut == 0:
                carry = data
                continue
            seen = -1
            for m in _WANTED.finditer(data, 0, cut):
                start = data.rfind(b"\n", 0, m.start()) + 1
                if start <= seen:
                    continue  # this line was already taken
                seen = start
                end = data.index(b"\n", m.start())
                try:
                    ev = orjson.loads(data[start:end])
                except orjson.JSONDecodeError:
                    continue
                seq = ev.get("seq") if isinstance(ev, dict) else None
                if not isinstance(seq, int) or ev.get("session_id") != session_id:
                    continue
                if members is not None and seq not in members:
                    continue
                yield next(index.events([seq], session_id=session_id))
            base += cut
            carry = data[cut:]


def _runs(index: AuditIndex, session_id: str, seqs: Any) -> list[RunLane]:
    """The session's runs from the index's per-run lists: each run's first and last event are
    read (in one pass over the file, each checked), never the events between."""
    if not seqs:
        return []
    first, last = seqs[0], seqs[-1]
    members = set(seqs)
    runs = [
        (run_id, run_seqs)
        for run_id, run_seqs in index.runs.items()
        if run_seqs and first <= run_seqs[0] <= last and run_seqs[0] in members
    ]
    runs.sort(key=lambda r: r[1][0])
    ends = [s for _rid, run_seqs in runs for s in (run_seqs[0], run_seqs[-1])]
    events = index.events(ends, session_id=session_id)
    lanes: list[RunLane] = []
    for run_id, run_seqs in runs:
        head, tail = next(events), next(events)
        if head.get("run_id") != run_id or tail.get("run_id") != run_id:
            continue  # the run's ends are not this run's: the index is stale, the log rules
        done = tail.get("type") == "run.finished"
        lanes.append(
            RunLane(
                run_id=run_id,
                started=str(head.get("ts", "")),
                finished=str(tail.get("ts")) if done else None,
                status=str((tail.get("data") or {}).get("status", "?")) if done else "running",
                first_seq=run_seqs[0],
                last_seq=run_seqs[-1],
                events=len(run_seqs),
            )
        )
    return lanes


def _marker(ev: dict[str, Any], waiting: dict[str, str]) -> TimelineMarker | None:
    etype, data = ev.get("type"), ev.get("data") or {}
    base = {"seq": ev.get("seq", -1), "ts": ev.get("ts", ""), "run_id": ev.get("run_id")}
    if etype == "policy.decision":
        decision = str(data.get("decision"))
        kind: Any = "denial" if decision == "DENY" else "decision"
        return TimelineMarker(
            **base,
            kind=kind,
            tool=data.get("tool"),
            decision=decision,
            text=str(data.get("reason") or ""),
        )
    if etype == "approval.requested":
        waiting[str(data.get("approval_id"))] = str(ev.get("ts", ""))
        return None
    if etype == "approval.decided":
        asked = waiting.pop(str(data.get("approval_id")), None)
        by = "timed out" if data.get("timed_out") else f"by {data.get('by')}"
        return TimelineMarker(
            **base,
            kind="approval",
            decision="ALLOW" if data.get("allow") else "DENY",
            wait_ms=ms_between(asked, base["ts"]) if asked else None,
            text=by,
        )
    if etype == "tool.executed":
        return TimelineMarker(
            **base,
            kind="execution",
            tool=data.get("tool"),
            status=data.get("status"),
            duration_ms=data.get("duration_ms")
            if isinstance(data.get("duration_ms"), int)
            else None,
            output_matches=output_digest(data.get("output")) == data.get("output_sha256"),
            text=str(data.get("message") or data.get("status") or ""),
        )
    if etype == "policy.updated":
        return TimelineMarker(**base, kind="policy", text=f"policy set by {data.get('actor')}")
    if etype == "policy.intent.received":
        waiting[f"intent:{data.get('intent_id')}"] = target_of(data.get("params"))
    return None


def _what_if(
    index: AuditIndex, session_id: str, seqs: Any, policy: Policy, workspace: str | None
) -> list[WhatIfGroup]:
    from ..policy.evaluate import evaluate  # imported on use: a timeline needs no evaluator

    groups: dict[str, list[SimulationChange]] = {}
    intents: dict[str, dict[str, Any]] = {}
    for ev in index.events(seqs, session_id=session_id):
        data = ev.get("data") or {}
        iid = data.get("intent_id")
        if ev.get("type") == "policy.intent.received" and isinstance(iid, str):
            intents[iid] = ev
            continue
        if ev.get("type") != "policy.decision" or data.get("by", "policy") != "policy":
            continue
        intent_ev = intents.pop(iid, None) if isinstance(iid, str) else None
        if intent_ev is None:
            continue
        idata: Any = intent_ev.get("data") or {}
        try:
            intent = ToolIntent(
                tool=idata.get("tool"),
                params=idata.get("params") or {},
                origin=idata.get("origin") or "agent",
            )
        except ValueError:
            continue  # the recorded intent was never valid: no policy decides it otherwise
        after = evaluate(intent, policy, workspace=workspace)
        before = str(data.get("decision"))
        if after.decision == before:
            continue
        idx = after.override_index
        key = (
            f"override #{idx} {policy.overrides[idx].tool}"
            if idx is not None and 0 <= idx < len(policy.overrides)
            else "no override (deny by default)"
        )
        groups.setdefault(key, []).append(
            SimulationChange(
                seq=intent_ev["seq"],
                run_id=intent_ev.get("run_id"),
                tool=str(idata.get("tool")),
                params=idata.get("params") or {},
                before=before,
                after=after.decision,
                reason=after.reason,
            )
        )
    return [WhatIfGroup(override=k, changes=v) for k, v in sorted(groups.items())]


def session_timeline(
    audit_dir: Path,
    session_id: str,
    *,
    policy: Policy | None = None,
    from_seq: int = 0,
    to_seq: int | None = None,
    max_markers: int = 2000,
    summary: bool = True,
    index_key: Any = KEY_FROM_DATA_DIR,
    on_index_rebuild: Callable[[str], None] | None = None,
) -> SessionTimeline:
    """The session's runs, policy changes, jump lists and the markers of one window; with
    `summary=False` only the window's markers (runs, policies and jumps left empty)."""
    max_markers = max(1, min(int(max_markers), MARKERS_MAX))

    def read(index: AuditIndex) -> SessionTimeline:
        seqs = index.sessions.get(session_id)
        if not seqs:
            raise NotFound(f"no session {session_id} in the audit log")
        out = SessionTimeline(session_id=session_id, events=len(seqs))
        ends = list(index.events([seqs[0], seqs[-1]], session_id=session_id))
        out.first_ts, out.last_ts = str(ends[0].get("ts")), str(ends[-1].get("ts"))
        if summary:
            out.runs = _runs(index, session_id, seqs)
        previous: Any = None
        workspace: str | None = None
        denials: list[int] = []
        approvals: list[int] = []
        for ev in _raw_scan(index, seqs, session_id) if summary or policy else ():
            etype, data = ev.get("type"), ev.get("data") or {}
            if etype == "session.created":
                ws = data.get("workspace")
                workspace = ws if isinstance(ws, str) else None
            elif etype == "policy.updated":
                doc = data.get("policy")
                before = _policy_lines(previous) if previous is not None else []
                diff = list(
                    difflib.unified_diff(
                        before, _policy_lines(doc), "before", "after", lineterm="", n=2
                    )
                )
                if previous is None:
                    diff.insert(0, "(the first policy in the log for this session: shown whole)")
                previous = doc
                out.policies.append(
                    PolicyChange(
                        seq=ev["seq"],
                        ts=str(ev.get("ts", "")),
                        policy_sha256=data.get("policy_sha256"),
                        previous_sha256=data.get("previous_sha256"),
                        actor=data.get("actor"),
                        reason=data.get("reason"),
                        diff=diff,
                    )
                )
            elif etype == "policy.decision" and data.get("decision") == "DENY":
                if len(denials) < JUMPS_MAX:
                    denials.append(ev["seq"])
            elif etype == "approval.decided" and len(approvals) < JUMPS_MAX:
                approvals.append(ev["seq"])
        if summary:
            out.jumps = {
                "denial": denials,
                "approval": approvals,
                "policy": [p.seq for p in out.policies],
            }
        else:
            out.policies = []
        start = bisect.bisect_left(seqs, from_seq)
        stop = len(seqs) if to_seq is None else bisect.bisect_left(seqs, to_seq)
        # an approval's wait starts at its request: look back from the window for open ones
        waiting: dict[str, str] = {}
        for ev in index.events(seqs[start:stop], session_id=session_id):
            marker = _marker(ev, waiting)
            if marker is None:
                continue
            if marker.kind in ("decision", "denial", "execution"):
                marker.target = waiting.get(f"intent:{(ev.get('data') or {}).get('intent_id')}")
            if len(out.markers) == max_markers:
                out.next_seq = marker.seq
                break
            out.markers.append(marker)
        if policy is not None:
            out.what_if = _what_if(index, session_id, seqs, policy, workspace)
        return out

    return read_indexed(audit_dir, read, key=index_key, on_rebuild=on_index_rebuild)


def _run_steps(index: AuditIndex, run_id: str) -> list[dict[str, Any]]:
    """One dict per intent of a run, in order: {seq, tool, target, params, decision,
    output_sha256, status}."""
    seqs = index.runs.get(run_id)
    if not seqs:
        raise NotFound(f"no run {run_id} in the audit log", details={"run_id": run_id})
    steps: dict[str, dict[str, Any]] = {}
    for ev in index.events(seqs, run_id=run_id):
        data = ev.get("data") or {}
        iid = data.get("intent_id")
        if not isinstance(iid, str):
            continue
        if ev.get("type") == "policy.intent.received":
            steps[iid] = {
                "seq": ev.get("seq"),
                "tool": str(data.get("tool")),
                "target": target_of(data.get("params")),
                "params": data.get("params") or {},
                "decision": None,
                "output_sha256": None,
                "status": None,
            }
        elif iid in steps and ev.get("type") == "policy.decision":
            steps[iid]["decision"] = data.get("decision")
        elif iid in steps and ev.get("type") == "approval.decided":
            steps[iid]["decision"] = "ALLOW" if data.get("allow") else "DENY"
        elif iid in steps and ev.get("type") == "tool.executed":
            steps[iid]["output_sha256"] = data.get("output_sha256")
            steps[iid]["status"] = data.get("status")
    return list(steps.values())


def compare_runs(
    audit_dir: Path,
    run_a: str,
    run_b: str,
    *,
    index_key: Any = KEY_FROM_DATA_DIR,
    on_index_rebuild: Callable[[str], None] | None = None,
) -> RunComparison:
    """Two runs' steps aligned by (tool, target) in order, with what differs in each pair."""

    def read(index: AuditIndex) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        return _run_steps(index, run_a), _run_steps(index, run_b)

    a, b = read_indexed(audit_dir, read, key=index_key, on_rebuild=on_index_rebuild)
    keys_a = [(s["tool"], s["target"]) for s in a]
    keys_b = [(s["tool"], s["target"]) for s in b]
    out = RunComparison(run_a=run_a, run_b=run_b)
    matcher = difflib.SequenceMatcher(a=keys_a, b=keys_b, autojunk=False)
    for op, i1, i2, j1, j2 in matcher.get_opcodes():
        if op == "equal":
            for sa, sb in zip(a[i1:i2], b[j1:j2], strict=True):
                differs = [
                    name
                    for name, key in (
                        ("decision", "decision"),
                        ("params", "params"),
                        ("output", "output_sha256"),
                    )
                    if sa[key] != sb[key]
                ]
                out.steps.append(
                    RunStepDiff(tool=sa["tool"], target=sa["target"], a=sa, b=sb, differs=differs)
                )
            continue
        for sa in a[i1:i2]:
            out.steps.append(
                RunStepDiff(tool=sa["tool"], target=sa["target"], a=sa, differs=["missing"])
            )
        for sb in b[j1:j2]:
            out.steps.append(
                RunStepDiff(tool=sb["tool"], target=sb["target"], b=sb, differs=["missing"])
            )
    return out
