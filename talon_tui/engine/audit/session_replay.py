"""A whole session on one time axis, and two runs side by side, read from the log (nothing
executes).

Everything is read through the index and never holds the session's events in memory. The
index keeps, per session, its runs in order and the seqs of its denials, approvals' ends,
policy changes and start (`AuditIndex.marked`), so a call reads only: the window of markers
[from_seq, to_seq) asked for, the first and last event of the runs around it, the session's
policy changes, and for a jump one event. Every event is checked as `AuditIndex.events`
checks it, and a marked event must be what its mark says (else the index is rebuilt from the
log and the read runs again). The what-if is one streaming pass that keeps only the intents
still waiting for their decision.
"""

from __future__ import annotations

import bisect
import difflib
import json
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

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
from ..errors import BadRequest, NotFound
from ..policy.models import Policy
from .errors import IndexMismatch
from .index import KEY_FROM_DATA_DIR, AuditIndex, IndexCache, read_indexed
from .replay import output_digest, recorded_change

#: the most markers one call returns
MARKERS_MAX = 50_000
#: lanes given either side of the runs a window spans, and the most lanes one call returns
LANE_CONTEXT = 8
LANES_MAX = 200
#: the most policy changes one call lists (those nearest the window)
POLICIES_MAX = 200
#: the longest agent or operator string in a marker or a policy change, and a diff's size
TEXT_MAX = 1000
DIFF_CHARS_MAX = 200_000
#: how far back (events of the step's run) and for how many of a window's first steps the
#: intent or approval request that began them is looked for before the window
LOOK_BACK = 64
LOOK_BACK_MARKERS = 32
#: what a jump goes to
JUMP_KINDS = ("denial", "approval", "policy")


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


def _lane(index: AuditIndex, session_id: str, run_id: str, number: int) -> RunLane:
    """One run's lane: its first and last event read (each checked), never those between."""
    run_seqs = index.runs[run_id]
    head, tail = index.events([run_seqs[0], run_seqs[-1]], run_id=run_id, session_id=None)
    if head.get("session_id") != session_id:
        raise IndexMismatch(f"the index lists run {run_id} under session {session_id}")
    done = tail.get("type") == "run.finished"
    return RunLane(
        run_id=run_id,
        number=number,
        started=str(head.get("ts", "")),
        finished=str(tail.get("ts")) if done else None,
        status=str((tail.get("data") or {}).get("status", "?")) if done else "running",
        first_seq=run_seqs[0],
        last_seq=run_seqs[-1],
        events=len(run_seqs),
    )


def _lanes(
    index: AuditIndex,
    session_id: str,
    lo: int,
    hi: int,
    window_runs: set[str | None],
    max_lanes: int = LANES_MAX,
) -> list[RunLane]:
    """The lanes of the runs that start in seqs [lo, hi] or have a step among the window's
    markers (`window_runs`), with LANE_CONTEXT runs either side in the order of their start,
    at most `max_lanes`: found by bisection in the session's run list, and only these runs'
    first and last events are read."""
    run_ids = index.runs_of(session_id)

    def first_of(run_id: str) -> int:
        return index.runs[run_id][0]

    a = bisect.bisect_left(run_ids, lo, key=first_of)
    b = bisect.bisect_right(run_ids, hi, key=first_of)
    hits = set(range(a, b))
    for run_id in window_runs:
        seqs = index.runs.get(run_id) if run_id is not None else None
        if seqs:
            i = bisect.bisect_left(run_ids, seqs[0], key=first_of)
            if i < len(run_ids) and run_ids[i] == run_id:
                hits.add(i)
    context = set(range(max(0, a - LANE_CONTEXT), min(len(run_ids), b + LANE_CONTEXT)))
    chosen = sorted(hits)[:max_lanes]
    chosen = sorted(set(chosen) | set(sorted(context - hits)[: max_lanes - len(chosen)]))
    return [_lane(index, session_id, run_ids[i], i + 1) for i in chosen]


