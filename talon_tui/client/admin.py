"""`AdminClient`: `api.EngineAPI` over the pipe (re-exported by `client`), so the console works
the same attached to a running `talon serve` as with the in-process Engine.

Lost connections are never quiet: a call on a connection the engine closed (idle, restarted)
opens a new one first and fails with `ConnectionClosedError` when the engine does not answer;
`subscribe()` raises that error when its stream breaks, so a console can say so and
`reconnect()`. Lists come in pages that each fit a frame (engine/core/frames.py) and are
joined here; the full value of a cut approval or event is read in pages (`get_approval`,
`get_audit_event`).
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

from ..engine.api import (
    AgentPeer,
    ApprovalPreview,
    ApprovalRequest,
    BusMessage,
    EngineStatus,
    McpServerInfo,
    McpToolPin,
    ReplayResult,
    RunComparison,
    RunSummary,
    SessionInfo,
    SessionTimeline,
    SimulationChange,
    SkillInfo,
    VerifyReport,
)
from ..engine.core.paths import DataDir, resolve_data_dir
from ..engine.policy.models import Policy, Session, parse_policy
from .agent import AsyncConnection, ConnectionClosedError, read_admin_token


class AdminClient:
    """`api.EngineAPI` over the pipe: `client = await AdminClient.connect(data_dir)`."""

    def __init__(self, data_dir: Path, path: Path, token: str) -> None:
        self.data = DataDir(data_dir)
        self._path = path
        self._token = token
        self._conn = AsyncConnection(path)
        self._opening = asyncio.Lock()

    @classmethod
    async def connect(
        cls,
        data_dir: str | os.PathLike[str] | None = None,
        *,
        socket_path: str | os.PathLike[str] | None = None,
        admin_token: str | None = None,
    ) -> AdminClient:
        root = resolve_data_dir(data_dir)
        path = Path(socket_path) if socket_path is not None else DataDir(root).socket_path
        client = cls(root, path, admin_token or read_admin_token(root))
        try:
            await client._conn.open({"admin_token": client._token})
        except BaseException:
            await client._conn.close()
            raise
        return client

    @property
    def engine_uid(self) -> int | None:
        """The uid the engine runs as (SO_PEERCRED, checked before hello)."""
        return self._conn.engine_uid

    async def close(self) -> None:
        await self._conn.close()

    @property
    def connected(self) -> bool:
        """False once the engine closed this client's connection (until `reconnect`)."""
        return not self._conn.closed

    async def reconnect(self) -> None:
        """A new connection (and hello) in place of the current one; `ConnectionClosedError`
        (or the engine's refusal) when the engine does not answer."""
        async with self._opening:
            await self._reopen()

    async def _reopen(self) -> None:
        old, conn = self._conn, AsyncConnection(self._path)
        try:
            await conn.open({"admin_token": self._token})
        except BaseException:
            await conn.close()
            raise
        self._conn = conn
        await old.close()

    async def _connection(self) -> AsyncConnection:
        """The open connection; a closed one is replaced before anything is sent on it (a
        request is never sent twice)."""
        if self._conn.closed:
            async with self._opening:
                if self._conn.closed:
                    await self._reopen()
        return self._conn

    async def _pages(self, op: str, **fields: Any) -> Any:
        """The whole JSON value behind a paged op (`full: {json, offset, total}` pages)."""
        parts: list[str] = []
        offset, total = 0, None
        while total is None or offset < total:
            reply = await self.call(op, offset=offset, **fields)
            full = reply["full"]
            if total is not None and full["total"] != total:
                raise ConnectionClosedError(f"{op}: the value changed while it was read")
            total = full["total"]
            if not full["json"] and offset < total:
                raise ConnectionClosedError(f"{op}: the engine sent an empty page")
            parts.append(full["json"])
            offset += len(full["json"])
        return json.loads("".join(parts))

    async def _joined(
        self,
        op: str,
        key: str,
        limit: int | None,
        cursor: Callable[[list[Any]], dict[str, Any]],
        **fields: Any,
    ) -> list[Any]:
        """The items (`reply[key]`) of a listing op that the engine sends in pages, each fitting
        a frame, with `more` set while some are left, up to `limit` (None: all of them);
        `cursor(items read so far)` gives the position fields of the next page."""
        items: list[Any] = []
        while limit is None or len(items) < limit:
            left = None if limit is None else limit - len(items)
            reply = await self.call(op, **fields, **cursor(items), limit=left)
            items.extend(reply[key])
            if not reply.get("more") or not reply[key]:
                break
        return items

    async def __aenter__(self) -> AdminClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def call(self, op: str, **fields: Any) -> dict[str, Any]:
        """Any admin op by name (fields whose value is None are left out)."""
        conn = await self._connection()
        return await conn.call(op, **{k: v for k, v in fields.items() if v is not None})

    # -- EngineAPI
    @property
    def audit_path(self) -> Path:
        return self.data.audit_log

    async def status(self) -> EngineStatus:
        status = EngineStatus.model_validate((await self.call("status"))["status"])
        return status.model_copy(update={"mode": "attached"})

    async def list_sessions(self) -> list[SessionInfo]:
        return [
            SessionInfo.model_validate(s) for s in (await self.call("session.list"))["sessions"]
        ]

    async def create_session(
        self, label: str, workspace: str | None = None, policy: dict[str, Any] | None = None
    ) -> tuple[Session, str]:
        reply = await self.call("session.create", label=label, workspace=workspace, policy=policy)
        return Session.model_validate(reply["session"]), reply["agent_key"]

    async def close_session(self, session_id: str) -> None:
        await self.call("session.close", session_id=session_id)

    async def issue_agent_key(self, session_id: str) -> str:
        return (await self.call("agent_key.issue", session_id=session_id))["agent_key"]

    async def get_policy(self, session_id: str) -> Policy:
        return parse_policy((await self.call("policy.get", session_id=session_id))["policy"])

    async def set_policy(self, session_id: str, policy: dict[str, Any]) -> Policy:
        reply = await self.call("policy.set", session_id=session_id, policy=policy)
        return parse_policy(reply["policy"])

    async def list_runs(
        self, session_id: str | None = None, limit: int = 500, offset: int = 0
    ) -> list[RunSummary]:
        runs = await self._joined(
            "run.list",
            "runs",
            limit,
            lambda got: {"offset": offset + len(got)},
            session_id=session_id,
        )
        return [RunSummary.model_validate(r) for r in runs]

    async def list_agents(self) -> list[AgentPeer]:
        return [AgentPeer.model_validate(a) for a in (await self.call("agent.list"))["agents"]]

    async def list_approvals(self) -> list[ApprovalRequest]:
        """Every waiting approval; large agent data as previews (`cut` set: see get_approval)."""
        approvals = await self._joined(
            "approval.list", "approvals", None, lambda got: {"offset": len(got)}
        )
        return [ApprovalRequest.model_validate(a) for a in approvals]

    async def get_approval(self, approval_id: str) -> ApprovalRequest:
        """The whole waiting request, read in pages however large its params are."""
        return ApprovalRequest.model_validate(
            await self._pages("approval.get", approval_id=approval_id)
        )

    async def decide_approval(self, approval_id: str, allow: bool, remember: bool = False) -> None:
        await self.call("approval.decide", approval_id=approval_id, allow=allow, remember=remember)

    async def approval_preview(self, approval_id: str) -> ApprovalPreview:
        reply = await self.call("approval.preview", approval_id=approval_id)
        return ApprovalPreview.model_validate(reply["preview"])

    async def query_audit(
        self,
        session_id: str | None = None,
        run_id: str | None = None,
        types: list[str] | None = None,
        from_seq: int = 0,
        limit: int = 1000,
    ) -> list[dict[str, Any]]:
        return await self._joined(
            "audit.query",
            "events",
            limit,
            lambda got: {"from_seq": got[-1]["seq"] + 1 if got else from_seq},
            session_id=session_id,
            run_id=run_id,
            types=types,
        )

    async def get_audit_event(self, seq: int) -> dict[str, Any]:
        """The whole logged event `seq`, read in pages however large it is."""
        return await self._pages("audit.event", seq=seq)

    async def verify_audit(self) -> VerifyReport:
        return VerifyReport.model_validate((await self.call("audit.verify"))["report"])

    async def replay(self, run_id: str, policy: dict[str, Any] | None = None) -> ReplayResult:
        """The whole replay, however many frames its steps take (`more`: ask from `offset`)."""
        reply = await self.call("replay", run_id=run_id, policy=policy)
        doc = reply["replay"]
        while reply.get("more") and reply["replay"]["steps"]:
            offset = reply.get("offset", 0) + len(reply["replay"]["steps"])
            reply = await self.call("replay", run_id=run_id, policy=policy, offset=offset)
            doc["steps"].extend(reply["replay"]["steps"])
        return ReplayResult.model_validate(doc)

    async def simulate(self, session_id: str, policy: dict[str, Any]) -> list[SimulationChange]:
        reply = await self.call("simulate", session_id=session_id, policy=policy)
        return [SimulationChange.model_validate(c) for c in reply["changes"]]

    async def session_timeline(
        self,
        session_id: str,
        policy: dict[str, Any] | None = None,
        from_seq: int = 0,
        to_seq: int | None = None,
        max_markers: int = 2000,
        summary: bool = True,
    ) -> SessionTimeline:
        reply = await self.call(
            "session.timeline",
            session_id=session_id,
            policy=policy,
            from_seq=from_seq,
            to_seq=to_seq,
            max_markers=max_markers,
            summary=summary,
        )
        return SessionTimeline.model_validate(reply["timeline"])

    async def session_jump(
        self, session_id: str, kind: str, seq: int, direction: int = 1
    ) -> int | None:
        reply = await self.call(
            "session.jump", session_id=session_id, kind=kind, seq=seq, direction=direction
        )
        found = reply["seq"]
        return found if isinstance(found, int) else None

    async def compare_runs(self, run_a: str, run_b: str) -> RunComparison:
        reply = await self.call("run.compare", run_a=run_a, run_b=run_b)
        return RunComparison.model_validate(reply["comparison"])

    async def list_skills(self) -> list[SkillInfo]:
        return [SkillInfo.model_validate(s) for s in (await self.call("skill.list"))["skills"]]

    async def register_skill(self, skill: dict[str, Any]) -> SkillInfo:
        return SkillInfo.model_validate((await self.call("skill.register", skill=skill))["skill"])

    async def revoke_token(self, jti: str | None = None, session_id: str | None = None) -> None:
        await self.call("token.revoke", jti=jti, session_id=session_id)

    async def set_secret(self, name: str, value: str) -> None:
        await self.call("secret.set", name=name, value=value)

    async def add_mcp_server(
        self, name: str, command: list[str], env: dict[str, Any] | None = None
    ) -> McpServerInfo:
        reply = await self.call("mcp.server.add", name=name, command=command, env=env)
        return McpServerInfo.model_validate(reply["server"])

    async def list_mcp_servers(self) -> list[McpServerInfo]:
        servers = (await self.call("mcp.server.list"))["servers"]
        return [McpServerInfo.model_validate(s) for s in servers]

    async def remove_mcp_server(self, name: str) -> None:
        await self.call("mcp.server.remove", name=name)

    async def approve_mcp_tool(self, server: str, tool: str) -> McpToolPin:
        reply = await self.call("mcp.tool.approve", server=server, tool=tool)
        return McpToolPin.model_validate(reply["tool"])

    def subscribe(self, from_seq: int | None = None) -> AsyncIterator[BusMessage]:
        """Bus messages over a dedicated connection (closed when the iterator is closed).
        It never ends by itself: a lost connection raises `ConnectionClosedError`."""
        return self._subscribe(from_seq)

    async def _subscribe(self, from_seq: int | None) -> AsyncIterator[BusMessage]:
        conn = AsyncConnection(self._path)
        try:
            await conn.open({"admin_token": self._token})
            fields = {} if from_seq is None else {"from_seq": from_seq}
            await conn.call("events.subscribe", **fields)
            while True:
                event = await conn.events.get()
                if event is None:
                    raise conn.error or ConnectionClosedError("the event stream ended")
                yield BusMessage.model_validate(event)
        finally:
            await conn.close()
