"""Pydantic models shared by every part of the engine (DESIGN sections 3-6).

Policy documents are validated here: unknown tools, blank allowlists, wrong types and ttl over
3600 s are refused with a message naming the field. Documents written for the reference
SecureTalon (`network_allowed`, `mounts_allowed`, images `name@sha256:...`, domains written as
`https://host`) load unchanged.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictInt,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from ..core.canon import loads_strict
from ..errors import PolicyInvalid

TOOLS: tuple[str, ...] = (
    "file.read",
    "file.write",
    "http.fetch",
    "docker.run",
    "shell.exec",
    "mcp.call",
)
Tool = Literal["file.read", "file.write", "http.fetch", "docker.run", "shell.exec", "mcp.call"]
ApprovalMode = Literal["never", "always", "untrusted"]
DecisionKind = Literal["ALLOW", "DENY", "REQUIRE_APPROVAL"]
Origin = Literal["agent", "skill", "operator"]

MAX_TTL_SECONDS = 3600
DEFAULT_TTL_SECONDS = 60
#: a secret's name (the store's file name, a policy's `secrets` entry, an intent's secret_ref)
SECRET_NAME_RE = re.compile(r"[A-Za-z0-9_.-]{1,64}")
DIGEST_RE = re.compile(r"^(?:[a-z0-9][a-z0-9._/:-]*@)?sha256:[0-9a-f]{64}$")
HTTP_METHODS: tuple[str, ...] = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


class Strict(BaseModel):
    """Unknown keys are refused. Booleans in policy documents are declared strict on top:
    "yes", "false" or 1 is a typo, never a grant."""

    # defer_build: a model's validator is built on its first use, not at import. Building all
    # of them cost every `talon` process (serve and each verb) about 0.1 s of CPU for models
    # most verbs never validate (bench/startup_bench.py); the checks are the same either way.
    model_config = ConfigDict(extra="forbid", frozen=False, defer_build=True)


# --------------------------------------------------------------------------- constraints


def _nonblank_list(values: list[str], what: str) -> list[str]:
    cleaned = [v.strip() for v in values]
    if not cleaned:
        raise ValueError(f"{what} must not be empty: an empty allowlist would allow nothing")
    for v in cleaned:
        if not v:
            raise ValueError(f"{what} must not contain blank entries")
    return cleaned


def _allowlist(values: list[str], what: str, ok: Callable[[str], bool], problem: str) -> list[str]:
    """`values` as a non-blank allowlist whose every entry passes `ok`; else the ValueError
    `what: 'entry' problem`."""
    cleaned = _nonblank_list(values, what)
    for v in cleaned:
        if not ok(v):
            raise ValueError(f"{what}: {v!r} {problem}")
    return cleaned


class BaseConstraints(Strict):
    ttl_seconds: int = Field(DEFAULT_TTL_SECONDS, ge=1, le=MAX_TTL_SECONDS)


class FileConstraints(BaseConstraints):
    """file.read / file.write: paths relative to the session workspace."""

    roots: list[str]
    max_bytes: int = Field(1_048_576, ge=0, le=1 << 30)

    @field_validator("roots")
    @classmethod
    def _roots(cls, v: list[str]) -> list[str]:
        v = _nonblank_list(v, "roots")
        for r in v:
            if "\x00" in r:
                raise ValueError("roots must not contain NUL bytes")
        return v


class HttpConstraints(BaseConstraints):
    """http.fetch: exact hosts (or `*.example.com`), methods, sizes, ports, and the secrets
    (`secrets`, by name) that intents may inject as headers, only towards these domains."""

    domains: list[str]
    secrets: list[str] = Field(default_factory=list)
    methods: list[str] = Field(default_factory=lambda: ["GET"])
    schemes: list[Literal["http", "https"]] = Field(default_factory=lambda: ["https"])  # type: ignore[arg-type]
    ports: list[StrictInt] = Field(default_factory=list)  # `true` or "443" is a typo, not a port
    max_bytes: int = Field(1_048_576, ge=0, le=1 << 30)
    timeout_seconds: int = Field(10, ge=1, le=300)
    allow_private_addresses: bool = Field(False, strict=True)
    max_redirects: int = Field(5, ge=0, le=5)

    @model_validator(mode="before")
    @classmethod
    def _url_domains(cls, data: Any) -> Any:
        """SecureTalon wrote domains as URLs (`https://host`): keep the host, note the scheme."""
        if not isinstance(data, dict) or not isinstance(data.get("domains"), list):
            return data
        data = dict(data)
        hosts: list[Any] = []
        schemes: set[str] = set()
        for d in data["domains"]:
            if isinstance(d, str) and "://" in d:
                scheme, _, rest = d.partition("://")
                scheme = scheme.lower()
                if scheme not in ("http", "https"):
                    raise ValueError(f"domains: scheme {scheme!r} is not http or https")
                schemes.add(scheme)
                host = rest.split("/", 1)[0]
                if "@" in host:
                    raise ValueError("domains: an entry must not carry user info")
                port = ""
                if host.startswith("[") and "]:" in host:
                    host, _, port = host.rpartition(":")
                elif ":" in host and not host.startswith("["):
                    host, _, port = host.rpartition(":")
                if port:
                    if not (port.isascii() and port.isdigit()):
                        raise ValueError(f"domains: {d!r} has a port that is not a number")
                    ports = data.get("ports")
                    ports = list(ports) if isinstance(ports, list) else []
                    if int(port) not in ports:
                        ports.append(int(port))
                    data["ports"] = ports
                hosts.append(host)
            else:
                hosts.append(d)
        data["domains"] = hosts
        if schemes and "schemes" not in data:
            data["schemes"] = sorted(schemes)
        return data

    @field_validator("domains")
    @classmethod
    def _domains(cls, v: list[str]) -> list[str]:
        v = _nonblank_list(v, "domains")
        out = []
        for d in v:
            d = d.lower().rstrip(".")
            if any(c in d for c in "/\\@ \t\x00?#"):
                raise ValueError(f"domains: {d!r} is not a host name")
            out.append(d)
        return out

    @field_validator("secrets")
    @classmethod
    def _secrets(cls, v: list[str]) -> list[str]:
        out: list[str] = []
        for name in v:
            if not SECRET_NAME_RE.fullmatch(name) or name in (".", ".."):
                raise ValueError(
                    f"secrets: {name!r} is not a secret name (1-64 of A-Z a-z 0-9 _ . -)"
                )
            if name not in out:
                out.append(name)
        return out

    @field_validator("methods")
    @classmethod
    def _methods(cls, v: list[str]) -> list[str]:
        v = [m.upper() for m in _nonblank_list(v, "methods")]
        allowed = set(HTTP_METHODS)
        bad = [m for m in v if m not in allowed]
        if bad:
            raise ValueError(f"methods: {bad} not in {sorted(allowed)}")
        return v

    @field_validator("schemes")
    @classmethod
    def _schemes(cls, v: list[str]) -> list[str]:
        if not v:
            raise ValueError("schemes must not be empty")
        return v

    @field_validator("ports")
    @classmethod
    def _ports(cls, v: list[int]) -> list[int]:
        for p in v:
            if not 1 <= p <= 65535:
                raise ValueError(f"ports: {p} is not a TCP port")
        return v


class MountSpec(Strict):
    """A host directory a container may see (always read-only unless `read_only: false`)."""

    source: str
    target: str
    read_only: bool = Field(True, strict=True)

    @field_validator("source", "target")
    @classmethod
    def _abs(cls, v: str) -> str:
        if not v.startswith("/") or "\x00" in v:
            raise ValueError(f"mount path {v!r} must be absolute")
        return v


class DockerConstraints(BaseConstraints):
    images: list[str]
    network: bool = Field(False, strict=True)
    mounts: list[MountSpec] = Field(default_factory=list)
    memory_mb: int = Field(512, ge=16, le=65536)
    cpus: float = Field(1.0, gt=0, le=64)
    pids_limit: int = Field(64, ge=1, le=4096)
    timeout_seconds: int = Field(30, ge=1, le=3600)
    max_output_bytes: int = Field(1_048_576, ge=0, le=64 << 20)
    require_signed: bool = Field(False, strict=True)

    @model_validator(mode="before")
    @classmethod
    def _securetalon(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        data = dict(data)
        if "network_allowed" in data:
            if "network" in data:
                raise ValueError("give either network or network_allowed, not both")
            data["network"] = data.pop("network_allowed")
        if "mounts_allowed" in data:
            if "mounts" in data:
                raise ValueError("give either mounts or mounts_allowed, not both")
            m = data.pop("mounts_allowed")
            data["mounts"] = [] if m is False or m is None else m
        if isinstance(data.get("mounts"), list):
            data["mounts"] = [parse_mount(m) for m in data["mounts"]]
        return data

    @field_validator("images")
    @classmethod
    def _images(cls, v: list[str]) -> list[str]:
        return _allowlist(
            v,
            "images",
            lambda i: not any(c.isspace() for c in i) and "\x00" not in i,
            "is not an image reference",
        )


def parse_mount(m: Any) -> Any:
    """Accept `src:dst[:ro|rw]` strings as SecureTalon wrote them."""
    if isinstance(m, str):
        parts = m.split(":")
        if len(parts) not in (2, 3) or (len(parts) == 3 and parts[2] not in ("ro", "rw")):
            raise ValueError(f"mounts: {m!r} is not source:target[:ro|rw]")
        return {
            "source": parts[0],
            "target": parts[1],
            "read_only": len(parts) == 2 or parts[2] == "ro",
        }
    return m


class ShellConstraints(BaseConstraints):
    """shell.exec: exact program paths; argv only, never a shell."""

    commands: list[str]
    roots: list[str] = Field(default_factory=lambda: ["."])
    timeout_seconds: int = Field(10, ge=1, le=3600)
    max_output_bytes: int = Field(1_048_576, ge=0, le=64 << 20)
    #: None: a listed program with any arguments; a list: only these exact argument vectors
    #: (argv[0] included), as "approve and remember" pins them
    exact_argv: list[list[str]] | None = None

    @field_validator("commands")
    @classmethod
    def _commands(cls, v: list[str]) -> list[str]:
        return _allowlist(
            v, "commands", lambda c: c.startswith("/"), "must be an absolute program path"
        )

    @field_validator("roots")
    @classmethod
    def _roots(cls, v: list[str]) -> list[str]:
        return _nonblank_list(v, "roots")

    @model_validator(mode="after")
    def _exact_argv(self) -> ShellConstraints:
        if self.exact_argv is None:
            return self
        if not self.exact_argv:
            raise ValueError("exact_argv must not be empty: omit it to allow any arguments")
        for vector in self.exact_argv:
            if not vector or any("\x00" in a for a in vector):
                raise ValueError("exact_argv: each entry is a non-empty argv without NUL bytes")
            if vector[0] not in self.commands:
                raise ValueError(f"exact_argv: program {vector[0]!r} is not in commands")
        return self


#: a registered MCP server's name, and an upstream tool's name as an allowlist entry
MCP_SERVER_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,39}$")
MCP_TOOL_NAME_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")


class McpConstraints(BaseConstraints):
    """mcp.call: registered server names and the upstream's own tool names (`echo`, not
    `notes__echo`); `"*"` matches any and must be written on purpose (the advisor flags it)."""

    servers: list[str]
    tools: list[str]
    max_bytes: int = Field(65_536, ge=0, le=64 << 20)

    @field_validator("servers")
    @classmethod
    def _servers(cls, v: list[str]) -> list[str]:
        return _allowlist(
            v,
            "servers",
            lambda s: s == "*" or MCP_SERVER_NAME_RE.match(s) is not None,
            "is not a server name",
        )

    @field_validator("tools")
    @classmethod
    def _tools(cls, v: list[str]) -> list[str]:
        return _allowlist(
            v,
            "tools",
            lambda t: t == "*" or MCP_TOOL_NAME_RE.match(t) is not None,
            "is not an MCP tool name",
        )


CONSTRAINT_MODELS: dict[str, type[BaseConstraints]] = {
    "file.read": FileConstraints,
    "file.write": FileConstraints,
    "http.fetch": HttpConstraints,
    "docker.run": DockerConstraints,
    "shell.exec": ShellConstraints,
    "mcp.call": McpConstraints,
}

Constraints = (
    FileConstraints | HttpConstraints | DockerConstraints | ShellConstraints | McpConstraints
)


# --------------------------------------------------------------------------- policy


class Override(Strict):
    """One rule of a session policy. Only an enabled `allow: true` override allows anything;
    an enabled `allow: false` override for a tool denies it whatever else says."""

    tool: Tool
    allow: bool = Field(True, strict=True)
    approval: ApprovalMode = "untrusted"
    enabled: bool = Field(True, strict=True)
    note: str = ""
    constraints: Constraints | None = None

    @model_validator(mode="after")
    def _needs_constraints(self) -> Override:
        if self.allow and self.constraints is None:
            raise ValueError(
                f"constraints: an allowing {self.tool} override needs constraints "
                "(an allowlist of what it may touch)"
            )
        return self

    @field_validator("constraints", mode="before")
    @classmethod
    def _typed_constraints(cls, v: Any, info: ValidationInfo) -> Any:
        """Validate constraints with the model of the override's tool."""
        tool = info.data.get("tool")
        if v is None or tool not in CONSTRAINT_MODELS:
            return v
        if isinstance(v, BaseModel):
            v = v.model_dump()
        return CONSTRAINT_MODELS[tool].model_validate(v)


