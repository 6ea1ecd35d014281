"""The pipe's operations (DESIGN section 6): request fields checked, then one Engine call each.

A missing or mistyped field is a BAD_REQUEST naming the field. Agent ops act only inside the
agent's own session; admin ops are the Engine's `EngineAPI`.
"""

from __future__ import annotations

import time
import weakref
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from ..core import frames
from ..errors import BadRequest, NotFound
from ..policy.models import TOOLS, ToolIntent
from ..runtime.delegated import AGENT_NATIVE

_MISSING = object()


@dataclass
class OpContext:
    engine: Any
    session_id: str | None
    subject: str
    conn: Any


def field(
    frame: dict[str, Any], name: str, kind: type | tuple[type, ...], default: Any = _MISSING
) -> Any:
    """`frame[name]` of type `kind`; BadRequest naming the field when missing or wrong."""
    value = frame.get(name, _MISSING)
    if value is _MISSING or (value is None and default is not _MISSING):
        if default is _MISSING:
            raise BadRequest(f"{frame.get('op')}: missing field {name!r}", details={"field": name})
        return default
    if isinstance(value, bool) and kind in (int, (int,)):
        raise BadRequest(f"{frame.get('op')}: field {name!r} must be an integer")
    if not isinstance(value, kind):
        names = kind.__name__ if isinstance(kind, type) else "/".join(k.__name__ for k in kind)
        raise BadRequest(
            f"{frame.get('op')}: field {name!r} must be {names}", details={"field": name}
        )
    return value


def _intent(frame: dict[str, Any]) -> ToolIntent:
    tool = field(frame, "tool", str)
    if tool not in TOOLS:
        raise BadRequest(f"intent: unknown tool {tool!r} (tools: {', '.join(TOOLS)})")
    params = field(frame, "params", dict, {})
    try:
        return ToolIntent(tool=tool, params=params, origin="agent")
    except ValidationError as exc:
        raise BadRequest(f"intent: {exc.errors()[0]['msg']}") from None


# --------------------------------------------------------------------------- agent ops


async def op_run_begin(ctx: OpContext, f: dict[str, Any]) -> dict[str, Any]:
    content = field(f, "content", str, "")
    return {"run_id": await ctx.engine.begin_run(ctx.session_id, ctx.subject, content)}


async def op_intent(ctx: OpContext, f: dict[str, Any]) -> dict[str, Any]:
    intent = _intent(f)
    run_id = field(f, "run_id", str, None)
    return await ctx.engine.submit(ctx.session_id, ctx.subject, intent, run_id)


async def op_decide(ctx: OpContext, f: dict[str, Any]) -> dict[str, Any]:
    """A decision for a tool the agent runs itself (agent hooks): audited, never executed."""
    tool = field(f, "tool", str)
    if tool not in TOOLS and tool != AGENT_NATIVE:
        raise BadRequest(f"decide: unknown tool {tool!r} (tools: {', '.join(TOOLS)})")
    return await ctx.engine.decide(
        ctx.session_id,
        ctx.subject,
        tool,
        field(f, "params", dict, {}),
        field(f, "run_id", str, None),
        native=field(f, "native", str, None),
        ref=field(f, "ref", str, None),
    )


async def op_tool_report(ctx: OpContext, f: dict[str, Any]) -> dict[str, Any]:
    """What the agent's own tool returned (`tool.reported`), after a `decide`."""
    return await ctx.engine.report(
        ctx.session_id,
        ctx.subject,
        ref=field(f, "ref", str),
        native=field(f, "native", str, None),
        status=field(f, "status", str),
        output_sha256=field(f, "output_sha256", str),
        size=field(f, "bytes", int),
    )


async def op_run_end(ctx: OpContext, f: dict[str, Any]) -> dict[str, Any]:
    run_id = field(f, "run_id", str)
    status = field(f, "status", str, "ok")
    return await ctx.engine.end_run(ctx.session_id, ctx.subject, run_id, status)


