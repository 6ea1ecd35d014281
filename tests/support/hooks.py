"""Helpers for the agent hook tests: policies, recorded payloads, and a session that feeds a
hook event to `talon hook` (in process over the real socket, or as the agent runs it: a
subprocess)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from support.pipe import REPO, Serve
from talon_tui.hooks import runner

FIXTURES = Path(__file__).parents[1] / "hooks" / "fixtures"
TALON = [sys.executable, "-m", "talon_tui.cli"]


def program(name: str) -> str:
    found = shutil.which(name)
    assert found, f"{name} is needed on PATH for these tests"
    return found


def guard_policy(**hooks: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "version": 1,
        "overrides": [
            {
                "tool": "file.read",
                "allow": True,
                "approval": "never",
                "constraints": {"roots": ["work"]},
            },
            {
                "tool": "file.write",
                "allow": True,
                "approval": "never",
                "constraints": {"roots": ["work"]},
            },
            {
                "tool": "http.fetch",
                "allow": True,
                "approval": "never",
                "constraints": {"domains": ["example.com"]},
            },
            {
                "tool": "shell.exec",
                "allow": True,
                "approval": "never",
                "constraints": {
                    "commands": [program(p) for p in ("ls", "cat", "echo", "find", "xargs", "grep")]
                },
            },
        ],
    }
    if hooks:
        doc["agent_hooks"] = hooks
    return doc


def load_fixture(agent: str, name: str, ws: Path, home: Path) -> dict[str, Any]:
    text = (FIXTURES / agent / f"{name}.json").read_text()
    text = text.replace("${WS}", str(ws)).replace("${HOME}", str(home))
    return json.loads(text)


class Session:
    def __init__(self, serve: Serve, ws: Path, key: str, sid: str, tmp: Path) -> None:
        self.serve, self.ws, self.key, self.sid = serve, ws, key, sid
        self.key_file = tmp / "agent.key"
        self.key_file.write_text(key)

    def options(self, agent: str = "claude-code", wait: float = 30.0) -> runner.HookOptions:
        return runner.HookOptions(
            agent=agent,
            agent_key=self.key,
            data_dir=str(self.serve.data),
            socket_path=str(self.serve.socket_path),
            wait_seconds=wait,
        )

    def payload(
        self, tool: str, tool_input: dict[str, Any], event: str = "PreToolUse", **extra: Any
    ) -> dict[str, Any]:
        return {
            "session_id": "agent-session",
            "cwd": str(self.ws),
            "hook_event_name": event,
            "tool_name": tool,
            "tool_input": tool_input,
            "tool_use_id": "toolu_test",
            **extra,
        }

    def hook(
        self, payload: dict[str, Any] | bytes, agent: str = "claude-code", **kw: Any
    ) -> runner.Answer:
        raw = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        return runner.run(self.options(agent, kw.pop("wait", 30.0)), raw, **kw)

    def process(
        self,
        payload: dict[str, Any] | bytes,
        agent: str = "claude-code",
        *args: str,
        timeout: float = 60.0,
        **popen: Any,
    ) -> subprocess.CompletedProcess:
        raw = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        return subprocess.run(
            [
                *TALON,
                "hook",
                agent,
                "--key-file",
                str(self.key_file),
                "--data-dir",
                str(self.serve.data),
                *args,
            ],
            input=raw,
            capture_output=True,
            timeout=timeout,
            cwd=REPO,
            **popen,
        )

    def events(self, etype: str | None = None) -> list[dict[str, Any]]:
        lines = (self.serve.data / "audit" / "audit.jsonl").read_text().splitlines()
        evs = [json.loads(ln) for ln in lines if ln.strip()]
        return [
            e
            for e in evs
            if e.get("session_id") == self.sid and (etype is None or e["type"] == etype)
        ]


def verdict(answer: runner.Answer, agent: str = "claude-code") -> str:
    """allow | deny | none (nothing printed) from a hook answer, failing on malformed ones."""
    if answer.exit_code == 2:
        return "deny"
    assert answer.exit_code == 0, answer
    if not answer.stdout:
        return "none"
    out = json.loads(answer.stdout)["hookSpecificOutput"]
    if out["hookEventName"] == "PermissionRequest":
        return out["decision"]["behavior"]
    return out["permissionDecision"]


def reason(answer: runner.Answer) -> str:
    out = json.loads(answer.stdout)["hookSpecificOutput"]
    if "decision" in out:
        return out["decision"].get("message", "")
    return out["permissionDecisionReason"]
