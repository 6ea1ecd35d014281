"""Upstream MCP servers: started, kept alive, restarted and stopped by the broker.

The broker is the only code that runs them. Each registered server is one subprocess spoken
to with the official SDK's client (`mcp.ClientSession` over `mcp.client.stdio.stdio_client`),
owned by one task on the supervisor's own event loop (a thread), so broker threads call it
synchronously. A server:

- starts on first use, with a scrubbed environment: only its registered variables (secrets
  read from the secret store at start, by reference; never logged) plus a minimal PATH and a
  private HOME under the data dir; nothing else of the engine's environment;
- is watched (a ping every `WATCH_INTERVAL` s); when it dies it is restarted after a bounded
  backoff, and after `MAX_QUICK_CRASHES` short-lived runs in a row it is left `failed` until
  the next use;
- has its tools listed at every (re)start and after `notifications/tools/list_changed`;
  each listing goes to the host (`McpHost.tools_listed`), which pins or quarantines;
- stops with the engine (`close`).

Nothing here decides what may be called: `run_mcp_call` re-checks the token's constraints
and the host's pin state first.
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
from collections.abc import Mapping
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import orjson

from ..core.canon import sha256_tag
from ..errors import ConstraintViolation, ToolError

#: PATH every upstream server gets (its registered env may not set PATH or HOME)
MINIMAL_PATH = "/usr/local/bin:/usr/bin:/bin"
#: variables the SDK's client copies from the engine's environment; unset in the child
_SDK_INHERITED = ("HOME", "LOGNAME", "PATH", "SHELL", "TERM", "USER")
RESERVED_ENV = frozenset({"PATH", "HOME"})
ENV_PROGRAM = "/usr/bin/env"

WATCH_INTERVAL = 0.5
START_TIMEOUT = 20.0
CALL_TIMEOUT = 60.0
STOP_TIMEOUT = 10.0
#: a run shorter than this counts as a quick crash; after this many in a row: `failed`
QUICK_RUN_SECONDS = 30.0
MAX_QUICK_CRASHES = 5
BACKOFF_FIRST = 0.2
BACKOFF_MAX = 8.0


@dataclass(frozen=True)
class McpServerSpec:
    """A registered server as the broker runs it: argv and env by reference."""

    name: str
    command: tuple[str, ...]
    #: VAR -> {"value": str} or {"secret": NAME}
    env: Mapping[str, Mapping[str, str]] = field(default_factory=dict)


class McpHost(Protocol):
    """What the supervisor needs from the engine (implemented by the engine's store)."""

    def mcp_spec(self, name: str) -> McpServerSpec | None: ...

    def mcp_tools_listed(self, server: str, tools: list[dict[str, Any]]) -> None:
        """Pin new tools, quarantine changed ones (and audit both); any thread."""

    def mcp_pin_refusal(self, server: str, tool: str) -> str | None:
        """Why `tool` of `server` may not be called now (not pinned, quarantined), or None."""

    def mcp_event(self, etype: str, data: dict[str, Any]) -> None:
        """Audit a server event (`mcp.server.started`, `mcp.server.crashed`); any thread."""


class SecretReader(Protocol):
    def get(self, name: str) -> Any: ...


def tool_record(tool: Any) -> dict[str, Any]:
    """An SDK `Tool` as the pinned triple plus its sha256 (name, description, input schema)."""
    name = str(tool.name)
    description = str(tool.description or "")
    schema = tool.input_schema if isinstance(tool.input_schema, dict) else {}
    return {
        "name": name,
        "description": description,
        "input_schema": schema,
        "sha256": pin_sha256(name, description, schema),
    }


def pin_sha256(name: str, description: str, schema: Mapping[str, Any]) -> str:
    body = orjson.dumps(
        {"name": name, "description": description, "input_schema": schema},
        option=orjson.OPT_SORT_KEYS,
    )
    return sha256_tag(body)


@dataclass
class _Server:
    name: str
    status: str = "stopped"  # stopped, starting, running, crashed, failed
    restarts: int = 0
    quick_crashes: int = 0
    last_error: str = ""
    started_at: float = 0.0
    session: Any = None
    task: asyncio.Task[None] | None = None
    ready: asyncio.Event = field(default_factory=asyncio.Event)
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    dirty: bool = True
    #: counts successful starts, so a caller can wait for the run after a crash
    generation: int = 0
    tools: list[dict[str, Any]] = field(default_factory=list)


class McpSupervisor:
    """Runs registered upstream servers on its own event loop thread."""

    def __init__(self, host: McpHost, *, secrets: SecretReader | None, base_dir: str) -> None:
        self.host = host
        self.secrets = secrets
        self.base_dir = Path(base_dir)
        self._servers: dict[str, _Server] = {}
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._closed = False

    # ------------------------------------------------------------------ thread plumbing

    def _ensure_loop(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._closed:
                raise ToolError("the engine is stopping; no MCP server is started")
            if self._loop is None:
                loop = asyncio.new_event_loop()
                started = threading.Event()

                def run() -> None:
                    asyncio.set_event_loop(loop)
                    loop.call_soon(started.set)
                    loop.run_forever()

                self._thread = threading.Thread(target=run, name="talon-mcp", daemon=True)
                self._thread.start()
                started.wait()
                self._loop = loop
            return self._loop

    def _run(self, coro: Any, timeout: float) -> Any:
        loop = self._ensure_loop()
        fut = asyncio.run_coroutine_threadsafe(coro, loop)
        try:
            return fut.result(timeout)
        except FutureTimeout as exc:
            fut.cancel()
            raise ToolError(f"the MCP server did not answer within {timeout:.0f} s") from exc

    # ------------------------------------------------------------------ public, any thread

    def status(self) -> dict[str, dict[str, Any]]:
        """name -> {status, restarts, last_error} for every server started so far."""
        with self._lock:
            return {
                n: {
                    "status": s.status,
                    "restarts": s.restarts,
                    "last_error": s.last_error,
                }
                for n, s in self._servers.items()
            }

    def list_tools(self, name: str, timeout: float = START_TIMEOUT) -> list[dict[str, Any]]:
        """The server's current tools (listed afresh, reported to the host); starts it."""
        return list(self._run(self._list(name, force=True), timeout + 5))

    def call(
        self, name: str, tool: str, arguments: dict[str, Any], timeout: float = CALL_TIMEOUT
    ) -> Any:
        """`tools/call` on the server (started as needed); the SDK's CallToolResult.
        The host's pin state is checked after any fresh listing, right before the call."""
        return self._run(self._call(name, tool, arguments, timeout), timeout + START_TIMEOUT + 5)

    def stop_server(self, name: str) -> None:
        """Stop one server (it was removed); nothing when it never ran."""
        if self._loop is None:
            return
        self._run(self._stop(name), STOP_TIMEOUT + 5)

    def close(self) -> None:
        """Stop every server and the loop thread (the engine is stopping)."""
        with self._lock:
            self._closed = True
            loop = self._loop
        if loop is None:
            return
        fut = asyncio.run_coroutine_threadsafe(self._stop_all(), loop)
        try:
            fut.result(STOP_TIMEOUT + 5)
        except FutureTimeout:
            fut.cancel()
        loop.call_soon_threadsafe(loop.stop)
        if self._thread is not None:
            self._thread.join(STOP_TIMEOUT)
        loop.close()

    # ------------------------------------------------------------------ on the loop

    async def _stop_all(self) -> None:
        for name in list(self._servers):
            await self._stop(name)

    async def _stop(self, name: str) -> None:
        srv = self._servers.get(name)
        if srv is None or srv.task is None:
            return
        srv.stop.set()
        try:
            await asyncio.wait_for(asyncio.shield(srv.task), STOP_TIMEOUT)
        except TimeoutError:
            srv.task.cancel()
        with self._lock:
            self._servers.pop(name, None)

    async def _started(self, name: str, timeout: float) -> _Server:
        spec = self.host.mcp_spec(name)
        if spec is None:
            raise ConstraintViolation(f"no MCP server named {name!r} is registered")
        srv = self._servers.get(name)
        if srv is None:
            srv = _Server(name)
            with self._lock:
                self._servers[name] = srv
        if srv.task is None or srv.task.done():
            srv.quick_crashes = 0
            srv.stop.clear()
            srv.task = asyncio.get_running_loop().create_task(self._serve(srv, spec))
        try:
            await asyncio.wait_for(srv.ready.wait(), timeout)
        except TimeoutError as exc:
            raise ToolError(
                f"MCP server {name} is not running ({srv.status}"
                + (f": {srv.last_error}" if srv.last_error else "")
                + ")"
            ) from exc
        return srv

    async def _list(self, name: str, *, force: bool) -> list[dict[str, Any]]:
        srv = await self._started(name, START_TIMEOUT)
        if force or srv.dirty:
            await self._fresh_listing(srv)
        return list(srv.tools)

    async def _fresh_listing(self, srv: _Server) -> None:
        """List the tools; when the session died under the listing (a crash the watcher has
        not seen yet), wait for the restarted one and list once more. Listing has no effect
        upstream, so repeating it is safe (a tool call is never repeated)."""
        generation = srv.generation
        try:
            await self._refresh(srv)
            return
        except ToolError:
            deadline = time.monotonic() + START_TIMEOUT + BACKOFF_MAX
            while srv.generation == generation and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            if srv.generation == generation:
                raise
        await self._started(srv.name, START_TIMEOUT)
        await self._refresh(srv)

    async def _refresh(self, srv: _Server) -> None:
        session = srv.session
        if session is None:
            raise ToolError(f"MCP server {srv.name} is not running")
        tools: list[dict[str, Any]] = []
        cursor = None
        try:
            for _page in range(100):
                if cursor:
                    result = await session.list_tools(cursor=cursor)
                else:
                    result = await session.list_tools()
                tools.extend(tool_record(t) for t in result.tools)
                cursor = getattr(result, "next_cursor", None)
                if not cursor:
                    break
        except Exception as exc:  # McpError, anyio and OS errors of a dead session
            raise ToolError(f"MCP server {srv.name} failed to list its tools: {exc}") from exc
        srv.tools = tools
        srv.dirty = False
        await asyncio.get_running_loop().run_in_executor(
            None, self.host.mcp_tools_listed, srv.name, tools
        )

    async def _call(self, name: str, tool: str, arguments: dict[str, Any], timeout: float) -> Any:
        srv = await self._started(name, START_TIMEOUT)
        if srv.dirty:
            await self._fresh_listing(srv)
        refusal = self.host.mcp_pin_refusal(name, tool)
        if refusal is not None:
            raise ConstraintViolation(refusal, details={"server": name, "tool": tool})
        if not any(t["name"] == tool for t in srv.tools):
            raise ConstraintViolation(
                f"MCP server {name} does not list a tool {tool!r}",
                details={"server": name, "tool": tool},
            )
        session = srv.session
        if session is None:
            raise ToolError(f"MCP server {name} is not running")
        try:
            return await session.call_tool(tool, arguments, read_timeout_seconds=timeout)
        except Exception as exc:
            raise ToolError(f"MCP server {name} failed the call: {exc}") from exc

    def _environment(self, spec: McpServerSpec, home: Path) -> dict[str, str]:
        env = {"PATH": MINIMAL_PATH, "HOME": str(home)}
        for var, ref in spec.env.items():
            if var in RESERVED_ENV:
                continue
            if "secret" in ref:
                if self.secrets is None:
                    raise ToolError(f"{spec.name}: secret {ref['secret']!r} has no store")
                try:
                    env[var] = str(self.secrets.get(ref["secret"]))
                except (OSError, KeyError, LookupError) as exc:
                    raise ToolError(
                        f"{spec.name}: secret {ref['secret']!r} for {var} is not set"
                    ) from exc
            else:
                env[var] = ref.get("value", "")
        return env

    async def _serve(self, srv: _Server, spec: McpServerSpec) -> None:
        """Run, watch and restart one server until it is stopped (or fails too often)."""
        from mcp import ClientSession
        from mcp.client.stdio import StdioServerParameters, stdio_client

        home = self.base_dir / spec.name / "home"
        home.mkdir(mode=0o700, parents=True, exist_ok=True)
        stderr_path = self.base_dir / spec.name / "stderr.log"
        while not srv.stop.is_set():
            srv.status = "starting"
            started = time.monotonic()
            up = False
            try:
                env = self._environment(spec, home)
                unset = [a for v in _SDK_INHERITED if v not in env for a in ("-u", v)]
                params = StdioServerParameters(
                    command=ENV_PROGRAM,
                    args=[*unset, "--", *spec.command],
                    env=env,
                    cwd=str(home),
                )
                fd = os.open(stderr_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
                with os.fdopen(fd, "w") as errlog:
                    async with stdio_client(params, errlog=errlog) as (read, write):

                        async def on_message(message: Any) -> None:
                            root = getattr(message, "root", message)
                            if getattr(root, "method", "") == "notifications/tools/list_changed":
                                srv.dirty = True

                        async with ClientSession(read, write, message_handler=on_message) as s:
                            await asyncio.wait_for(s.initialize(), START_TIMEOUT)
                            srv.session = s
                            srv.dirty = True
                            await self._refresh(srv)
                            srv.status, srv.last_error, up = "running", "", True
                            srv.generation += 1
                            srv.started_at = time.monotonic()
                            self.host.mcp_event(
                                "mcp.server.started",
                                {"server": spec.name, "restarts": srv.restarts},
                            )
                            srv.ready.set()
                            while not srv.stop.is_set():
                                try:
                                    await asyncio.wait_for(srv.stop.wait(), WATCH_INTERVAL)
                                except TimeoutError:
                                    await asyncio.wait_for(s.send_ping(), START_TIMEOUT)
            except Exception as exc:  # noqa: BLE001 - any failure of the child is a crash, recorded
                srv.last_error = _first_line(exc)
            srv.ready.clear()
            srv.session = None
            if srv.stop.is_set():
                srv.status = "stopped"
                return
            srv.restarts += 1
            lived = time.monotonic() - started
            srv.quick_crashes = srv.quick_crashes + 1 if lived < QUICK_RUN_SECONDS else 1
            srv.status = "crashed"
            self.host.mcp_event(
                "mcp.server.crashed",
                {
                    "server": spec.name,
                    "restarts": srv.restarts,
                    "was_running": up,
                    "error": srv.last_error[:500],
                },
            )
            if srv.quick_crashes >= MAX_QUICK_CRASHES:
                srv.status = "failed"
                return
            backoff = min(BACKOFF_FIRST * 2 ** (srv.quick_crashes - 1), BACKOFF_MAX)
            try:
                await asyncio.wait_for(srv.stop.wait(), backoff)
            except TimeoutError:
                pass  # the backoff elapsed: start again


def _first_line(exc: BaseException) -> str:
    if isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        return _first_line(exc.exceptions[0])
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"[:300]


def call_result(server: str, tool: str, result: Any, max_bytes: int) -> dict[str, Any]:
    """The `mcp.call` result of DESIGN (content blocks as JSON, structured, is_error, bytes,
    sha256 of the uncapped result), capped at `max_bytes`: blocks that do not fit are
    dropped (a text block is cut) and `truncated: true` is set."""
    content = [b.model_dump(mode="json", by_alias=True, exclude_none=True) for b in result.content]
    structured = result.structured_content
    is_error = bool(result.is_error)
    full = orjson.dumps({"content": content, "structured": structured}, option=orjson.OPT_SORT_KEYS)
    out: dict[str, Any] = {
        "server": server,
        "tool": tool,
        "content": content,
        "structured": structured,
        "is_error": is_error,
        "bytes": len(full),
        "sha256": sha256_tag(full),
    }
    if len(full) <= max_bytes:
        return out
    kept: list[dict[str, Any]] = []
    budget = max_bytes
    for block in content:
        size = len(orjson.dumps(block))
        if size <= budget:
            kept.append(block)
            budget -= size
            continue
        if block.get("type") == "text" and isinstance(block.get("text"), str):
            text = block["text"]
            cut = {**block, "text": ""}
            room = budget - len(orjson.dumps(cut))
            while room > 0:
                cut["text"] = text.encode("utf-8")[:room].decode("utf-8", "ignore")
                excess = len(orjson.dumps(cut)) - budget
                if excess <= 0:
                    kept.append(cut)
                    budget -= len(orjson.dumps(cut))
                    break
                room -= excess
        break
    out["content"] = kept
    if structured is not None and len(orjson.dumps(structured)) > budget:
        out["structured"] = None
    out["truncated"] = True
    return out


def run_mcp_call(params: Any, constraints: Any, supervisor: McpSupervisor | None) -> dict[str, Any]:
    """Re-check `server` and `tool` against the token's constraints, then call (the pin state
    is checked by the supervisor right before the call, after any fresh listing)."""
    from ..policy.checks import mcp_name_allowed

    if supervisor is None:
        raise ToolError("mcp.call is not available: this engine runs no MCP servers")
    if not mcp_name_allowed(params.server, constraints.servers):
        raise ConstraintViolation(
            f"server {params.server} is not in the token's servers {constraints.servers}"
        )
    if not mcp_name_allowed(params.tool, constraints.tools):
        raise ConstraintViolation(
            f"tool {params.tool} is not in the token's tools {constraints.tools}"
        )
    result = supervisor.call(params.server, params.tool, dict(params.arguments))
    return call_result(params.server, params.tool, result, constraints.max_bytes)
