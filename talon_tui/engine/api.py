"""The one engine interface the console talks to.

Implemented by the in-process `Engine` (engine.py) and by the admin pipe client
(`talon_tui.client.AdminClient`), so every screen works the same whether the console hosts the
engine or attaches to a running `talon serve`. All methods are async; results are the models
below.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, Literal, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict, Field

from .policy.models import Policy, Session, Skill


class _Model(BaseModel):
    """Each model's validator is built on its first use, not at import (as `policy.models`
    does): a process validates only the few it needs (bench/startup_bench.py)."""

    model_config = ConfigDict(defer_build=True)


class SessionInfo(Session):
    runs: int = 0
    last_activity: str | None = None
    agents_connected: int = 0


class AgentPeer(_Model):
    conn_id: str
    session_id: str | None
    role: Literal["agent", "admin"]
    subject: str
    uid: int | None = None
    pid: int | None = None
    connected_at: str


class Cut(_Model):
    """How much of one field an admin frame left out (engine/core/frames.py): its full JSON size,
    the strings shortened and the list or object entries dropped."""

    bytes: int
    strings: int = 0
    items: int = 0


class ApprovalRequest(_Model):
    approval_id: str
    session_id: str
    run_id: str | None
    subject: str
    tool: str
    params: dict[str, Any]
    origin: str
    created: str
    expires: str
    reason: str = ""
    remember_override: dict[str, Any] | None = None  # what "approve and remember" would add
    #: set when this is a preview (over the pipe): the fields shortened and by how much;
    #: `get_approval` returns the whole request
    cut: dict[str, Cut] | None = None
    #: the content its run began with (an MCP gateway names its client there), redacted
    run_content: str = ""


class ApprovalPreview(_Model):
    """What deciding `y` on an approval would do, taken at the moment it is asked for."""

    approval_id: str
    tool: str
    taken: str  # when the preview was taken (the file as it is now, the address it resolves to)
    fields: list[tuple[str, str]] = Field(default_factory=list)
    lines: list[str] = Field(default_factory=list)  # the diff, headers, argv, ...; capped
    lines_total: int = 0  # lines before the cap
    bytes: int = 0  # size of the content the intent carries
    note: str = ""


class RunSummary(_Model):
    run_id: str
    session_id: str | None
    status: str  # running | ok | error | denied | ...
    started: str
    finished: str | None = None
    steps: int = 0
    allowed: int = 0
    denied: int = 0
    approvals: int = 0
    content: str = ""
    cut: dict[str, Cut] | None = None  # over the pipe: content shortened (engine/core/frames.py)


class ReplayStep(_Model):
    seq: int
    ts: str
    type: str
    tool: str | None = None
    params: dict[str, Any] | None = None
    decision: str | None = None
    reason: str | None = None
    token_sha256: str | None = None
    output: Any = None
    output_sha256: str | None = None
    output_matches: bool | None = None
    changed_by_policy: bool = False
    what_if_decision: str | None = None
    cut: dict[str, Cut] | None = None  # over the pipe: params/output/reason shortened
    #: "agent" for a step the agent ran itself (agent hooks), None for the broker's
    executor: str | None = None


class ReplayResult(_Model):
    run_id: str
    session_id: str | None
    chain_valid: bool
    chain_first_bad_seq: int | None = None
    steps: list[ReplayStep] = Field(default_factory=list)
    changed_by_policy: list[int] | None = None


class SimulationChange(_Model):
    seq: int
    run_id: str | None
    tool: str
    params: dict[str, Any]
    before: str
    after: str
    reason: str
    cut: dict[str, Cut] | None = None  # over the pipe: params/reason shortened


class TimelineMarker(_Model):
    """One step of a session on its time axis."""

    seq: int
    ts: str
    kind: Literal["decision", "denial", "approval", "execution", "policy"]
    run_id: str | None = None
    tool: str | None = None
    target: str | None = None
    decision: str | None = None  # ALLOW | DENY | REQUIRE_APPROVAL; an approval's outcome
    wait_ms: int | None = None  # an approval's wait, request to decision
    duration_ms: int | None = None  # an execution's duration
    status: str | None = None  # an execution's status
    output_matches: bool | None = None  # an execution's recorded output checks out
    text: str = ""


class RunLane(_Model):
    """One run of a session: where it starts and ends on the axis, and its counts."""

    run_id: str
    number: int = 0  # its place among the session's runs, from 1, oldest first
    started: str
    finished: str | None = None
    status: str = "running"
    first_seq: int
    last_seq: int
    events: int


class PolicyChange(_Model):
    seq: int
    ts: str
    policy_sha256: str | None = None
    previous_sha256: str | None = None
    actor: str | None = None
    reason: str | None = None
    diff: list[str] = Field(default_factory=list)  # unified diff of the documents


class WhatIfGroup(_Model):
    """The decisions another policy would change, under the override that decides them."""

    override: str  # "override #2 file.write" or "no override (deny by default)"
    changes: list[SimulationChange] = Field(default_factory=list)
    total: int = 0  # how many changes in all (over the pipe `changes` may list fewer)


class SessionTimeline(_Model):
    """A session's runs on one time axis, read through the index. `markers` holds the steps
    with seq in [from_seq, to_seq), at most `max_markers` of them (`next_seq`: where to go on);
    `runs` the lanes of the runs those steps belong to and a few either side (`run_count` in
    all); `policies` the session's policy changes (diffs only for those among the markers);
    `counts` the session's denials, approvals and policy changes (`session_jump` finds them)."""

    session_id: str
    events: int
    first_ts: str | None = None
    last_ts: str | None = None
    run_count: int = 0
    runs: list[RunLane] = Field(default_factory=list)
    policies: list[PolicyChange] = Field(default_factory=list)
    markers: list[TimelineMarker] = Field(default_factory=list)
    next_seq: int | None = None
    counts: dict[str, int] = Field(default_factory=dict)
    what_if: list[WhatIfGroup] | None = None


