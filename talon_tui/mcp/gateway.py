"""`talon mcp`: a stdio MCP server (official SDK, low-level `Server`) in front of the engine.

The gateway is an ordinary agent of the pipe: it holds an agent key, never a capability token,
and every `tools/call` becomes one intent that the engine decides, the broker executes and the
audit log records. One MCP connection is one run, named after the client's `clientInfo`.

Only protocol goes to stdout (the SDK's stdio transport owns it); logs go to stderr. When the
engine cannot be reached, every call fails closed (`isError`, nothing done) while a background
task keeps reconnecting; the tool list follows the policy (`policy.watch`) and changes are
announced with `notifications/tools/list_changed`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import sys
from pathlib import Path
from typing import Any

import anyio
import mcp_types as types
from mcp.server.lowlevel import NotificationOptions, Server
from mcp.server.stdio import stdio_server
from mcp.shared.exceptions import MCPError

from talon_tui.client import (
    AsyncAgentClient,
    BadRequestError,
    ClientError,
    ConnectionClosedError,
    NotFoundError,
)

from . import tools as mcptools
from .stdio import event_loop_stdio

log = logging.getLogger("talon.mcp")

RETRY_SECONDS = 1.0
PROGRESS_SECONDS = 1.0


class EngineUnreachable(Exception):
    """No pipe connection to the engine right now."""


class Gateway:
    """The state of one `talon mcp` process (one MCP connection)."""

    def __init__(
        self,
        agent_key: str,
        data_dir: str | os.PathLike[str] | None = None,
        *,
        retry_seconds: float = RETRY_SECONDS,
        progress_seconds: float = PROGRESS_SECONDS,
    ) -> None:
        self.agent_key = agent_key
        self.data_dir = data_dir
        self.retry_seconds = retry_seconds
        self.progress_seconds = progress_seconds
        self.agent: AsyncAgentClient | None = None
        self.policy: dict[str, Any] = {"overrides": []}
        self.upstream: list[dict[str, Any]] = []
        self.run_id: str | None = None
        self.client_name = "unknown MCP client"
        self.session: Any = None  # the MCP ServerSession, once initialized
        self._listed: list[str] | None = None
        self._lock = asyncio.Lock()
        self._watcher: asyncio.Task[None] | None = None
        self._retrier: asyncio.Task[None] | None = None
        self.server = Server(
            "talon",
            version="0.1.0",
            instructions=(
                "Tools governed by Talon: each call is checked against the session's policy, "
                "may wait for an operator's approval, and is recorded in a signed audit log."
            ),
            on_list_tools=self._on_list_tools,
            on_call_tool=self._on_call_tool,
        )
        self.server.add_notification_handler(
            "notifications/initialized", types.NotificationParams, self._on_initialized
        )

    # ------------------------------------------------------------------ engine connection

    async def connect(self) -> AsyncAgentClient:
        """The live pipe connection, connecting (watch, view, upstream tools) if needed."""
        agent = self.agent
        if agent is not None and not agent.closed:
            return agent  # every call comes here: no lock while connected
        async with self._lock:
            if self.agent is not None and not self.agent.closed:
                return self.agent
            self.agent = None
            try:
                agent = await AsyncAgentClient.connect(self.agent_key, data_dir=self.data_dir)
            except ClientError as exc:
                raise EngineUnreachable(exc.message) from None
            try:
                await agent.policy_watch()
                await self._refresh(agent)
            except ClientError as exc:
                await agent.close()
                raise EngineUnreachable(exc.message) from None
            self.agent = agent
            self._watcher = asyncio.create_task(self._watch(agent))
            log.info("connected to the engine (session %s)", agent.session_id)
            return agent

    async def _refresh(self, agent: AsyncAgentClient) -> bool:
        """Re-read the policy and the upstream tools; True when the tool list changed."""
        self.policy = (await agent.policy_view())["policy"]
        try:
            self.upstream = list((await agent.call("mcp.tools")).get("tools") or [])
        except BadRequestError:
            self.upstream = []  # an engine without upstream servers (unknown op)
        names = [t["name"] for t in self.tool_list()]
        changed = self._listed is not None and names != self._listed
        self._listed = names
        return changed

    async def _watch(self, agent: AsyncAgentClient) -> None:
        """Follow policy changes; when the connection drops, start reconnecting."""
        while True:
            event = await agent.events.get()
            if event is None:
                break
            if event.get("type") == "policy.updated":
                try:
                    changed = await self._refresh(agent)
                except ClientError as exc:
                    log.warning("policy refresh failed: %s", exc.message)
                    continue
                await self._announce(changed)
        log.warning("lost the engine connection; calls fail closed until it is back")
        self._start_retrying()

    async def _announce(self, changed: bool) -> None:
        if changed and self.session is not None:
            with contextlib.suppress(Exception):
                await self.session.send_tool_list_changed()

    def _start_retrying(self) -> None:
        if self._retrier is None or self._retrier.done():
            self._retrier = asyncio.create_task(self._retry())

    async def _retry(self) -> None:
        while True:
            await asyncio.sleep(self.retry_seconds)
            before = self._listed
            try:
                await self.connect()
            except EngineUnreachable:
                continue
            await self._announce(before is None or before != self._listed)
            return

    # ------------------------------------------------------------------ MCP handlers

    async def _on_initialized(self, ctx: Any, params: Any) -> None:
        self.session = ctx.session
        client = getattr(ctx.session.client_params, "client_info", None)
        if client is not None:
            self.client_name = f"{client.name} {client.version}".strip()
        try:
            await self.connect()
        except EngineUnreachable as exc:
            log.warning("engine unreachable at start (%s); retrying", exc)
            self._start_retrying()

    def tool_list(self) -> list[dict[str, Any]]:
        return mcptools.builtin_tools(self.policy) + mcptools.upstream_tools(
            self.policy, self.upstream
        )

    async def _on_list_tools(self, ctx: Any, params: Any) -> types.ListToolsResult:
        with contextlib.suppress(EngineUnreachable):
            await self.connect()
        return types.ListToolsResult(
            tools=[
                types.Tool(
                    name=t["name"], description=t["description"], input_schema=t["input_schema"]
                )
                for t in self.tool_list()
            ]
        )

    def _resolve(self, name: str, arguments: dict[str, Any] | None) -> tuple[str, dict[str, Any]]:
        """The intent (tool, params) for MCP tool `name`; MCPError -32602 when unknown/bad."""
        if name in mcptools.BUILTIN:
            try:
                return mcptools.builtin_params(name, arguments)
            except mcptools.BadArguments as exc:
                raise MCPError(types.INVALID_PARAMS, str(exc)) from None
        for t in mcptools.upstream_tools(self.policy, self.upstream):
            if t["name"] == name:
                declared = set((t["input_schema"].get("properties") or {}).keys())
                args = mcptools.strip_approval(arguments or {}, declared)
                return mcptools.MCP_CALL, {
                    "server": t["server"],
                    "tool": t["tool"],
                    "arguments": args,
                }
        raise MCPError(types.INVALID_PARAMS, f"unknown tool {name!r}")

    async def _run(self, agent: AsyncAgentClient) -> str:
        if self.run_id is None:
            self.run_id = await agent.begin_run(
                f"MCP client {self.client_name} through talon mcp"[:4000]
            )
        return self.run_id

    async def _on_call_tool(
        self, ctx: Any, params: types.CallToolRequestParams
    ) -> types.CallToolResult:
        name = params.name
        try:
            agent = await self.connect()
        except EngineUnreachable as exc:
            if name not in mcptools.BUILTIN and mcptools.SEPARATOR not in name:
                raise MCPError(types.INVALID_PARAMS, f"unknown tool {name!r}") from None
            return _error(
                f"Talon engine unreachable ({exc}): {name} was not run (fail closed). "
                "talon mcp keeps retrying the connection; try again once the engine is back."
            )
        tool, intent_params = self._resolve(name, params.arguments)
        try:
            return await self._submit(ctx, agent, name, tool, intent_params)
        except ConnectionClosedError:
            return _error(
                f"Talon engine connection lost: the outcome of {name} is unknown; it was "
                "recorded by the engine if it ran. talon mcp is reconnecting."
            )

    async def _submit(
        self, ctx: Any, agent: AsyncAgentClient, name: str, tool: str, intent_params: dict[str, Any]
    ) -> types.CallToolResult:
        run_id = await self._run(agent)
        try:
            result = await self._intent(ctx, agent, tool, intent_params, run_id)
        except ConnectionClosedError:
            raise
        except ClientError as exc:
            if not _run_gone(exc, run_id):
                return denied_result(name, exc)
            # the engine ended our run (it restarted): go on in a new one
            self.run_id = None
            try:
                result = await self._intent(ctx, agent, tool, intent_params, await self._run(agent))
            except ConnectionClosedError:
                raise
            except ClientError as again:
                return denied_result(name, again)
        return allowed_result(tool, result)

    async def _intent(
        self, ctx: Any, agent: AsyncAgentClient, tool: str, params: dict[str, Any], run_id: str
    ) -> Any:
        """Send one intent and wait for its result; a cancelled call withdraws it."""
        req_id, fut = await agent.send_intent(tool, params, run_id=run_id)
        try:
            return (await self._wait(ctx, agent, fut)).result
        except ClientError:
            raise
        except BaseException:
            # cancelled by the client (notifications/cancelled) or shutting down: withdraw it
            with anyio.CancelScope(shield=True), contextlib.suppress(ClientError):
                await agent.cancel_intent(req_id)
            raise

    async def _wait(self, ctx: Any, agent: AsyncAgentClient, fut: asyncio.Future) -> Any:
        """The intent's reply; while it waits (an approval), progress every few seconds."""
        waited = 0
        while True:
            await asyncio.wait({fut}, timeout=self.progress_seconds)
            if fut.done():
                return await agent.intent_result(fut)
            waited += 1
            with contextlib.suppress(Exception):
                await ctx.session.report_progress(
                    waited, None, "waiting for Talon (an operator's approval)"
                )

    # ------------------------------------------------------------------ running

    async def serve(self) -> None:
        options = self.server.create_initialization_options(NotificationOptions(tools_changed=True))
        try:
            async with event_loop_stdio() as streams:
                stdin, stdout = streams if streams is not None else (None, None)
                async with stdio_server(stdin, stdout) as (read_stream, write_stream):  # type: ignore[arg-type]
                    await self.server.run(read_stream, write_stream, options)
        finally:
            await self.close()

    async def close(self) -> None:
        for task in (self._watcher, self._retrier):
            if task is not None:
                task.cancel()
        agent, self.agent = self.agent, None
        if agent is not None:
            if self.run_id is not None:
                with contextlib.suppress(ClientError):
                    await agent.end_run(self.run_id, "ok")
            await agent.close()


