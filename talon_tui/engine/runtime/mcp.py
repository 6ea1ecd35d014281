"""Registered upstream MCP servers and the pins of their tools (DESIGN section 7).

`McpRegistry` is the engine's side of `broker.mcp.McpHost`: it validates registrations, keeps
them in state (`mcp_servers`), and pins every tool the first time a server lists it (name,
description and input schema, sha256, in `mcp_pins`). A later listing with other content
quarantines the tool (not listed to agents, calls refused) and audits `mcp.tool_changed`,
until an operator approves the new content (`approve_tool`). Secrets are stored by name only;
the broker reads their values when it starts the server.
"""

from __future__ import annotations

import asyncio
import re
import threading
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from ..api import McpServerInfo, McpToolPin
from ..audit.errors import AuditClosed
from ..broker.mcp import RESERVED_ENV, McpServerSpec
from ..core.ids import now_iso
from ..errors import BadRequest, NotFound, TalonError
from ..policy.models import MCP_SERVER_NAME_RE
from .secrets import SecretStore, check_name
from .state import StateStore

if TYPE_CHECKING:
    from .store import EngineStore

ENV_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")
MAX_ARGV = 256
MAX_ARG_CHARS = 4096
MAX_ENV = 64
MAX_ENV_VALUE_CHARS = 16_384

Emit = Callable[[str, dict[str, Any]], None]


