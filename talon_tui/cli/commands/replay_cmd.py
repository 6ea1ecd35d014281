"""`talon replay RUN_ID [--policy FILE] [--json]`: a run's timeline from the log, offline."""

from __future__ import annotations

import argparse

from talon_tui.cli.commands.common import fail, json_text, line, load_json_file, print_json


def cmd_replay(args: argparse.Namespace) -> int:
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