def _run_gone(exc: ClientError, run_id: str) -> bool:
    """The intent was refused because its run is not open any more (before any step)."""
    return (
        isinstance(exc, (NotFoundError, BadRequestError))
        and exc.details.get("run_id") == run_id
        and not exc.details.get("intent_id")
    )


def _text(tool: str, result: Any) -> str:
    if tool == "file.read" and isinstance(result, dict) and isinstance(result.get("content"), str):
        return result["content"]
    return json.dumps(result, ensure_ascii=False, indent=1, default=str)


def allowed_result(tool: str, result: Any) -> types.CallToolResult:
    if tool == mcptools.MCP_CALL and isinstance(result, dict):
        content = [
            c for c in (result.get("content") or []) if isinstance(c, dict) and c.get("type")
        ]
        structured = result.get("structured")
        return types.CallToolResult.model_validate(
            {
                "content": content or [{"type": "text", "text": ""}],
                "structuredContent": structured if isinstance(structured, dict) else None,
                "isError": bool(result.get("is_error")),
            }
        )
    return types.CallToolResult(
        content=[types.TextContent(text=_text(tool, result))],
        structured_content=result if isinstance(result, dict) else {"result": result},
    )


def denied_result(name: str, exc: ClientError) -> types.CallToolResult:
    d = exc.details
    reason = d.get("reason") or exc.message
    lines = [f"Talon refused {name} ({exc.code}): {reason}"]
    if "suggested_fix" in d:
        lines.append(f"Suggested fix: {mcptools.fix_summary(d.get('suggested_fix'))}")
    if d.get("audit_seq") is not None:
        lines.append(f"Audit seq: {d['audit_seq']}")
    structured = {
        "code": str(exc.code),
        "reason": reason,
        "suggested_fix": d.get("suggested_fix"),
        "audit_seq": d.get("audit_seq"),
        "run_id": d.get("run_id"),
        "intent_id": d.get("intent_id"),
    }
    return types.CallToolResult(
        content=[types.TextContent(text="\n".join(lines))],
        structured_content=structured,
        is_error=True,
    )


