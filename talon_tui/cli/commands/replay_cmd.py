"""`talon replay RUN_ID [--policy FILE] [--json]`: a run's timeline from the log, offline;
`talon replay --session ID [--policy FILE] [--json]`: every run of a session on one time axis;
`talon replay RUN_A --diff RUN_B [--json]`: two runs' steps aligned by tool and target."""

from __future__ import annotations

import argparse
from typing import Any

from talon_tui.cli.commands.common import fail, json_text, line, load_json_file, print_json


def cmd_replay(args: argparse.Namespace) -> int:
    if args.session is not None:
        if args.run_id is not None or args.diff is not None:
            fail("give either --session ID or a RUN_ID, not both")
        return _session(args)
    if args.run_id is None:
        fail("give a RUN_ID or --session ID")
    if args.diff is not None:
        if args.policy:
            fail("--diff compares two runs as recorded; it takes no --policy")
        return _diff(args)
    return _run(args)


def _audit_dir(args: argparse.Namespace) -> Any:
    from talon_tui.engine.core.paths import DataDir, resolve_data_dir

    data = DataDir(resolve_data_dir(args.data_dir))
    if not data.audit_log.is_file():
        fail(f"no audit log at {data.audit_log}")
    return data.audit_dir


def _policy(args: argparse.Namespace) -> Any:
    from talon_tui.engine.errors import PolicyInvalid
    from talon_tui.engine.policy.models import parse_policy

    if not args.policy:
        return None
    try:
        return parse_policy(load_json_file(args.policy))
    except PolicyInvalid as exc:
        fail(f"{args.policy}: {exc.message}")


def _gap(ms: int | None) -> str:
    if ms is None:
        return ""
    if ms < 1000:
        return f"{ms}ms"
    if ms < 120_000:
        return f"{ms / 1000:.1f}s"
    return f"{ms // 60_000}m{(ms // 1000) % 60:02d}s"


def marker_line(m: Any) -> str:
    """One step of a session timeline, as the CLI and the console print it."""
    parts = [line(m.kind)]
    if m.tool:
        parts.append(line(m.tool))
    if m.target:
        parts.append(line(m.target, 60))
    if m.decision:
        parts.append(line(m.decision))
    if m.wait_ms is not None:
        parts.append(f"waited {_gap(m.wait_ms)}")
    if m.duration_ms is not None:
        parts.append(f"took {_gap(m.duration_ms)}")
    if m.kind == "execution":
        parts.append(line(m.status))
        parts.append("✓ output" if m.output_matches else "✗ OUTPUT MISMATCH")
    if m.text and m.kind in ("denial", "approval", "policy"):
        parts.append(f"({line(m.text, 120)})")
    return "  ".join(parts)


def _session(args: argparse.Namespace) -> int:
    from talon_tui.engine.audit.index import IndexCache
    from talon_tui.engine.audit.session_replay import session_marks, session_timeline
    from talon_tui.engine.errors import NotFound

    audit_dir, policy = _audit_dir(args), _policy(args)
    cache = IndexCache(audit_dir)  # one index for every window
    every_lane: Any = {"cache": cache, "max_lanes": 1 << 30}  # a lane for every run printed
    try:
        tl = session_timeline(
            audit_dir, args.session, policy=policy, max_markers=50_000, **every_lane
        )
        markers, lanes = list(tl.markers), {r.run_id: r for r in tl.runs}
        changes = {p.seq: p for p in tl.policies}
        while tl.next_seq is not None:
            page = session_timeline(
                audit_dir, args.session, from_seq=tl.next_seq, max_markers=50_000, **every_lane
            )
            markers.extend(page.markers)
            lanes.update((r.run_id, r) for r in page.runs)
            for p in page.policies:  # each window brings the diffs of its own changes
                if p.diff or p.seq not in changes:
                    changes[p.seq] = p
            tl.next_seq = page.next_seq
        jumps = session_marks(audit_dir, args.session, cache=cache) if args.json else {}
    except NotFound as exc:
        fail(exc.message)
    tl.runs = sorted(lanes.values(), key=lambda r: r.number)
    tl.policies = sorted(changes.values(), key=lambda p: p.seq)
    mismatched = [m.seq for m in markers if m.output_matches is False]
    if args.json:
        doc = tl.model_dump(exclude={"markers", "next_seq"})
        doc["markers"] = [m.model_dump(exclude_none=True) for m in markers]
        doc["jumps"] = jumps
        if policy is None:
            doc.pop("what_if")
        print_json(doc)
        return 1 if mismatched else 0
    print(
        f"session {line(tl.session_id)}  {tl.events} events  {tl.run_count} runs  "
        f"{line(tl.first_ts)} .. {line(tl.last_ts)}  {len(tl.policies)} policy change(s)"
    )
    policies = {p.seq: p for p in tl.policies}
    current: str | None = None
    last_ts: str | None = None
    for m in markers:
        if m.kind == "policy":
            p = policies.get(m.seq)
            print(f"{m.seq:>8}  {line(m.ts)}  ── {marker_line(m)}  {line(p and p.policy_sha256)}")
            for d in (p.diff if p else [])[:200]:
                print(f"{'':>10}{line(d, 200)}")
            continue
        if m.run_id != current:
            current = m.run_id
            lane = lanes.get(m.run_id or "")
            if lane is not None:
                print(
                    f"run {line(lane.run_id)}  {line(lane.status)}  {line(lane.started)} .. "
                    f"{line(lane.finished or 'running')}  {lane.events} events"
                )
            else:
                print(f"(outside any run: {line(m.run_id)})")
        gap = _gap(_ms(last_ts, m.ts)) if last_ts else ""
        last_ts = m.ts
        print(f"{m.seq:>8}  {line(m.ts)}  {('+' + gap) if gap else '':>8}  {marker_line(m)}")
    if tl.what_if is not None:
        total = sum(len(g.changes) for g in tl.what_if)
        print(f"what if {line(args.policy)}: {total} decision(s) would change")
        for g in tl.what_if:
            print(f"  {line(g.override)}: {len(g.changes)}")
            for c in g.changes:
                print(
                    f"{c.seq:>10}  {line(c.run_id)}  {line(c.tool)}  "
                    f"{line(c.before)} -> {line(c.after)}  {line(c.reason, 160)}"
                )
    return 1 if mismatched else 0


