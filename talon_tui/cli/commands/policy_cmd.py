"""`talon policy lint FILE [--workspace W] [--json]`: check a policy file offline.

Exit codes: 0 valid with no danger, 1 invalid document or at least one danger warning,
2 unreadable file or not JSON. Never imports textual or rich.
"""

from __future__ import annotations

import argparse
import os
from typing import Any

from talon_tui.engine.errors import PolicyInvalid
from talon_tui.engine.policy.advisor import LEVELS, Advice, lint
from talon_tui.engine.policy.models import parse_policy

from .common import fail, line, load_json_file, print_json


def _counts(advice: list[Advice]) -> dict[str, int]:
    return {level: sum(1 for a in advice if a.level == level) for level in LEVELS}


def _where(policy_doc: dict[str, Any], a: Advice) -> str:
    if a.override_index is None:
        return line(a.field)
    tool = ""
    overrides = policy_doc.get("overrides")
    if isinstance(overrides, list) and a.override_index < len(overrides):
        entry = overrides[a.override_index]
        if isinstance(entry, dict):
            tool = f" ({line(entry.get('tool'))})"
    return f"override #{a.override_index}{tool} {line(a.field)}"


def cmd_policy_lint(args: argparse.Namespace) -> int:
    workspace = args.workspace
    if workspace is not None:
        if not os.path.isabs(workspace):
            fail(f"--workspace {workspace}: must be an absolute directory")
        if not os.path.isdir(workspace):
            fail(f"--workspace {workspace}: no such directory")
    doc = load_json_file(args.file)
    try:
        policy = parse_policy(doc)
    except PolicyInvalid as exc:
        if args.json:
            print_json(
                {
                    "file": args.file,
                    "valid": False,
                    "error": exc.message,
                    "advice": [],
                    "counts": _counts([]),
                }
            )
        else:
            print(f"talon: {line(args.file)}: {line(exc.message)}")
        return 1
    advice = lint(policy, workspace=workspace)
    counts = _counts(advice)
    if args.json:
        print_json(
            {
                "file": args.file,
                "valid": True,
                "error": None,
                "advice": [a.model_dump(mode="json") for a in advice],
                "counts": counts,
            }
        )
    else:
        n = len(policy.overrides)
        summary = ", ".join(f"{counts[lv]} {lv}" for lv in reversed(LEVELS) if counts[lv])
        found = "no warnings"
        if advice:
            found = f"{len(advice)} warning{'s' if len(advice) != 1 else ''} ({summary})"
        print(f"{line(args.file)}: valid policy, {n} override{'s' if n != 1 else ''}, {found}")
        for a in advice:
            print()
            print(f"{a.level.upper():<6} {_where(doc, a)}")
            print(f"  {line(a.message)}")
            print(f"  why: {line(a.why)}")
            print(f"  instead: {line(a.alternative)}")
    return 1 if counts["danger"] else 0