HookMode = Literal["guard", "route"]


class AgentHooks(Strict):
    """How `talon hook` governs the agent's own tools in this session (DESIGN section 3).

    `guard`: Talon decides, the agent runs the tool. `route`: the agent may run only reads
    itself; every other tool is denied with the name of the `mcp__talon__*` tool to use, so
    that the broker runs it. `native_tools`: agent tools Talon has no mapping for (e.g.
    TodoWrite) that the operator lets through; every other unknown tool is denied."""

    mode: HookMode = "guard"
    native_tools: list[str] = Field(default_factory=list)

    @field_validator("native_tools")
    @classmethod
    def _native(cls, v: list[str]) -> list[str]:
        for name in v:
            if not re.fullmatch(r"[A-Za-z][A-Za-z0-9_.-]{0,63}", name):
                raise ValueError(f"native_tools: {name!r} is not a tool name")
        return v


class Policy(Strict):
    version: Literal[1] = 1
    overrides: list[Override] = Field(default_factory=list)
    agent_hooks: AgentHooks | None = None

    def for_tool(self, tool: str) -> list[tuple[int, Override]]:
        return [(i, o) for i, o in enumerate(self.overrides) if o.tool == tool and o.enabled]

    def to_doc(self) -> dict[str, Any]:
        """The JSON document form (no defaults dropped, so diffs are explicit; a policy
        without `agent_hooks` keeps the document, and so the hash, it always had)."""
        doc = self.model_dump(mode="json")
        if self.agent_hooks is None:
            doc.pop("agent_hooks")
        return doc

    @property
    def hooks(self) -> AgentHooks:
        return self.agent_hooks or AgentHooks()