def _policy_changes(
    index: AuditIndex, session_id: str, lo: int, hi: int, *, window_only: bool
) -> list[PolicyChange]:
    """The session's policy changes (at most POLICIES_MAX, those nearest seq `lo`; with
    `window_only` those in seqs [lo, hi]), each read and checked; the diff against the change
    before only for those in [lo, hi]."""
    seqs = index.marked(session_id, "policy")
    at = bisect.bisect_left(seqs, lo)
    if window_only:
        first = at
        chosen = seqs[at : min(bisect.bisect_right(seqs, hi), at + POLICIES_MAX)]
    else:
        first = max(0, min(at - POLICIES_MAX // 2, len(seqs) - POLICIES_MAX))
        chosen = seqs[first : first + POLICIES_MAX]
    wanted = [seqs[first - 1]] if first > 0 and chosen and lo <= chosen[0] <= hi else []
    out: list[PolicyChange] = []
    previous: Any = None
    events = index.events([*wanted, *chosen], session_id=session_id)
    for i, ev in enumerate(events):
        index.check_mark(ev, "policy")
        data = ev.get("data") or {}
        doc = data.get("policy")
        if wanted and i == 0:
            previous = doc
            continue
        change = PolicyChange(
            seq=ev["seq"],
            ts=str(ev.get("ts", "")),
            policy_sha256=_short(data.get("policy_sha256")),
            previous_sha256=_short(data.get("previous_sha256")),
            actor=_short(data.get("actor")),
            reason=_short(data.get("reason")),
        )
        if lo <= change.seq <= hi:
            change.diff = _diff(previous, doc)
        previous = doc
        out.append(change)
    return out


def _diff(previous: Any, doc: Any) -> list[str]:
    before = _policy_lines(previous) if previous is not None else []
    diff = list(
        difflib.unified_diff(before, _policy_lines(doc), "before", "after", lineterm="", n=2)
    )
    if previous is None:
        diff.insert(0, "(the first policy in the log for this session: shown whole)")
    out: list[str] = []
    used = 0
    for n, line in enumerate(diff):
        line = line if len(line) <= TEXT_MAX else line[:TEXT_MAX] + "…"
        used += len(line) + 8
        if used > DIFF_CHARS_MAX:
            out.append(f"… {len(diff) - n} more line(s) of this diff not shown")
            break
        out.append(line)
    return out


def _short(value: Any) -> Any:
    """A string kept to TEXT_MAX characters (a marker is a summary: the whole event is one
    `audit.event` away); anything else as it is."""
    if isinstance(value, str) and len(value) > TEXT_MAX:
        return value[:TEXT_MAX] + "…"
    return value


def _workspace(index: AuditIndex, session_id: str) -> str | None:
    for ev in index.events(index.marked(session_id, "created")[:1], session_id=session_id):
        index.check_mark(ev, "created")
        ws = (ev.get("data") or {}).get("workspace")
        return ws if isinstance(ws, str) else None
    return None


def _look_back(index: AuditIndex, marker: TimelineMarker, key: str) -> None:
    """Fill in what a window's step owes to an event before the window: a decision's or an
    execution's target (its intent), an approval's wait (its request). Reads back at most
    LOOK_BACK events of the step's run, each checked."""
    seqs = index.runs.get(marker.run_id) if marker.run_id else None
    if not seqs:
        return
    i = bisect.bisect_left(seqs, marker.seq)
    kind, _, wanted = key.partition(":")
    for ev in reversed(list(index.events(seqs[max(0, i - LOOK_BACK) : i], run_id=marker.run_id))):
        data = ev.get("data") or {}
        if kind == "intent" and ev.get("type") == "policy.intent.received":
            if str(data.get("intent_id")) == wanted:
                marker.target = _short(target_of(data.get("params")))
                return
        elif kind == "approval" and ev.get("type") == "approval.requested":
            if str(data.get("approval_id")) == wanted:
                marker.wait_ms = ms_between(str(ev.get("ts", "")), marker.ts)
                return


def session_marks(
    audit_dir: Path,
    session_id: str,
    *,
    index_key: Any = KEY_FROM_DATA_DIR,
    cache: IndexCache | None = None,
) -> dict[str, list[int]]:
    """The seqs of the session's denials, approvals' ends and policy changes, from the index
    (each event read and checked: the lists say what the log holds)."""

    def read(index: AuditIndex) -> dict[str, list[int]]:
        if not index.sessions.get(session_id):
            raise NotFound(f"no session {session_id} in the audit log")
        out: dict[str, list[int]] = {}
        for kind in JUMP_KINDS:
            seqs = index.marked(session_id, kind)
            for ev in index.events(seqs, session_id=session_id):
                index.check_mark(ev, kind)
            out[kind] = list(seqs)
        return out

    return read_indexed(audit_dir, read, key=index_key, cache=cache)


def session_jump(
    audit_dir: Path,
    session_id: str,
    kind: str,
    seq: int,
    direction: int,
    *,
    index_key: Any = KEY_FROM_DATA_DIR,
    on_index_rebuild: Callable[[str], None] | None = None,
    cache: IndexCache | None = None,
) -> int | None:
    """The seq of the session's next (`direction` > 0: after `seq`) or previous (before
    `seq`) mark of `kind` (denial, approval, policy), or None: one lookup in the index's
    mark list, the event found read and checked."""
    if kind not in JUMP_KINDS:
        raise BadRequest(f"jump to what? {kind!r} is none of {', '.join(JUMP_KINDS)}")

    def read(index: AuditIndex) -> int | None:
        if not index.sessions.get(session_id):
            raise NotFound(f"no session {session_id} in the audit log")
        seqs = index.marked(session_id, kind)
        if direction > 0:
            i = bisect.bisect_right(seqs, seq)
        else:
            i = bisect.bisect_left(seqs, seq) - 1
        if not 0 <= i < len(seqs):
            return None
        (ev,) = index.events([seqs[i]], session_id=session_id)
        index.check_mark(ev, kind)
        return seqs[i]

    return read_indexed(audit_dir, read, key=index_key, on_rebuild=on_index_rebuild, cache=cache)


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
            text=_short(str(data.get("reason") or "")),
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
            text=_short(by),
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
            text=_short(str(data.get("message") or data.get("status") or "")),
        )
    if etype == "policy.updated":
        return TimelineMarker(
            **base, kind="policy", text=_short(f"policy set by {data.get('actor')}")
        )
    if etype == "policy.intent.received":
        waiting[f"intent:{data.get('intent_id')}"] = _short(target_of(data.get("params")))
    return None


def _what_if(
    index: AuditIndex, session_id: str, seqs: Any, policy: Policy, workspace: str | None
) -> list[WhatIfGroup]:
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
        change, idx = recorded_change(intent_ev, str(data.get("decision")), policy, workspace)
        if change is None:
            continue
        key = (
            f"override #{idx} {policy.overrides[idx].tool}"
            if idx is not None and 0 <= idx < len(policy.overrides)
            else "no override (deny by default)"
        )
        groups.setdefault(key, []).append(change)
    return [WhatIfGroup(override=k, changes=v, total=len(v)) for k, v in sorted(groups.items())]


def session_timeline(
    audit_dir: Path,
    session_id: str,
    *,
    policy: Policy | None = None,
    from_seq: int = 0,
    to_seq: int | None = None,
    max_markers: int = 2000,
    summary: bool = True,
    max_lanes: int = LANES_MAX,
    index_key: Any = KEY_FROM_DATA_DIR,
    on_index_rebuild: Callable[[str], None] | None = None,
    cache: IndexCache | None = None,
) -> SessionTimeline:
    """The markers of the window [from_seq, to_seq) (at most `max_markers`), the lanes of the
    runs around it, the session's policy changes (the window's with their diffs) and its
    counts; with `policy`, every decision it would change. `summary=False` leaves out the
    policy changes outside the window (a further window of a timeline the caller has);
    `max_lanes` caps the lanes (a caller in process that prints every run asks for more)."""
    max_markers = max(1, min(int(max_markers), MARKERS_MAX))

    def read(index: AuditIndex) -> SessionTimeline:
        seqs = index.sessions.get(session_id)
        if not seqs:
            raise NotFound(f"no session {session_id} in the audit log")
        out = SessionTimeline(
            session_id=session_id,
            events=len(seqs),
            run_count=len(index.runs_of(session_id)),
            counts={kind: len(index.marked(session_id, kind)) for kind in JUMP_KINDS},
        )
        ends = list(index.events([seqs[0], seqs[-1]], session_id=session_id))
        out.first_ts, out.last_ts = str(ends[0].get("ts", "")), str(ends[-1].get("ts", ""))
        start = bisect.bisect_left(seqs, from_seq)
        stop = len(seqs) if to_seq is None else bisect.bisect_left(seqs, to_seq)
        waiting: dict[str, str] = {}
        before: list[tuple[TimelineMarker, str]] = []  # steps that began before the window
        for ev in index.events(seqs[start:stop], session_id=session_id):
            marker = _marker(ev, waiting)
            if marker is None:
                continue
            data = ev.get("data") or {}
            if marker.kind in ("decision", "denial", "execution"):
                key = f"intent:{data.get('intent_id')}"
                marker.target = waiting.get(key)
                if key not in waiting and len(before) < LOOK_BACK_MARKERS:
                    before.append((marker, key))
            elif marker.kind == "approval" and marker.wait_ms is None:
                if len(before) < LOOK_BACK_MARKERS:
                    before.append((marker, f"approval:{data.get('approval_id')}"))
            if len(out.markers) == max_markers:
                out.next_seq = marker.seq
                break
            out.markers.append(marker)
        for marker, key in before:
            _look_back(index, marker, key)
        lo = seqs[start] if start < len(seqs) else seqs[-1]
        hi = out.markers[-1].seq if out.next_seq is not None else seqs[max(start, stop - 1)]
        window_runs = {m.run_id for m in out.markers}
        out.runs = _lanes(index, session_id, lo, hi, window_runs, max(1, max_lanes))
        out.policies = _policy_changes(index, session_id, lo, hi, window_only=not summary)
        if policy is not None:
            workspace = _workspace(index, session_id)
            out.what_if = _what_if(index, session_id, seqs, policy, workspace)
        return out

    return read_indexed(audit_dir, read, key=index_key, on_rebuild=on_index_rebuild, cache=cache)


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