async def op_policy_view(ctx: OpContext, f: dict[str, Any]) -> dict[str, Any]:
    """The agent's own session's policy (read-only): `{session_id, version, policy}`."""
    result: dict[str, Any] = await ctx.engine.view_policy(ctx.session_id)
    return result


async def op_policy_watch(ctx: OpContext, f: dict[str, Any]) -> dict[str, Any]:
    """From now on this connection receives `{"event": {"type": "policy.updated",
    "version": N}}` whenever its own session's policy changes."""
    ctx.conn.watch_policy()
    return {"watching": True, "version": ctx.engine.policy_version(ctx.session_id)}


async def op_intent_cancel(ctx: OpContext, f: dict[str, Any]) -> dict[str, Any]:
    """Withdraw this connection's pending intent (by the id of its request frame) from the
    approval queue; that intent then replies APPROVAL_DENIED."""
    if "request_id" not in f:
        raise BadRequest(
            "intent.cancel: missing field 'request_id'", details={"field": "request_id"}
        )
    request_id = f["request_id"]
    withdrawn = ctx.conn.cancel_request(request_id)
    if not withdrawn:
        raise NotFound(
            f"intent.cancel: request {request_id!r} of this connection is not waiting for an "
            "approval",
            details={"request_id": request_id},
        )
    return {"withdrawn": withdrawn}


async def op_mcp_tools(ctx: OpContext, f: dict[str, Any]) -> dict[str, Any]:
    return {"tools": await ctx.engine.mcp_tools()}


# --------------------------------------------------------------------------- admin ops


async def op_status(ctx: OpContext, f: dict[str, Any]) -> dict[str, Any]:
    return {"status": (await ctx.engine.status()).model_dump()}


async def op_session_create(ctx: OpContext, f: dict[str, Any]) -> dict[str, Any]:
    session, key = await ctx.engine.create_session(
        field(f, "label", str), field(f, "workspace", str, None), field(f, "policy", dict, None)
    )
    return {"session_id": session.id, "agent_key": key, "session": session.model_dump()}


async def op_session_list(ctx: OpContext, f: dict[str, Any]) -> dict[str, Any]:
    return {"sessions": [s.model_dump() for s in await ctx.engine.list_sessions()]}


async def op_session_close(ctx: OpContext, f: dict[str, Any]) -> dict[str, Any]:
    await ctx.engine.close_session(field(f, "session_id", str))
    return {}


async def op_policy_get(ctx: OpContext, f: dict[str, Any]) -> dict[str, Any]:
    return {"policy": (await ctx.engine.get_policy(field(f, "session_id", str))).to_doc()}


async def op_policy_set(ctx: OpContext, f: dict[str, Any]) -> dict[str, Any]:
    policy = await ctx.engine.set_policy(field(f, "session_id", str), field(f, "policy", dict))
    return {"policy": policy.to_doc()}


async def op_agent_key_issue(ctx: OpContext, f: dict[str, Any]) -> dict[str, Any]:
    return {"agent_key": await ctx.engine.issue_agent_key(field(f, "session_id", str))}


def _page_fields(f: dict[str, Any]) -> tuple[int, int]:
    """(offset, limit) of a page of JSON text (`approval.get`, `audit.event`)."""
    offset = field(f, "offset", int, 0)
    limit = field(f, "limit", int, frames.MAX_PAGE_CHARS)
    if offset < 0:
        raise BadRequest(f"{f.get('op')}: offset must be >= 0", details={"field": "offset"})
    if not 0 < limit <= frames.MAX_PAGE_CHARS:
        raise BadRequest(
            f"{f.get('op')}: limit must be 1..{frames.MAX_PAGE_CHARS}", details={"field": "limit"}
        )
    return offset, limit


async def op_run_list(ctx: OpContext, f: dict[str, Any]) -> dict[str, Any]:
    runs = await ctx.engine.list_runs(
        field(f, "session_id", str, None),
        field(f, "limit", int, 500),
        max(0, field(f, "offset", int, 0)),
    )
    views = [frames.shape(r.model_dump(), frames.RUN_FIELDS) for r in runs]
    kept, more = frames.fit_list(views)
    return {"runs": kept, "more": more}