def format_validation_error(exc: ValidationError) -> str:
    """One line per problem, each naming the field path."""
    lines = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"] if not str(p).startswith("function-"))
        msg = err["msg"].removeprefix("Value error, ")
        lines.append(f"{loc or '(document)'}: {msg}")
    return "; ".join(lines)


def read_policy_json(text: str | bytes) -> Any:
    """The JSON document in a policy file's text, read strictly (`canon.loads_strict`: no
    duplicate keys, NaN or nesting too deep to parse); raise PolicyInvalid saying why not.
    Validate the result with `parse_policy`."""
    try:
        return loads_strict(text)
    except ValueError as exc:  # JSONDecodeError, TooDeep, duplicate keys, NaN, bad UTF-8
        raise PolicyInvalid(f"not valid JSON: {exc}") from None


def parse_policy(doc: Any) -> Policy:
    """Validate a policy document; raise PolicyInvalid naming the field on any problem."""
    if not isinstance(doc, dict):
        raise PolicyInvalid("policy must be a JSON object with 'version' and 'overrides'")
    try:
        return Policy.model_validate(doc)
    except ValidationError as exc:
        raise PolicyInvalid(f"invalid policy: {format_validation_error(exc)}") from exc


# --------------------------------------------------------------------------- intents


class FileReadParams(Strict):
    path: str