def _error(text: str) -> types.CallToolResult:
    return types.CallToolResult(content=[types.TextContent(text=text)], is_error=True)


def read_key(key_file: str | None) -> str:
    """The agent key: `--key-file` (a regular file, not a symlink) or TALON_AGENT_KEY."""
    if key_file:
        path = Path(key_file)
        if path.is_symlink() or not path.is_file():
            raise ValueError(f"--key-file {key_file}: not a regular file")
        key = path.read_text(encoding="utf-8").strip()
    else:
        key = os.environ.get("TALON_AGENT_KEY", "").strip()
    if not key:
        raise ValueError("no agent key: set TALON_AGENT_KEY or pass --key-file")
    return key


def _seconds(name: str, default: float) -> float:
    try:
        value = float(os.environ.get(name, default))
    except ValueError:
        return default
    return value if 0.01 <= value <= 3600 else default


def main(agent_key: str, data_dir: str | None) -> int:
    logging.basicConfig(
        level=os.environ.get("TALON_MCP_LOG", "WARNING").upper(),
        format="talon mcp: %(levelname)s %(message)s",
        stream=sys.stderr,
    )
    gateway = Gateway(
        agent_key,
        data_dir,
        retry_seconds=_seconds("TALON_MCP_RETRY_SECONDS", RETRY_SECONDS),
        progress_seconds=_seconds("TALON_MCP_PROGRESS_SECONDS", PROGRESS_SECONDS),
    )
    anyio.run(gateway.serve)
    return 0
