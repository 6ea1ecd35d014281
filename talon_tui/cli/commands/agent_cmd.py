"""`talon agent intent|run`: act as an agent over the pipe. Exit 0 allowed, 1 denied (policy,
broker or operator), 2 usage, input or connection error."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from talon_tui.client import AgentClient, ClientError
from talon_tui.engine.core.canon import loads_strict
from talon_tui.engine.errors import ErrorCode

from .common import fail, json_text, line, print_json

DENIALS = {
    ErrorCode.POLICY_DENIED,
    ErrorCode.CONSTRAINT_VIOLATION,
    ErrorCode.APPROVAL_DENIED,
    ErrorCode.APPROVAL_TIMEOUT,
    ErrorCode.TOKEN_INVALID,
}


def _key(raw: str) -> str:
    key = sys.stdin.readline().strip() if raw == "-" else raw.strip()
    if not key:
        fail("--key is empty")
    return key


def _connect(args: argparse.Namespace) -> AgentClient:
    try:
        return AgentClient(_key(args.key), data_dir=args.data_dir)
    except ClientError as exc:
        fail(f"{exc.code}: {exc.message}")


def _params(text: str) -> dict[str, Any]:
    try:
        params = loads_strict(text)
    except json.JSONDecodeError as exc:
        fail(f"--params is not valid JSON ({exc.msg} at column {exc.colno})")
    except ValueError as exc:  # too deep, duplicate keys, NaN
        fail(f"--params is not valid JSON ({exc})")
    if not isinstance(params, dict):
        fail("--params must be a JSON object")
    return params


def _report_error(exc: ClientError, as_json: bool) -> int:
    if as_json:
        print_json({"ok": False, "error": exc.to_wire()})
    else:
        print(f"talon: {line(exc.code)}: {line(exc.message)}", file=sys.stderr)
        fix = exc.details.get("suggested_fix")
        if fix:
            print(f"suggested fix: {json_text(fix)}", file=sys.stderr)
    return 1 if exc.code in DENIALS else 2


def cmd_agent_intent(args: argparse.Namespace) -> int:
    params = _params(args.params)
    with _connect(args) as agent:
        try:
            out = agent.intent(args.tool, params, run_id=args.run_id)
        except ClientError as exc:
            return _report_error(exc, args.json)
    if args.json:
        print_json({"ok": True, **out.model_dump()})
    else:
        result = out.result
        print(json_text(result, indent=2))
    return 0


def cmd_agent_run(args: argparse.Namespace) -> int:
    try:
        with open(args.file, encoding="utf-8") as fh:
            lines = [(n, text) for n, text in enumerate(fh, 1) if text.strip()]
    except OSError as exc:
        fail(f"{args.file}: cannot read ({exc.strerror})")
    intents = []
    for n, text in lines:
        try:
            item = loads_strict(text)
        except json.JSONDecodeError as exc:
            fail(f"{args.file}:{n}: not valid JSON ({exc.msg})")
        except ValueError as exc:  # too deep, duplicate keys, NaN
            fail(f"{args.file}:{n}: not valid JSON ({exc})")
        if not isinstance(item, dict) or not isinstance(item.get("tool"), str):
            fail(f"{args.file}:{n}: each line must be an object {{tool, params}}")
        intents.append(item)
    worst = 0
    results = []
    with _connect(args) as agent:
        try:
            run_id = agent.begin_run(f"talon agent run {args.file}")
        except ClientError as exc:
            return _report_error(exc, args.json)
        for item in intents:
            try:
                out = agent.intent(item["tool"], item.get("params") or {}, run_id=run_id)
                results.append({"ok": True, **out.model_dump()})
                if not args.json:
                    print(f"ALLOW {line(item['tool'])} {json_text(item.get('params') or {})}")
            except ClientError as exc:
                results.append({"ok": False, "tool": item["tool"], "error": exc.to_wire()})
                worst = max(worst, 1 if exc.code in DENIALS else 2)
                if not args.json:
                    print(f"{line(exc.code)} {line(item['tool'])}: {line(exc.message)}")
        try:
            agent.end_run(run_id, "ok" if worst == 0 else "error")
        except ClientError as exc:
            print(f"talon: could not end run {line(run_id)}: {line(exc.message)}", file=sys.stderr)
    if args.json:
        print_json({"run_id": run_id, "results": results})
    else:
        print(f"run {line(run_id)}: {len(intents)} intents")
    return worst