async def op_agent_list(ctx: OpContext, f: dict[str, Any]) -> dict[str, Any]:
    return {"agents": [a.model_dump() for a in await ctx.engine.list_agents()]}


async def op_approval_list(ctx: OpContext, f: dict[str, Any]) -> dict[str, Any]:
    """Waiting approvals from `offset` on, agent data as previews (`cut` says what is missing);
    `more: true` when the frame is full: ask again from `offset + len(approvals)`."""
    offset = max(0, field(f, "offset", int, 0))
    pending = (await ctx.engine.list_approvals())[offset:]
    kept, more = frames.fit_list([frames.approval_view(a.model_dump()) for a in pending])
    return {"approvals": kept, "more": more}


async def op_approval_get(ctx: OpContext, f: dict[str, Any]) -> dict[str, Any]:
    """One waiting approval: its preview, and one page of the full request's JSON text."""
    offset, limit = _page_fields(f)
    request = (await ctx.engine.get_approval(field(f, "approval_id", str))).model_dump()
    return {"preview": frames.approval_view(request), "full": frames.page(request, offset, limit)}


async def op_approval_decide(ctx: OpContext, f: dict[str, Any]) -> dict[str, Any]:
    await ctx.engine.decide_approval(
        field(f, "approval_id", str), field(f, "allow", bool), field(f, "remember", bool, False)
    )
    return {}


async def op_approval_preview(ctx: OpContext, f: dict[str, Any]) -> dict[str, Any]:
    preview = await ctx.engine.approval_preview(field(f, "approval_id", str))
    return {"preview": preview.model_dump()}


async def op_audit_query(ctx: OpContext, f: dict[str, Any]) -> dict[str, Any]:
    types = field(f, "types", list, None)
    if types is not None and not all(isinstance(t, str) for t in types):
        raise BadRequest("audit.query: types must be a list of strings")
    events = await ctx.engine.query_audit(
        session_id=field(f, "session_id", str, None),
        run_id=field(f, "run_id", str, None),
        types=types,
        from_seq=field(f, "from_seq", int, 0),
        limit=min(field(f, "limit", int, 1000), 10_000),
    )
    kept, more = frames.fit_list([frames.event_view(e) for e in events])
    return {"events": kept, "more": more}


async def op_audit_event(ctx: OpContext, f: dict[str, Any]) -> dict[str, Any]:
    """One logged event: its preview, and one page of the full event's JSON text."""
    offset, limit = _page_fields(f)
    event = await ctx.engine.get_audit_event(field(f, "seq", int))
    # not under "event": that key marks an event frame of events.subscribe
    return {"preview": frames.event_view(event), "full": frames.page(event, offset, limit)}


async def op_audit_verify(ctx: OpContext, f: dict[str, Any]) -> dict[str, Any]:
    return {"report": (await ctx.engine.verify_audit()).model_dump()}


async def op_replay(ctx: OpContext, f: dict[str, Any]) -> dict[str, Any]:
    offset = field(f, "offset", int, 0)
    if offset < 0:
        raise BadRequest("offset must be 0 or more")
    run_id, policy = field(f, "run_id", str), field(f, "policy", dict, None)
    key = (run_id, frames.json_text(policy))
    conn = ctx.conn  # None for an op run in process: nothing held
    held = _REPLAYS.get(conn) if offset > 0 and conn is not None else None
    if held is not None and held[0] == key and time.monotonic() - held[1] < REPLAY_HELD_S:
        whole = held[2]
    else:  # a replay verifies the whole log: once per replay read in pages, not per page
        whole = (await ctx.engine.replay(run_id, policy)).model_dump()
        whole["steps"] = [frames.shape(s, frames.STEP_FIELDS) for s in whole["steps"]]
        if conn is not None:
            _REPLAYS[conn] = (key, time.monotonic(), whole)
    doc = {k: v for k, v in whole.items() if k != "steps"}
    doc["steps"] = []
    steps = whole["steps"][offset:]
    budget = frames.LIST_BUDGET_BYTES - len(frames.dumps(doc))
    doc["steps"], more = frames.fit_list(steps, budget) if steps else ([], False)
    if not more and conn is not None:
        _REPLAYS.pop(conn, None)
    return {"replay": doc, "offset": offset, "more": more}