class RunStepDiff(_Model):
    """One aligned step of two runs (matched by tool and target); a side is None when only
    the other run has it."""

    tool: str
    target: str
    a: dict[str, Any] | None = None  # {seq, decision, params, output_sha256, status}
    b: dict[str, Any] | None = None
    differs: list[str] = Field(default_factory=list)  # decision | params | output | missing


class RunComparison(_Model):
    run_a: str
    run_b: str
    steps: list[RunStepDiff] = Field(default_factory=list)


class VerifyReport(_Model):
    valid: bool
    events: int
    first_bad_seq: int | None = None
    damage: str | None = None  # modified | gap | reordered | truncated | bad_signature | torn | ...
    message: str = ""
    signed_head_seq: int | None = None
    #: events after the last checkpoint of a valid log, within the limits (not damage: a
    #: running engine signs them within the interval); 0 in a report of damage
    unsigned_tail: int = 0
    #: what was found about audit/index.bin (None: not checked)
    index: str | None = None


class SkillInfo(Skill):
    signature_status: Literal["verified", "unsigned", "bad"] = "unsigned"


class EngineStatus(_Model):
    data_dir: str
    mode: Literal["in-process", "attached"]
    sessions_open: int
    pending_approvals: int
    oldest_approval_age_s: int | None = None
    agents_connected: int
    audit_head_seq: int
    last_checkpoint_seq: int | None = None
    last_checkpoint_ts: str | None = None
    docker_runtime: str | None = None
    docker_available: bool = False
    #: configured limits and current use (tools_running, tools_queued, ...); see limits.py
    limits: dict[str, float] = Field(default_factory=dict)
    #: `talon serve --export`: per exporter {name, kind, target, state, sent_seq, lag, error, ...}
    exports: list[dict[str, Any]] = Field(default_factory=list)


class BusMessage(_Model):
    """One item on the engine's event bus (and on `events.subscribe`)."""

    kind: Literal["audit", "approval", "run", "agent", "missed"]
    payload: dict[str, Any]


