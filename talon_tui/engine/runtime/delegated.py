"""Intents the agent runs itself (agent hooks, `talon hook`): a policy decision without execution.

`decide` judges one tool call of the agent's own (Claude Code's Bash, Codex's apply_patch, ...)
mapped onto a Talon tool, and audits it as the intent's usual events marked `executor:
"agent"`: no capability is issued and the broker runs nothing, since the agent will run the
tool. An approval waits in the console queue like any other. `report` records what the agent
says the tool returned (`tool.reported`, the output's sha256), tied to the decision by the
agent's own call id.

Paths are judged as the agent's tool will reach them: an absolute path (the agents send
absolute paths) is resolved through every symlink and judged relative to the session's
workspace; a path resolving outside it is denied. The agent opens the file itself later, so a
symlink swapped in between is not seen (SECURITY.md, "Agent hooks").
"""

from __future__ import annotations

import os
from collections import OrderedDict
from typing import Any

from pydantic import ValidationError

from ..errors import BadRequest, ErrorCode, TalonError
from ..policy import evaluate as policy_engine
from ..policy.models import Decision, Policy, Session, ToolIntent
from .intents import IntentFlow, canonical_intent_hash

#: the pseudo-tool for an agent tool Talon has no mapping for: `{name, input}`; allowed only
#: when the session's `agent_hooks.native_tools` names it
AGENT_NATIVE = "agent.native"
#: the one tool the agent may run itself in `route` mode
ROUTE_MODE_AGENT_TOOLS = frozenset({"file.read"})
#: decisions remembered per engine to tie a `tool.report` to its `decide`
MAX_REMEMBERED = 4096
REPORT_STATUSES = ("ok", "error")
MAX_REF_CHARS = 256


def workspace_relative(path: Any, workspace: str) -> str | None:
    """`path` as the agent's tool will reach it (every symlink resolved), relative to the
    session workspace; `"."` for the workspace itself, None for anything outside it.

    A relative path is taken relative to the workspace."""
    if not isinstance(path, str) or path == "" or "\x00" in path:
        return None
    ws_real = os.path.realpath(workspace)
    real = os.path.realpath(path if os.path.isabs(path) else os.path.join(ws_real, path))
    if real == ws_real:
        return "."
    if not real.startswith(ws_real.rstrip("/") + "/"):
        return None
    return os.path.relpath(real, ws_real)


def gateway_tool(tool: str, params: dict[str, Any]) -> str:
    """The `mcp__talon__*` tool that runs `tool` through the broker (route mode's advice)."""
    if tool == "mcp.call":
        return f"mcp__talon__{params.get('server')}__{params.get('tool')}"
    return "mcp__talon__" + tool.replace(".", "_")