#: per connection, the replay it is reading in pages (`offset` > 0 reads the next page of
#: it, if asked for within REPLAY_HELD_S, rather than replaying the run again)
_REPLAYS: weakref.WeakKeyDictionary[Any, tuple[tuple[str, str], float, dict[str, Any]]] = (
    weakref.WeakKeyDictionary()
)
REPLAY_HELD_S = 120.0


async def op_simulate(ctx: OpContext, f: dict[str, Any]) -> dict[str, Any]:
    changes = await ctx.engine.simulate(field(f, "session_id", str), field(f, "policy", dict))
    return {"changes": [frames.shape(c.model_dump(), frames.CHANGE_FIELDS) for c in changes]}


async def op_session_timeline(ctx: OpContext, f: dict[str, Any]) -> dict[str, Any]:
    timeline = await ctx.engine.session_timeline(
        field(f, "session_id", str),
        field(f, "policy", dict, None),
        field(f, "from_seq", int, 0),
        field(f, "to_seq", int, None),
        field(f, "max_markers", int, 2000),
        field(f, "summary", bool, True),
    )
    return {"timeline": fit_timeline(timeline.model_dump())}


def fit_timeline(doc: dict[str, Any], budget: int = frames.LIST_BUDGET_BYTES) -> dict[str, Any]:
    """A session timeline that fits one frame, paged rather than refused: the markers (and
    the diffs of the policy changes among them) are kept while they fit and `next_seq` then
    names the first marker left for the next window; what-if changes are previews, listed
    while they fit (each group's `total` counts them all)."""
    policies = {p["seq"]: p for p in doc["policies"]}
    diffs = {seq: p["diff"] for seq, p in policies.items()}
    for p in doc["policies"]:
        p["diff"] = []
    markers, groups = doc["markers"], doc["what_if"] or []
    doc["markers"] = []
    for g in groups:
        g["changes"] = [frames.shape(c, frames.CHANGE_FIELDS) for c in g["changes"]]
    changes = [g.pop("changes") for g in groups]
    for g in groups:
        g["changes"] = []
    left = budget - len(frames.dumps(doc))
    for i, m in enumerate(markers):
        size = len(frames.dumps(m)) + 1
        diff = diffs.get(m["seq"]) if m["kind"] == "policy" else None
        size += len(frames.dumps(diff)) if diff else 0
        if size > left and i > 0:
            doc["next_seq"] = m["seq"]
            break
        left -= size
        doc["markers"].append(m)
        if diff:
            policies[m["seq"]]["diff"] = diff
    for g, listed in zip(groups, changes, strict=True):
        for c in listed:
            size = len(frames.dumps(c)) + 1
            if size > left:
                break
            left -= size
            g["changes"].append(c)
    return doc


async def op_session_jump(ctx: OpContext, f: dict[str, Any]) -> dict[str, Any]:
    seq = await ctx.engine.session_jump(
        field(f, "session_id", str),
        field(f, "kind", str),
        field(f, "seq", int),
        field(f, "direction", int, 1),
    )
    return {"seq": seq}


async def op_run_compare(ctx: OpContext, f: dict[str, Any]) -> dict[str, Any]:
    comparison = await ctx.engine.compare_runs(field(f, "run_a", str), field(f, "run_b", str))
    return {"comparison": comparison.model_dump()}


async def op_skill_register(ctx: OpContext, f: dict[str, Any]) -> dict[str, Any]:
    return {"skill": (await ctx.engine.register_skill(field(f, "skill", dict))).model_dump()}


async def op_skill_list(ctx: OpContext, f: dict[str, Any]) -> dict[str, Any]:
    return {"skills": [s.model_dump() for s in await ctx.engine.list_skills()]}


