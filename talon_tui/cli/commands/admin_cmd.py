"""Admin verbs over the pipe (`talon session|policy|approvals|audit tail`): each connects to
the running engine as an admin client. Errors: one line, exit 2."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Awaitable, Callable
from typing import Any

from talon_tui.client import AdminClient
from talon_tui.engine.api import ApprovalRequest, SessionInfo
from talon_tui.engine.errors import TalonError
from talon_tui.engine.policy.fix import newly_allowed

from .common import fail, json_text, line, load_json_file, print_json, print_rows


def _run(args: argparse.Namespace, body: Callable[[AdminClient], Awaitable[int]]) -> int:
    async def main() -> int:
        client = await AdminClient.connect(args.data_dir)
        try:
            return await body(client)
        finally:
            await client.close()

    try:
        return asyncio.run(main())
    except TalonError as exc:
        fail(f"{exc.code}: {exc.message}" if exc.code else exc.message)


def run_admin(args: argparse.Namespace, body: Callable[[AdminClient], Awaitable[int]]) -> int:
    """Run `body` with an admin client connected to the engine; a TalonError is one line,
    exit 2 (for verb modules other than this one)."""
    return _run(args, body)


def cmd_session_create(args: argparse.Namespace) -> int:
    policy = load_json_file(args.policy) if args.policy else None

    async def body(c: AdminClient) -> int:
        session, key = await c.create_session(args.label, args.workspace, policy)
        if args.json:
            print_json({"session": session.model_dump(), "agent_key": key})
        else:
            print(
                f"session {line(session.id)} ({line(session.label)}) "
                f"workspace {line(session.workspace)}"
            )
            print(f"agent key (shown once): {line(key)}")
        return 0

    return _run(args, body)


def _session_line(s: SessionInfo) -> str:
    return (
        f"{line(s.id)}  {line(s.status):<6}  runs {s.runs:<5} "
        f"agents {s.agents_connected:<3} {line(s.label)}  {line(s.workspace)}"
    )


def cmd_session_list(args: argparse.Namespace) -> int:
    async def body(c: AdminClient) -> int:
        return print_rows(await c.list_sessions(), args.json, _session_line, "no sessions")

    return _run(args, body)


def cmd_session_close(args: argparse.Namespace) -> int:
    async def body(c: AdminClient) -> int:
        await c.close_session(args.session_id)
        print(f"closed {line(args.session_id)}")
        return 0

    return _run(args, body)


def cmd_policy_set(args: argparse.Namespace) -> int:
    doc = load_json_file(args.file)

    async def body(c: AdminClient) -> int:
        old = (await c.get_policy(args.session_id)).to_doc()["overrides"]
        policy = await c.set_policy(args.session_id, doc)
        print(f"policy of {line(args.session_id)} set ({len(policy.overrides)} overrides)")
        grants = newly_allowed(old, policy.to_doc()["overrides"])
        if grants:
            print(f"newly allows {len(grants)} combination{'s' if len(grants) != 1 else ''}:")
            for grant in grants:  # hosts and paths may come from an agent's intent
                print("  + " + line(grant))
        return 0

    return _run(args, body)


def cmd_policy_show(args: argparse.Namespace) -> int:
    async def body(c: AdminClient) -> int:
        print_json((await c.get_policy(args.session_id)).to_doc())
        return 0

    return _run(args, body)


def _approval_line(a: dict[str, Any]) -> str:
    return (
        f"{line(a.get('approval_id'))}  {line(a.get('session_id'))}  {line(a.get('subject'))}  "
        f"{line(a.get('tool'))} {json_text(a.get('params'))}  "
        f"origin {line(a.get('origin'))}  expires {line(a.get('expires'))}"
    )


_WATCHED = ("approval_id", "tool", "params", "origin", "subject", "expires")


async def _watch_approvals(c: AdminClient, as_json: bool) -> int:
    """Print the approvals waiting now, then each new one as it arrives (and a line when one is
    decided or times out), until interrupted or the engine stops. New ones are read from the
    audit log's `approval.requested` / `approval.decided` events from the head seen before the
    listing on, so none falls between the listing and the live stream."""

    def show(action: str, a: dict[str, Any]) -> None:
        if as_json:
            print(json_text({"action": action, "approval": a}), flush=True)
        elif action == "requested":
            print(_approval_line(a), flush=True)
        else:
            print(f"{line(a.get('approval_id'))}  {line(action)}", flush=True)

    head = (await c.status()).audit_head_seq
    seen: set[str] = set()
    for req in await c.list_approvals():
        seen.add(req.approval_id)
        show("requested", req.model_dump())
    async for msg in c.subscribe(from_seq=head + 1):
        if msg.kind != "audit" or msg.payload.get("type") not in (
            "approval.requested",
            "approval.decided",
        ):
            continue
        event = msg.payload
        data = event.get("data") if isinstance(event.get("data"), dict) else {}
        approval = {k: data.get(k) for k in _WATCHED if k in data}
        approval.update(session_id=event.get("session_id"), run_id=event.get("run_id"))
        approval_id = str(data.get("approval_id", ""))
        if event["type"] == "approval.requested":
            if approval_id not in seen:
                seen.add(approval_id)
                show("requested", approval)
            continue
        action = "expired" if data.get("timed_out") else "decided"
        if not data.get("timed_out"):
            action = "approved" if data.get("allow") else "denied"
        show(action, {"approval_id": approval_id, **approval})
    return 0


def cmd_approvals(args: argparse.Namespace) -> int:
    if args.action in ("show", "approve", "deny", "remember") and not args.approval_id:
        fail(f"approvals {args.action} needs an APPROVAL_ID")
    if args.action in ("list", "watch") and args.approval_id:
        fail(f"approvals {args.action} takes no APPROVAL_ID")
    if args.remember and args.action != "approve":
        fail("--remember only goes with approve")
    remember = args.remember or args.action == "remember"

    async def body(c: AdminClient) -> int:
        if args.action == "watch":
            return await _watch_approvals(c, args.json)
        if args.action == "list":
            pending = await c.list_approvals()
            return print_rows(pending, args.json, _pending_line, "no approvals waiting")
        if args.action == "show":
            print_json((await c.get_approval(args.approval_id)).model_dump(exclude={"cut"}))
            return 0
        allow = args.action in ("approve", "remember")
        await c.decide_approval(args.approval_id, allow, remember=remember)
        what = "approved" + (" and remembered" if remember else "") if allow else "denied"
        if args.json:
            print_json({"approval_id": args.approval_id, "allow": allow, "remember": remember})
        else:
            print(f"{line(args.approval_id)} {what}")
        return 0

    return _run(args, body)


def _pending_line(a: ApprovalRequest) -> str:
    return _approval_line(a.model_dump()) + _cut_note(a)


def _cut_note(approval: ApprovalRequest) -> str:
    """What a preview left out, and how to read it whole."""
    if not approval.cut:
        return ""
    fields = ", ".join(f"{name} {cut.bytes} bytes" for name, cut in approval.cut.items())
    return f"  (cut: {fields} in full; `talon approvals show {approval.approval_id}`)"


TAIL_DETAILS = 4  # fields shown for an event that has no tool, decision, status or reason
TAIL_VALUE_CHARS = 60


def _other_details(event: dict[str, Any], data: dict[str, Any]) -> list[str]:
    """The first scalar fields of `data` (e.g. an admin's subject and pid, a session's label),
    else the session the event belongs to, else that it carries nothing."""
    bits = []
    for key in sorted(data):
        value = data[key]
        if isinstance(value, bool | int | str) and value != "":
            bits.append(f"{line(key, TAIL_VALUE_CHARS)}={line(value, TAIL_VALUE_CHARS)}")
            if len(bits) == TAIL_DETAILS:
                break
    if not bits and event.get("session_id"):
        bits.append(f"session={line(event['session_id'])}")
    return bits or ["(no details)"]


def _line(event: dict[str, Any]) -> str:
    data = event.get("data") or {}
    if not isinstance(data, dict):
        data = {}
    bits = [
        f"{line(event.get('seq')):>7}",
        line(event.get("ts", "")),
        f"{line(event.get('type', '')):<24}",
    ]
    for key in ("tool", "decision", "status", "reason", "code"):
        if data.get(key) not in (None, ""):
            bits.append(f"{key}={line(data[key])}")
    if len(bits) == 3:  # none of those: never an empty row, say what the event does carry
        bits.extend(_other_details(event, data))
    if event.get("run_id"):
        bits.append(line(event["run_id"]))
    return " ".join(bits)


def cmd_audit_tail(args: argparse.Namespace) -> int:
    if args.lines < 0:
        fail("--lines must be >= 0")

    def show(event: dict[str, Any]) -> None:
        if args.json:
            print(json_text(event), flush=True)
        else:
            print(_line(event), flush=True)

    async def body(c: AdminClient) -> int:
        head = (await c.status()).audit_head_seq
        start = max(0, head - args.lines + 1)
        last = start - 1
        if args.lines:
            for event in await c.query_audit(from_seq=start, limit=args.lines):
                show(event)
                last = event["seq"]
        if not args.follow:
            return 0
        async for msg in c.subscribe(from_seq=last + 1):
            if msg.kind == "audit":
                show(msg.payload)
            elif msg.kind == "missed":
                print(
                    f"talon: missed {line(msg.payload.get('count'))} events from seq "
                    f"{line(msg.payload.get('from_seq'))} (the reader was too slow)",
                    file=sys.stderr,
                )
        return 0

    return _run(args, body)


def export_lines(st: Any) -> list[str]:
    """`talon status`: one line per exporter (`talon serve --export`): state, lag, last error."""
    out = []
    for e in st.exports:
        state = line(e.get("state"))
        if e.get("retry_in_s") is not None:
            state += f" (retry in {e['retry_in_s']:g} s)"
        text = (
            f"export     {line(e.get('target'))}: {state} · sent #{line(e.get('sent_seq'))} · "
            f"lag {line(e.get('lag'))}"
        )
        if e.get("error"):
            text += f" · {line(e['error'])}"
        out.append(text)
    return out


def _mib(n: float) -> str:
    return f"{n / (1 << 20):g} MiB"


def status_lines(st: Any) -> list[str]:
    """`talon status` as text: the engine's state, then every limit and the tool pool's use."""
    lim = st.limits
    lines = [
        f"engine     {st.mode} · data {st.data_dir}",
        f"sessions   {st.sessions_open} open · {st.agents_connected} agents connected · "
        f"{st.pending_approvals} approvals waiting"
        + (
            f" (oldest {st.oldest_approval_age_s} s)"
            if st.oldest_approval_age_s is not None
            else ""
        ),
        f"audit      head #{st.audit_head_seq} · signed #{st.last_checkpoint_seq}"
        if st.last_checkpoint_seq is not None
        else f"audit      head #{st.audit_head_seq} · no signed checkpoint yet",
    ]
    if "tool_threads" in lim:
        lines.append(
            f"tools      {lim.get('tools_running', 0):g} running, "
            f"{lim.get('tools_queued', 0):g} queued · {lim['tool_threads']:g} threads"
        )
        lines.append(
            f"           at most {lim['tools_per_session']:g} per session and "
            f"{lim['tools_per_agent']:g} per agent, {lim['tool_queue_per_session']:g} queued "
            "per session"
        )
    if "approvals_per_session" in lim:
        lines.append(
            f"approvals  at most {lim['approvals_per_session']:g} waiting per session and "
            f"{lim['approvals_per_agent']:g} per agent"
        )
        lines.append(
            f"           {_mib(lim['approval_params_bytes_per_session'])} of their params "
            "per session"
        )
    if "max_connections" in lim:
        lines.append(
            f"pipe       {lim['max_connections']:g} connections, "
            f"{lim.get('max_connections_per_agent', lim['max_connections']):g} per agent · "
            f"hello within {lim['hello_timeout_s']:g} s"
        )
        lines.append(
            f"           without a hello at most {lim['max_unauth_per_uid']:g} per uid, "
            f"{lim['max_unauth']:g} in all"
        )
        lines.append(
            f"replies    unsent at most {_mib(lim['max_unsent_bytes'])} per connection, "
            f"{_mib(lim['max_unsent_total_bytes'])} in all"
        )
    lines.append(
        f"docker     {'available' if st.docker_available else 'not available'}"
        + (f" · runtime {st.docker_runtime}" if st.docker_runtime else "")
    )
    return lines + export_lines(st)


def cmd_status(args: argparse.Namespace) -> int:
    async def body(c: AdminClient) -> int:
        st = await c.status()
        if args.json:
            print_json(st.model_dump())
        else:
            print("\n".join(status_lines(st)))
        return 0

    return _run(args, body)