class FileWriteParams(Strict):
    path: str
    content: str
    encoding: Literal["utf-8", "base64"] = "utf-8"


class SecretRef(Strict):
    secret_ref: str


class HttpFetchParams(Strict):
    url: str
    method: str = "GET"
    headers: dict[str, str | SecretRef] = Field(default_factory=dict)
    body: str | None = None


class DockerRunParams(Strict):
    image: str
    command: list[str] | None = None
    input: Any = None
    env: dict[str, str] = Field(default_factory=dict)


class ShellExecParams(Strict):
    argv: list[str] = Field(min_length=1)
    cwd: str = "."


class McpCallParams(Strict):
    server: str
    tool: str
    arguments: dict[str, Any] = Field(default_factory=dict)


PARAM_MODELS: dict[str, type[Strict]] = {
    "file.read": FileReadParams,
    "file.write": FileWriteParams,
    "http.fetch": HttpFetchParams,
    "docker.run": DockerRunParams,
    "shell.exec": ShellExecParams,
    "mcp.call": McpCallParams,
}


class ToolIntent(Strict):
    tool: Tool
    params: dict[str, Any] = Field(default_factory=dict)
    origin: Origin = "agent"

    @property
    def untrusted(self) -> bool:
        return self.origin == "skill"


class Decision(Strict):
    decision: DecisionKind
    reason: str
    #: the error code a DENY reaches the agent with (None: POLICY_DENIED)
    code: Literal["POLICY_DENIED", "CONSTRAINT_VIOLATION"] | None = None
    override_index: int | None = None
    constraints: dict[str, Any] | None = None
    ttl_seconds: int = DEFAULT_TTL_SECONDS
    suggested_fix: dict[str, Any] | None = None
    warnings: list[str] = Field(default_factory=list)