async def op_token_revoke(ctx: OpContext, f: dict[str, Any]) -> dict[str, Any]:
    await ctx.engine.revoke_token(field(f, "jti", str, None), field(f, "session_id", str, None))
    return {}


async def op_secret_set(ctx: OpContext, f: dict[str, Any]) -> dict[str, Any]:
    await ctx.engine.set_secret(field(f, "name", str), field(f, "value", str))
    return {}


async def op_mcp_server_add(ctx: OpContext, f: dict[str, Any]) -> dict[str, Any]:
    server = await ctx.engine.add_mcp_server(
        field(f, "name", str), field(f, "command", list), field(f, "env", dict, None)
    )
    return {"server": server.model_dump()}


async def op_mcp_server_list(ctx: OpContext, f: dict[str, Any]) -> dict[str, Any]:
    return {"servers": [s.model_dump() for s in await ctx.engine.list_mcp_servers()]}


async def op_mcp_server_remove(ctx: OpContext, f: dict[str, Any]) -> dict[str, Any]:
    await ctx.engine.remove_mcp_server(field(f, "name", str))
    return {}


async def op_mcp_tool_approve(ctx: OpContext, f: dict[str, Any]) -> dict[str, Any]:
    pin = await ctx.engine.approve_mcp_tool(field(f, "server", str), field(f, "tool", str))
    return {"tool": pin.model_dump()}


async def op_events_subscribe(ctx: OpContext, f: dict[str, Any]) -> dict[str, Any]:
    from_seq = field(f, "from_seq", int, None)
    if from_seq is not None and from_seq < 0:
        raise BadRequest("events.subscribe: from_seq must be >= 0")
    ctx.conn.start_events(from_seq)
    return {"subscribed": True}


async def op_hello(ctx: OpContext, f: dict[str, Any]) -> dict[str, Any]:
    raise BadRequest("already authenticated on this connection")


Op = Callable[[OpContext, dict[str, Any]], Awaitable[dict[str, Any]]]

AGENT_OPS: dict[str, Op] = {
    "run.begin": op_run_begin,
    "intent": op_intent,
    "run.end": op_run_end,
    "policy.view": op_policy_view,
    "policy.watch": op_policy_watch,
    "intent.cancel": op_intent_cancel,
    "decide": op_decide,
    "tool.report": op_tool_report,
    "mcp.tools": op_mcp_tools,
}

ADMIN_OPS: dict[str, Op] = {
    "status": op_status,
    "session.create": op_session_create,
    "session.list": op_session_list,
    "session.close": op_session_close,
    "policy.get": op_policy_get,
    "policy.set": op_policy_set,
    "agent_key.issue": op_agent_key_issue,
    "run.list": op_run_list,
    "agent.list": op_agent_list,
    "approval.list": op_approval_list,
    "approval.get": op_approval_get,
    "approval.decide": op_approval_decide,
    "approval.preview": op_approval_preview,
    "audit.query": op_audit_query,
    "audit.event": op_audit_event,
    "audit.verify": op_audit_verify,
    "replay": op_replay,
    "simulate": op_simulate,
    "session.timeline": op_session_timeline,
    "session.jump": op_session_jump,
    "run.compare": op_run_compare,
    "skill.register": op_skill_register,
    "skill.list": op_skill_list,
    "token.revoke": op_token_revoke,
    "secret.set": op_secret_set,
    "events.subscribe": op_events_subscribe,
    "mcp.server.add": op_mcp_server_add,
    "mcp.server.list": op_mcp_server_list,
    "mcp.server.remove": op_mcp_server_remove,
    "mcp.tool.approve": op_mcp_tool_approve,
}

COMMON_OPS: dict[str, Op] = {"hello": op_hello}


async def dispatch(ctx: OpContext, op: str, frame: dict[str, Any]) -> dict[str, Any]:
    handler = AGENT_OPS.get(op) or ADMIN_OPS.get(op) or COMMON_OPS.get(op)
    if handler is None:
        raise BadRequest(f"unknown op {op!r}")
    return await handler(ctx, frame)