class McpRegistry:
    """Servers, pins and quarantine; safe to call from any thread (state has its lock)."""

    def __init__(self, state: StateStore, secrets: SecretStore, emit: Emit | None = None) -> None:
        self.state = state
        self.secrets = secrets
        #: audits one event; set by the engine (thread safe: it hops to the engine's loop)
        self.emit: Emit | None = emit
        self._lock = threading.RLock()

    def _emit(self, etype: str, data: dict[str, Any]) -> None:
        if self.emit is not None:
            self.emit(etype, data)

    # ------------------------------------------------------------------ registration

    def validate(self, name: Any, command: Any, env: Any) -> dict[str, Any]:
        """The state document for a registration, or BadRequest naming the problem."""
        if not isinstance(name, str) or not MCP_SERVER_NAME_RE.match(name):
            raise BadRequest(
                f"server name {str(name)[:80]!r} must be 1-40 of a-z, 0-9, '-' and '_', "
                "starting with a letter or digit",
                details={"field": "name"},
            )
        if (
            not isinstance(command, list)
            or not command
            or len(command) > MAX_ARGV
            or not all(isinstance(a, str) and a for a in command)
        ):
            raise BadRequest(
                f"command must be a list of 1-{MAX_ARGV} non-empty strings (program, then its "
                "arguments)",
                details={"field": "command"},
            )
        for arg in command:
            if "\x00" in arg or len(arg) > MAX_ARG_CHARS:
                raise BadRequest(
                    f"command arguments must be under {MAX_ARG_CHARS} characters, without NUL",
                    details={"field": "command"},
                )
        if env is None:
            env = {}
        if not isinstance(env, dict) or len(env) > MAX_ENV:
            raise BadRequest(
                f"env must be an object of at most {MAX_ENV} variables", details={"field": "env"}
            )
        clean: dict[str, dict[str, str]] = {}
        for var, ref in env.items():
            if not isinstance(var, str) or not ENV_NAME_RE.match(var):
                raise BadRequest(
                    f"env: {str(var)[:80]!r} is not a variable name", details={"field": "env"}
                )
            if var in RESERVED_ENV:
                raise BadRequest(
                    f"env: {var} is set by the broker (a minimal PATH and a private HOME)",
                    details={"field": "env"},
                )
            if isinstance(ref, str):
                if "\x00" in ref or len(ref) > MAX_ENV_VALUE_CHARS:
                    raise BadRequest(f"env: {var}'s value is too long or holds NUL")
                clean[var] = {"value": ref}
            elif (
                isinstance(ref, dict) and set(ref) == {"secret"} and isinstance(ref["secret"], str)
            ):
                secret = check_name(ref["secret"])
                if secret not in self.secrets.names():
                    raise BadRequest(
                        f"env: {var} refers to secret {secret!r}, which is not set "
                        f"(talon secret set {secret})",
                        details={"field": "env"},
                    )
                clean[var] = {"secret": secret}
            else:
                raise BadRequest(
                    f'env: {var} must be a string or {{"secret": NAME}}', details={"field": "env"}
                )
        return {"name": name, "command": list(command), "env": clean}

    def add_server(self, name: Any, command: Any, env: Any, *, actor: str) -> dict[str, Any]:
        doc = self.validate(name, command, env)
        with self._lock:
            if any(s["name"] == doc["name"] for s in self.state.list_mcp_servers()):
                raise BadRequest(
                    f"an MCP server named {doc['name']!r} is registered already; remove it first",
                    details={"field": "name"},
                )
            doc["added"] = now_iso()
            doc["actor"] = actor
            self.state.put_mcp_server(doc)
        return doc

    def remove_server(self, name: str) -> dict[str, Any]:
        with self._lock:
            doc = self.server_doc(name)
            self.state.remove_mcp_server(name)
        return doc

    def server_doc(self, name: str) -> dict[str, Any]:
        for s in self.state.list_mcp_servers():
            if s["name"] == name:
                return s
        raise NotFound(f"no MCP server named {name!r} is registered", details={"server": name})

    def servers(self) -> list[dict[str, Any]]:
        return self.state.list_mcp_servers()

    def pins(self, server: str | None = None) -> list[dict[str, Any]]:
        return sorted(self.state.mcp_pins(server), key=lambda p: (p["server"], p["tool"]))

    def approve_tool(self, server: str, tool: str, *, actor: str) -> dict[str, Any]:
        """Pin the quarantined tool's new content; the approved pin. NotFound/BadRequest when
        there is nothing to approve."""
        with self._lock:
            self.server_doc(server)
            pin = next((p for p in self.state.mcp_pins(server) if p["tool"] == tool), None)
            if pin is None:
                raise NotFound(
                    f"tool {tool!r} of server {server} has never been listed",
                    details={"server": server, "tool": tool},
                )
            if pin.get("status") != "quarantined" or not isinstance(pin.get("pending"), dict):
                raise BadRequest(
                    f"tool {tool!r} of server {server} is not quarantined; nothing to approve",
                    details={"server": server, "tool": tool},
                )
            pending = pin["pending"]
            new = {
                "server": server,
                "tool": tool,
                "status": "pinned",
                "sha256": pending["sha256"],
                "description": pending["description"],
                "input_schema": pending["input_schema"],
                "pinned": now_iso(),
                "approved_by": actor,
                "pending": None,
            }
            self.state.put_mcp_pin(new)
        return {"old_sha256": pin["sha256"], **new}

    # ------------------------------------------------------------------ McpHost

    def mcp_spec(self, name: str) -> McpServerSpec | None:
        for s in self.state.list_mcp_servers():
            if s["name"] == name:
                return McpServerSpec(name=name, command=tuple(s["command"]), env=s.get("env", {}))
        return None

    def mcp_tools_listed(self, server: str, tools: list[dict[str, Any]]) -> None:
        with self._lock:
            if self.mcp_spec(server) is None:
                return  # removed meanwhile: pin nothing
            pins = {p["tool"]: p for p in self.state.mcp_pins(server)}
            for t in tools:
                pin = pins.get(t["name"])
                if pin is None:
                    self.state.put_mcp_pin(
                        {
                            "server": server,
                            "tool": t["name"],
                            "status": "pinned",
                            "sha256": t["sha256"],
                            "description": t["description"],
                            "input_schema": t["input_schema"],
                            "pinned": now_iso(),
                            "approved_by": None,
                            "pending": None,
                        }
                    )
                    self._emit(
                        "mcp.tool_pinned",
                        {"server": server, "tool": t["name"], "sha256": t["sha256"]},
                    )
                    continue
                pending = pin.get("pending") if pin.get("status") == "quarantined" else None
                current = pending["sha256"] if isinstance(pending, dict) else pin["sha256"]
                if t["sha256"] == current:
                    continue
                self.state.put_mcp_pin(
                    {
                        **pin,
                        "status": "quarantined",
                        "pending": {
                            "sha256": t["sha256"],
                            "description": t["description"],
                            "input_schema": t["input_schema"],
                            "seen": now_iso(),
                        },
                    }
                )
                self._emit(
                    "mcp.tool_changed",
                    {
                        "server": server,
                        "tool": t["name"],
                        "pinned_sha256": pin["sha256"],
                        "new_sha256": t["sha256"],
                        "description_changed": t["description"] != pin["description"],
                        "schema_changed": t["input_schema"] != pin["input_schema"],
                    },
                )

    def mcp_pin_refusal(self, server: str, tool: str) -> str | None:
        pin = next((p for p in self.state.mcp_pins(server) if p["tool"] == tool), None)
        if pin is None:
            return f"tool {tool!r} of MCP server {server} has not been listed and pinned"
        if pin.get("status") != "pinned":
            return (
                f"tool {tool!r} of MCP server {server} changed since it was pinned and is "
                f"quarantined until an operator approves it (talon mcp approve {server} {tool})"
            )
        return None

    def mcp_event(self, etype: str, data: dict[str, Any]) -> None:
        self._emit(etype, data)