class DelegatedFlow(IntentFlow):
    """Mixed into `Engine`: decisions for tools the agent runs, and the agent's reports."""

    _decided: OrderedDict[tuple[str, str], dict[str, Any]]

    def _remember(self, key: tuple[str, str], entry: dict[str, Any]) -> None:
        if not hasattr(self, "_decided"):
            self._decided = OrderedDict()
        self._decided.setdefault(key, {"intent_ids": [], "run_id": entry["run_id"]})
        self._decided[key]["intent_ids"].append(entry["intent_id"])
        self._decided.move_to_end(key)
        while len(self._decided) > MAX_REMEMBERED:
            self._decided.popitem(last=False)

    def _prepare(
        self, session: Session, tool: str, params: dict[str, Any]
    ) -> tuple[ToolIntent | None, dict[str, Any], str | None]:
        """(intent to evaluate, params as recorded, reason to deny before the policy)."""
        if tool == AGENT_NATIVE:
            name = params.get("name")
            if set(params) - {"name", "input"} or not isinstance(name, str) or not name:
                raise BadRequest("decide: agent.native params are {name, input}")
            return None, params, None
        try:
            intent = ToolIntent.model_validate({"tool": tool, "params": params, "origin": "agent"})
        except ValidationError as exc:
            raise BadRequest(f"decide: {exc.errors()[0]['msg']}") from None
        params = dict(intent.params)
        key = {"file.read": "path", "file.write": "path", "shell.exec": "cwd"}.get(tool)
        if key is not None and key in params:
            rel = workspace_relative(params[key], session.workspace)
            if rel is None:
                return (
                    None,
                    params,
                    f"{key} {params[key]!r} is outside the session workspace "
                    f"{session.workspace} (symlinks resolved)",
                )
            params[key] = rel
            intent = ToolIntent.model_validate({"tool": tool, "params": params, "origin": "agent"})
        return intent, params, None

    def _agent_verdict(
        self,
        policy: Policy,
        session: Session,
        tool: str,
        params: dict[str, Any],
        intent: ToolIntent | None,
        early: str | None,
    ) -> Decision:
        if early is not None:
            return Decision(decision="DENY", reason=early)
        hooks = policy.hooks
        if tool == AGENT_NATIVE:
            name = params["name"]
            if name in hooks.native_tools:
                return Decision(decision="ALLOW", reason=f"agent_hooks.native_tools names {name}")
            return Decision(
                decision="DENY",
                reason=f"Talon does not know the agent tool {name!r}; a policy may name it in "
                "agent_hooks.native_tools",
            )
        if hooks.mode == "route" and tool not in ROUTE_MODE_AGENT_TOOLS:
            return Decision(
                decision="DENY",
                reason=f"route mode: the agent does not run {tool} itself; use the MCP tool "
                f"{gateway_tool(tool, params)} so that Talon's broker runs it",
            )
        assert intent is not None
        return policy_engine.evaluate(intent, policy, workspace=session.workspace)

    async def decide(
        self,
        session_id: str,
        subject: str,
        tool: str,
        params: dict[str, Any],
        run_id: str | None = None,
        *,
        native: str | None = None,
        ref: str | None = None,
    ) -> dict[str, Any]:
        """Judge a tool call the agent will run itself; returns `{run_id, intent_id, decision:
        "ALLOW", executor: "agent"}` or raises (POLICY_DENIED, APPROVAL_DENIED/TIMEOUT)."""
        if not self.started:
            raise TalonError("the engine is not running", code=ErrorCode.INTERNAL)
        session = self._session(session_id, open_only=True)
        if ref is not None and (not isinstance(ref, str) or len(ref) > MAX_REF_CHARS):
            raise BadRequest(f"decide: ref must be a string of at most {MAX_REF_CHARS} characters")
        if native is not None and (not isinstance(native, str) or len(native) > MAX_REF_CHARS):
            raise BadRequest("decide: native must be a short string")
        intent, params, early = self._prepare(session, tool, params)
        ih = canonical_intent_hash(tool, params)
        async with self._intent_run(session_id, subject, run_id) as step:
            decision = await self._judge(
                step,
                session,
                subject,
                intent,
                tool,
                params,
                ih,
                lambda: self._agent_verdict(
                    self.store.policy(session_id), session, tool, params, intent, early
                ),
                {"executor": "agent", "native": native},
            )
            self._remember((session_id, ref or ih), step.ref)
            return {
                **step.ref,
                "decision": "ALLOW",
                "executor": "agent",
                "reason": decision.reason,
            }

    async def report(
        self,
        session_id: str,
        subject: str,
        *,
        ref: str,
        native: str | None,
        status: str,
        output_sha256: str,
        size: int,
    ) -> dict[str, Any]:
        """Record `tool.reported`: what the agent says its tool returned (sha256 and size),
        in the run of the decision(s) it belongs to; `matched` false when Talon decided no
        such call (the agent ran something Talon did not allow, or its decision was lost)."""
        if not self.started:
            raise TalonError("the engine is not running", code=ErrorCode.INTERNAL)
        self._session(session_id, open_only=True)
        if not isinstance(ref, str) or not ref or len(ref) > MAX_REF_CHARS:
            raise BadRequest(f"tool.report: ref must be a string of 1-{MAX_REF_CHARS} characters")
        if status not in REPORT_STATUSES:
            raise BadRequest(f"tool.report: status must be one of {', '.join(REPORT_STATUSES)}")
        if not (
            isinstance(output_sha256, str)
            and output_sha256.startswith("sha256:")
            and len(output_sha256) == 71
            and all(c in "0123456789abcdef" for c in output_sha256[7:])
        ):
            raise BadRequest("tool.report: output_sha256 must be 'sha256:' + 64 hex digits")
        if isinstance(size, bool) or not isinstance(size, int) or size < 0:
            raise BadRequest("tool.report: bytes must be a non-negative integer")
        decided = getattr(self, "_decided", OrderedDict()).pop((session_id, ref), None)
        run_id = decided["run_id"] if decided else None
        data = {
            "intent_ids": list(decided["intent_ids"]) if decided else [],
            "native": native,
            "ref": ref,
            "status": status,
            "output_sha256": output_sha256,
            "bytes": size,
            "executor": "agent",
            "matched": decided is not None,
            "subject": subject,
        }
        event = self._record("tool.reported", data, session_id=session_id, run_id=run_id)
        await self.durable()
        return {"seq": event.get("seq"), "matched": decided is not None, "run_id": run_id}
