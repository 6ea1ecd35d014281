"""What `talon mcp` lists and how it maps calls: pure functions over a policy document."""

from __future__ import annotations

import sys

import pytest

from talon_tui.mcp import clients
from talon_tui.mcp import tools as t
from talon_tui.mcp.gateway import allowed_result, denied_result


def _policy(*overrides: dict) -> dict:
    return {"version": 1, "overrides": list(overrides)}


READ = {"tool": "file.read", "allow": True, "approval": "never", "constraints": {"roots": ["w"]}}


def test_only_tools_the_policy_can_allow_are_listed() -> None:
    assert [x["name"] for x in t.builtin_tools(_policy())] == []
    assert [x["name"] for x in t.builtin_tools(_policy(READ))] == ["file_read"]
    disabled = {**READ, "enabled": False}
    assert t.builtin_tools(_policy(disabled)) == []
    deny = {"tool": "file.read", "allow": False}
    assert t.builtin_tools(_policy(READ, deny)) == []  # a denying override wins


def test_descriptions_say_what_each_override_allows() -> None:
    http = {
        "tool": "http.fetch",
        "allow": True,
        "approval": "always",
        "constraints": {"domains": ["api.example.com"], "methods": ["GET"]},
    }
    docker = {
        "tool": "docker.run",
        "allow": True,
        "constraints": {"images": ["sha256:" + "a" * 64], "network": False},
    }
    shell = {"tool": "shell.exec", "allow": True, "constraints": {"commands": ["/bin/ls"]}}
    listed = {x["name"]: x["description"] for x in t.builtin_tools(_policy(http, docker, shell))}
    assert "domains: api.example.com; methods: GET" in listed["http_fetch"]
    assert "an operator approves each call" in listed["http_fetch"]
    assert "images: sha256:" + "a" * 64 in listed["docker_run"]
    assert "network: no" in listed["docker_run"]
    assert "commands: /bin/ls" in listed["shell_exec"]
    assert "approval: untrusted" in listed["shell_exec"]


def test_upstream_tools_follow_mcp_call_overrides() -> None:
    upstream = [
        {
            "server": "notes",
            "name": "echo",
            "description": "Echo",
            "input_schema": {"type": "object"},
        },
        {"server": "notes", "name": "delete_note", "description": "Del", "input_schema": {}},
        {"server": "gh", "name": "echo", "description": "x", "input_schema": {"type": "object"}},
        {"server": "a__b", "name": "echo", "description": "x", "input_schema": {"type": "object"}},
    ]
    assert t.upstream_tools(_policy(READ), upstream) == []  # no mcp.call override
    allow = {
        "tool": "mcp.call",
        "allow": True,
        "approval": "never",
        "constraints": {"servers": ["notes"], "tools": ["echo"]},
    }
    listed = t.upstream_tools(_policy(allow), upstream)
    assert [x["name"] for x in listed] == ["notes__echo"]
    assert listed[0]["description"].startswith("[MCP server 'notes' through Talon; ")
    assert listed[0]["description"].endswith("] Echo")
    wild = {**allow, "constraints": {"servers": ["notes"], "tools": ["*"]}}
    names = [x["name"] for x in t.upstream_tools(_policy(wild), upstream)]
    assert names == ["notes__echo", "notes__delete_note"]
    deny = {"tool": "mcp.call", "allow": False}
    assert t.upstream_tools(_policy(wild, deny), upstream) == []


def test_builtin_params_drop_approval_looking_names_and_refuse_the_rest() -> None:
    tool, params = t.builtin_params(
        "file_read", {"path": "w/a", "approved": True, "Approval_ID": "apr_1", "override": {}}
    )
    assert (tool, params) == ("file.read", {"path": "w/a"})
    with pytest.raises(t.BadArguments):
        t.builtin_params("file_read", {"path": "w/a", "mode": "x"})
    with pytest.raises(t.BadArguments):
        t.builtin_params("shell_exec", {"argv": []})


def test_results_map_to_mcp() -> None:
    ok = allowed_result(
        "file.read", {"path": "w/a", "content": "hi", "bytes": 2, "sha256": "sha256:x"}
    )
    assert ok.content[0].text == "hi" and ok.structured_content["bytes"] == 2
    up = allowed_result(
        "mcp.call",
        {
            "server": "notes",
            "tool": "echo",
            "content": [{"type": "text", "text": "echoed"}],
            "structured": {"n": 1},
            "is_error": False,
            "bytes": 6,
            "sha256": "sha256:y",
        },
    )
    assert up.content[0].text == "echoed" and up.structured_content == {"n": 1}
    assert not up.is_error

    from talon_tui.client import PolicyDeniedError

    exc = PolicyDeniedError(
        "file.read denied: outside roots",
        details={
            "reason": "outside roots",
            "suggested_fix": {
                "tool": "file.read",
                "approval": "never",
                "constraints": {"roots": ["x"]},
            },
            "audit_seq": 41,
        },
    )
    denied = denied_result("file_read", exc)
    text = denied.content[0].text
    assert denied.is_error
    assert text.splitlines() == [
        "Talon refused file_read (POLICY_DENIED): outside roots",
        "Suggested fix: ask the operator to add an override allowing file.read with roots: x; "
        "approval: never",
        "Audit seq: 41",
    ]


@pytest.mark.parametrize(
    ("platform", "expected"),
    [
        ("darwin", "Library/Application Support/Claude/claude_desktop_config.json"),
        ("linux", ".config/Claude/claude_desktop_config.json"),
    ],
)
def test_claude_desktop_path_per_os(monkeypatch, platform: str, expected: str) -> None:
    monkeypatch.setattr(sys, "platform", platform)
    assert str(clients.default_path("claude-desktop")).endswith(expected)


def test_claude_desktop_path_on_windows(monkeypatch, tmp_path) -> None:
    monkeypatch.setattr(sys, "platform", "win32")
    monkeypatch.setenv("APPDATA", str(tmp_path))
    assert clients.default_path("claude-desktop") == tmp_path / "Claude/claude_desktop_config.json"


def test_codex_home(monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("CODEX_HOME", str(tmp_path))
    assert clients.default_path("codex") == tmp_path / "config.toml"


def test_symlinked_config_is_refused(tmp_path) -> None:
    real = tmp_path / "real.json"
    real.write_text("{}")
    link = tmp_path / "mcp.json"
    link.symlink_to(real)
    target = clients.target("cursor", config=str(link))
    with pytest.raises(clients.ConfigError, match="symlink"):
        clients.install(
            target, "talon", {"command": "py", "args": ["--key-file", ""], "_agent_key": "k"}
        )
    assert real.read_text() == "{}"