def _secret_ref(ref: Any) -> bool:
    return isinstance(ref, dict) and set(ref) == {"secret"} and isinstance(ref["secret"], str)


def env_summary(env: Mapping[str, Mapping[str, str]]) -> dict[str, str]:
    """VAR -> "value" or "secret:NAME": what may be shown and audited (never a value)."""
    return {
        var: f"secret:{ref['secret']}" if "secret" in ref else "value"
        for var, ref in sorted(env.items())
    }


class McpFlow:
    """Mixed into `Engine`: the admin ops on MCP servers and the agent op `mcp.tools`.

    What it uses of its host is declared here (the Engine sets these attributes)."""

    store: EngineStore
    started: bool
    _pool: Any

    if TYPE_CHECKING:

        def _record(
            self,
            etype: str,
            data: dict[str, Any],
            *,
            session_id: str | None = None,
            run_id: str | None = None,
        ) -> dict[str, Any]: ...

        async def durable(self) -> None: ...

    def _mcp_emit(self, etype: str, data: dict[str, Any]) -> None:
        """Audit an event from the broker's MCP thread (the log is thread safe)."""
        if not self.started:
            return
        redacted, _ = self.store.redactor(data)
        try:
            self._record(etype, redacted)
        except AuditClosed:
            return  # the engine is stopping: the server events end with it

    async def _blocking(self, fn: Callable[..., Any], *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._pool, fn, *args)

    async def add_mcp_server(
        self, name: Any, command: Any, env: Any = None, *, actor: str = "operator"
    ) -> McpServerInfo:
        doc = self.store.mcp.add_server(name, command, env, actor=actor)
        argv, _ = self.store.redactor(doc["command"])
        self._record(
            "mcp.server.added",
            {"server": doc["name"], "command": argv, "env": env_summary(doc["env"])},
        )
        await self.durable()
        return self._server_info(doc, {}, [])

    async def remove_mcp_server(self, name: str) -> None:
        self.store.mcp.server_doc(name)
        broker_mcp = self.store.broker.mcp
        if broker_mcp is not None:
            await self._blocking(broker_mcp.stop_server, name)
        self.store.mcp.remove_server(name)
        self._record("mcp.server.removed", {"server": name})
        await self.durable()

    async def list_mcp_servers(self) -> list[McpServerInfo]:
        broker_mcp = self.store.broker.mcp
        status = broker_mcp.status() if broker_mcp is not None else {}
        pins = self.store.mcp.pins()
        return [
            self._server_info(doc, status.get(doc["name"], {}), pins)
            for doc in self.store.mcp.servers()
        ]

    @staticmethod
    def _server_info(
        doc: dict[str, Any], status: dict[str, Any], pins: list[dict[str, Any]]
    ) -> McpServerInfo:
        return McpServerInfo(
            name=doc["name"],
            command=list(doc["command"]),
            env=env_summary(doc.get("env", {})),
            added=doc.get("added", ""),
            status=status.get("status", "stopped"),
            restarts=status.get("restarts", 0),
            last_error=status.get("last_error", ""),
            tools=[McpToolPin.model_validate(p) for p in pins if p["server"] == doc["name"]],
        )

    async def approve_mcp_tool(
        self, server: str, tool: str, *, actor: str = "operator"
    ) -> McpToolPin:
        pin = self.store.mcp.approve_tool(server, tool, actor=actor)
        self._record(
            "mcp.tool_approved",
            {
                "server": server,
                "tool": tool,
                "old_sha256": pin["old_sha256"],
                "new_sha256": pin["sha256"],
                "by": actor,
            },
        )
        await self.durable()
        return McpToolPin.model_validate({k: v for k, v in pin.items() if k != "old_sha256"})

    async def mcp_tools(self) -> list[dict[str, Any]]:
        """Agent op `mcp.tools`: every pinned, unquarantined tool of every registered server
        (servers are started and listed afresh; a server that does not start lists nothing)."""
        broker_mcp = self.store.broker.mcp
        if broker_mcp is None:
            return []
        out: list[dict[str, Any]] = []
        for doc in self.store.mcp.servers():
            name = doc["name"]
            try:
                listed = await self._blocking(broker_mcp.list_tools, name)
            except TalonError:
                continue  # not running: its tools are not offered (the Servers screen says why)
            pins = {p["tool"]: p for p in self.store.mcp.pins(name)}
            for t in listed:
                pin = pins.get(t["name"])
                if pin is None or pin.get("status") != "pinned" or pin["sha256"] != t["sha256"]:
                    continue
                out.append(
                    {
                        "server": name,
                        "name": t["name"],
                        "description": t["description"],
                        "input_schema": t["input_schema"],
                    }
                )
        await self.durable()
        return out