@runtime_checkable
class EngineAPI(Protocol):
    @property
    def audit_path(self) -> Path: ...

    async def status(self) -> EngineStatus: ...
    async def list_sessions(self) -> list[SessionInfo]: ...
    async def create_session(
        self, label: str, workspace: str | None = None, policy: dict[str, Any] | None = None
    ) -> tuple[Session, str]: ...
    async def close_session(self, session_id: str) -> None: ...
    async def issue_agent_key(self, session_id: str) -> str: ...
    async def get_policy(self, session_id: str) -> Policy: ...
    async def set_policy(self, session_id: str, policy: dict[str, Any]) -> Policy: ...
    async def list_runs(
        self, session_id: str | None = None, limit: int = 500, offset: int = 0
    ) -> list[RunSummary]: ...
    async def list_agents(self) -> list[AgentPeer]: ...
    async def list_approvals(self) -> list[ApprovalRequest]: ...
    async def get_approval(self, approval_id: str) -> ApprovalRequest: ...
    async def decide_approval(
        self, approval_id: str, allow: bool, remember: bool = False
    ) -> None: ...
    async def approval_preview(self, approval_id: str) -> ApprovalPreview: ...
    async def query_audit(
        self,
        session_id: str | None = None,
        run_id: str | None = None,
        types: list[str] | None = None,
        from_seq: int = 0,
        limit: int = 1000,
    ) -> list[dict[str, Any]]: ...
    async def get_audit_event(self, seq: int) -> dict[str, Any]: ...
    async def verify_audit(self) -> VerifyReport: ...
    async def replay(self, run_id: str, policy: dict[str, Any] | None = None) -> ReplayResult: ...
    async def simulate(self, session_id: str, policy: dict[str, Any]) -> list[SimulationChange]: ...
    async def session_timeline(
        self,
        session_id: str,
        policy: dict[str, Any] | None = None,
        from_seq: int = 0,
        to_seq: int | None = None,
        max_markers: int = 2000,
        summary: bool = True,
    ) -> SessionTimeline: ...
    async def session_jump(
        self, session_id: str, kind: str, seq: int, direction: int = 1
    ) -> int | None: ...
    async def compare_runs(self, run_a: str, run_b: str) -> RunComparison: ...
    async def list_skills(self) -> list[SkillInfo]: ...
    async def register_skill(self, skill: dict[str, Any]) -> SkillInfo: ...
    async def revoke_token(self, jti: str | None = None, session_id: str | None = None) -> None: ...
    async def set_secret(self, name: str, value: str) -> None: ...
    async def list_mcp_servers(self) -> list[McpServerInfo]: ...
    async def approve_mcp_tool(self, server: str, tool: str) -> McpToolPin: ...
    def subscribe(self, from_seq: int | None = None) -> AsyncIterator[BusMessage]: ...


class McpToolPin(_Model):
    """A tool of a registered MCP server as pinned (status `pinned` or `quarantined`); a
    quarantined tool carries the content it changed to in `pending`."""

    server: str
    tool: str
    status: Literal["pinned", "quarantined"]
    sha256: str
    description: str
    input_schema: dict[str, Any] = Field(default_factory=dict)
    pinned: str = ""
    approved_by: str | None = None
    pending: dict[str, Any] | None = None

    def diff(self) -> list[str]:
        """What changed in a quarantined tool, pinned first: a unified diff of its description
        and of its input schema (pretty JSON). Raw upstream text: print it through safe_text."""
        import difflib
        import json

        pending = self.pending or {}
        out: list[str] = []
        pairs = (
            ("description", self.description, str(pending.get("description", ""))),
            (
                "input_schema",
                json.dumps(self.input_schema, indent=2, sort_keys=True),
                json.dumps(pending.get("input_schema", {}), indent=2, sort_keys=True),
            ),
        )
        for what, old, new in pairs:
            if old == new:
                out.append(f"{what}: unchanged")
                continue
            out.extend(
                d.rstrip("\n")
                for d in difflib.unified_diff(
                    old.splitlines(),
                    new.splitlines(),
                    f"{what} (pinned)",
                    f"{what} (now)",
                    lineterm="",
                )
            )
        return out


class McpServerInfo(_Model):
    """A registered MCP server: argv, env by kind only (`value` or `secret:NAME`), its
    process state as the broker sees it, and its tools' pins."""

    name: str
    command: list[str]
    env: dict[str, str] = Field(default_factory=dict)
    added: str = ""
    status: str = "stopped"
    restarts: int = 0
    last_error: str = ""
    tools: list[McpToolPin] = Field(default_factory=list)