def _ms(a: str | None, b: str) -> int | None:
    from talon_tui.engine.audit.session_replay import ms_between

    return ms_between(a, b) if a else None


def _diff(args: argparse.Namespace) -> int:
    from talon_tui.engine.audit.session_replay import compare_runs
    from talon_tui.engine.errors import NotFound

    audit_dir = _audit_dir(args)
    try:
        cmp = compare_runs(audit_dir, args.run_id, args.diff)
    except NotFound as exc:
        fail(exc.message)
    differs = [s for s in cmp.steps if s.differs]
    if args.json:
        print_json(cmp.model_dump())
        return 1 if differs else 0
    print(f"A {line(cmp.run_a)}   B {line(cmp.run_b)}   {len(differs)} of {len(cmp.steps)} differ")
    for s in cmp.steps:
        mark = "=" if not s.differs else "≠"
        print(f"{mark} {line(s.tool)}  {line(s.target, 80)}  {','.join(s.differs) or 'same'}")
        for side, step in (("A", s.a), ("B", s.b)):
            if step is None:
                print(f"    {side}  (no such step)")
            elif s.differs:
                print(
                    f"    {side}  seq {step['seq']}  {line(step['decision'])}  "
                    f"{line(step['status'])}  {line(step['output_sha256'])}"
                )
                if "params" in s.differs:
                    print(f"       params {line(json_text(step['params']), 200)}")
    return 1 if differs else 0


def _run(args: argparse.Namespace) -> int:
    from talon_tui.engine.audit.replay import replay
    from talon_tui.engine.core import keys
    from talon_tui.engine.core.paths import DataDir, resolve_data_dir
    from talon_tui.engine.errors import NotFound, PolicyInvalid
    from talon_tui.engine.policy.models import parse_policy

    data = DataDir(resolve_data_dir(args.data_dir))
    if not data.audit_log.is_file():
        fail(f"no audit log at {data.audit_log}")
    policy = None
    if args.policy:
        try:
            policy = parse_policy(load_json_file(args.policy))
        except PolicyInvalid as exc:
            fail(f"{args.policy}: {exc.message}")
    try:
        public_key = keys.load_public(data.keys_dir, "audit")
    except FileNotFoundError:
        fail(f"no audit public key at {keys.public_key_path(data.keys_dir, 'audit')}")
    try:
        result = replay(data.audit_dir, public_key, args.run_id, policy=policy)
    except NotFound as exc:
        fail(exc.message)
    mismatched = [s.seq for s in result.steps if s.output_matches is False]
    if args.json:
        doc = {
            "run_id": result.run_id,
            "session_id": result.session_id,
            "chain_valid": result.chain_valid,
            "chain_first_bad_seq": result.chain_first_bad_seq,
            "steps": [
                {
                    "seq": s.seq,
                    "ts": s.ts,
                    "type": s.type,
                    "tool": s.tool,
                    "decision": s.decision,
                    "reason": s.reason,
                    "output": s.output,
                    "output_sha256": s.output_sha256,
                    "output_matches": s.output_matches,
                    **({"executor": s.executor} if s.executor else {}),
                    **({"what_if_decision": s.what_if_decision} if policy is not None else {}),
                }
                for s in result.steps
            ],
        }
        if result.changed_by_policy is not None:
            doc["changed_by_policy"] = result.changed_by_policy
        print_json(doc)
    else:
        chain = "valid" if result.chain_valid else f"BROKEN at seq {result.chain_first_bad_seq}"
        print(f"run {line(result.run_id)}  session {line(result.session_id)}  chain {chain}")
        for s in result.steps:
            parts = [f"{s.seq:>8}", line(s.ts), line(s.type)]
            if s.tool:
                parts.append(line(s.tool))
            if s.decision:
                parts.append(line(s.decision))
            if s.executor == "agent":
                parts.append("[run by the agent]")
            if s.type == "tool.reported":
                parts.append(f"{line(s.reason or '')}  output {line(s.output_sha256 or '')}")
            if s.output_matches is not None:
                parts.append("output ok" if s.output_matches else "OUTPUT MISMATCH")
            if s.changed_by_policy:
                parts.append(f"-> {line(s.what_if_decision)} with the other policy")
            print("  ".join(parts))
            if s.reason and (s.decision == "DENY" or s.changed_by_policy):
                print(f"{'':>10}{line(s.reason)}")
            if s.output is not None:
                print(f"{'':>10}output: {line(json_text(s.output), 201)}")
        if result.changed_by_policy is not None:
            print(
                f"{len(result.changed_by_policy)} decision(s) would change with {line(args.policy)}"
            )
    return 1 if (not result.chain_valid or mismatched) else 0