# --------------------------------------------------------------------------- state


class Session(Strict):
    id: str
    label: str
    workspace: str
    status: Literal["open", "closed"] = "open"
    created: str
    closed: str | None = None


class Skill(Strict):
    name: str
    version: str
    image: str
    manifest: dict[str, Any] = Field(default_factory=dict)
    signature: str | None = None
    key_id: str | None = None
    registered: str = ""


class AuditEvent(Strict):
    seq: int
    event_id: str
    ts: str
    session_id: str | None = None
    run_id: str | None = None
    type: str
    data: dict[str, Any] = Field(default_factory=dict)
    prev_hash: str
    hash: str


AUDIT_EVENT_TYPES: tuple[str, ...] = (
    "engine.started",
    "engine.stopped",
    "session.created",
    "session.closed",
    "policy.updated",
    "agent.connected",
    "agent.disconnected",
    "admin.connected",
    "admin.disconnected",
    "pipe.rejected",
    "run.started",
    "policy.intent.received",
    "policy.decision",
    "approval.requested",
    "approval.decided",
    "approval.refused",
    "capability.issued",
    "tool.executed",
    "skill.started",
    "skill.finished",
    "token.revoked",
    "run.finished",
    "audit.recovered",
    "audit.index_rebuilt",
    "audit.checkpoint",
    "tool.reaped",
    "tool.reported",
    "mcp.server.added",
    "mcp.server.removed",
    "mcp.server.started",
    "mcp.server.crashed",
    "mcp.tool_pinned",
    "mcp.tool_changed",
    "mcp.tool_approved",
)
