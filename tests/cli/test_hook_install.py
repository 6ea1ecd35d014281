"""`talon hook install|uninstall|test` on a temporary HOME against a real `talon serve`, and
the hook path's imports."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from support.pipe import REPO, TALON, Serve, make_workspace, new_session, run

pytestmark = pytest.mark.xdist_group("hook-install")


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    root = tmp_path_factory.mktemp("hookinstall")
    serve = Serve(root / "data").start()
    ws = make_workspace(root)
    sid, _key = run(new_session(serve, ws))
    yield serve, sid, ws
    serve.stop_quietly()


def talon(*args: str, home: Path, cwd: Path = REPO, stdin: bytes | None = None):
    env = {**os.environ, "HOME": str(home)}
    return subprocess.run(
        [*TALON, *args],
        capture_output=True,
        text=stdin is None,
        input=stdin,
        env=env,
        cwd=cwd,
        timeout=60,
    )


@pytest.mark.parametrize(
    ("agent", "rel"), [("claude-code", ".claude/settings.json"), ("codex", ".codex/hooks.json")]
)
def test_install_uninstall_round_trip_user_scope(served, tmp_path, agent, rel):
    serve, sid, ws = served
    home = tmp_path / "home"
    settings = home / rel
    settings.parent.mkdir(parents=True)
    original = (
        '{\n  "model": "opus",\n  "hooks": {"Stop": [{"hooks": [{"type": "command", '
        '"command": "notify"}]}]}\n}\n'
    )
    settings.write_text(original)
    done = talon(
        "hook", "install", agent, "--session", sid, "--data-dir", str(serve.data), home=home
    )
    assert done.returncode == 0, done.stderr
    assert "backed up" in done.stdout and "added hooks.PreToolUse" in done.stdout
    doc = json.loads(settings.read_text())
    assert doc["model"] == "opus" and doc["hooks"]["Stop"]
    for event in ("PreToolUse", "PermissionRequest", "PostToolUse"):
        (entry,) = doc["hooks"][event]
        hook = entry["hooks"][0]
        assert hook["type"] == "command" and f"hook {agent}" in hook["command"]
        assert hook["timeout"] > 150, "the hook outlives the approval wait"
        assert ("matcher" in entry) == (agent == "claude-code")
    key_file = Path(hook["command"].split("--key-file ")[1].split()[0])
    assert key_file.stat().st_mode & 0o777 == 0o600
    # the installed command really answers for the session
    payload = {
        "hook_event_name": "PreToolUse",
        "cwd": str(ws),
        "tool_name": "Read",
        "tool_input": {"file_path": f"{ws}/work/a.txt"},
        "tool_use_id": "t",
    }
    argv = hook["command"].split()
    answer = subprocess.run(
        argv, input=json.dumps(payload).encode(), capture_output=True, timeout=60, cwd=REPO
    )
    assert answer.returncode == 0, answer.stderr
    if agent == "claude-code":
        assert b'"allow"' in answer.stdout
    else:
        assert answer.stdout == b""
    # idempotent
    again = talon(
        "hook", "install", agent, "--session", sid, "--data-dir", str(serve.data), home=home
    )
    assert again.returncode == 0
    doc2 = json.loads(settings.read_text())
    assert all(len(doc2["hooks"][e]) == 1 for e in ("PreToolUse", "PostToolUse"))
    # uninstall restores the original bytes and removes the key
    gone = talon("hook", "uninstall", agent, home=home)
    assert gone.returncode == 0 and "restored" in gone.stdout, gone.stdout
    assert settings.read_text() == original
    assert not key_file.exists()
    assert not Path(str(settings) + ".talon-backup").exists()
    nothing = talon("hook", "uninstall", agent, home=home)
    assert "nothing changed" in nothing.stdout


def test_project_scope_creates_and_removes_the_file(served, tmp_path):
    serve, sid, _ws = served
    project = tmp_path / "proj"
    project.mkdir()
    done = talon(
        "hook",
        "install",
        "claude-code",
        "--session",
        sid,
        "--scope",
        "project",
        "--data-dir",
        str(serve.data),
        home=tmp_path / "home",
        cwd=project,
    )
    assert done.returncode == 0, done.stderr
    settings = project / ".claude" / "settings.json"
    assert settings.exists()
    done = talon(
        "hook",
        "uninstall",
        "claude-code",
        "--scope",
        "project",
        "--project",
        str(project),
        home=tmp_path / "home",
    )
    assert done.returncode == 0 and not settings.exists()


def test_uninstall_keeps_changes_made_since(served, tmp_path):
    serve, sid, _ws = served
    home = tmp_path / "home"
    talon("hook", "install", "codex", "--session", sid, "--data-dir", str(serve.data), home=home)
    settings = home / ".codex" / "hooks.json"
    doc = json.loads(settings.read_text())
    doc["hooks"]["Stop"] = [{"hooks": [{"type": "command", "command": "mine"}]}]
    settings.write_text(json.dumps(doc))
    done = talon("hook", "uninstall", "codex", home=home)
    assert done.returncode == 0 and "other changes kept" in done.stdout
    assert json.loads(settings.read_text()) == {"hooks": {"Stop": doc["hooks"]["Stop"]}}


def test_install_refuses_a_broken_settings_file(served, tmp_path):
    serve, sid, _ws = served
    home = tmp_path / "home"
    (home / ".claude").mkdir(parents=True)
    (home / ".claude" / "settings.json").write_text("{not json")
    done = talon(
        "hook", "install", "claude-code", "--session", sid, "--data-dir", str(serve.data), home=home
    )
    assert done.returncode == 2 and "nothing changed" in done.stderr
    assert (home / ".claude" / "settings.json").read_text() == "{not json"


def test_hook_test_shows_the_decision(served, tmp_path):
    serve, sid, ws = served
    home = tmp_path / "home"
    key = run(_issue(serve, sid))
    env_args = ["--data-dir", str(serve.data)]
    os.environ["TALON_AGENT_KEY"] = key
    try:
        ok = talon(
            "hook",
            "test",
            "--tool",
            "Bash",
            "--input",
            json.dumps({"command": "cat work/a.txt > work/b"}),
            "--cwd",
            str(ws),
            *env_args,
            home=home,
        )
        dry = talon(
            "hook",
            "test",
            "--tool",
            "Bash",
            "--dry",
            "--input",
            json.dumps({"command": "ls $(id)"}),
            "--cwd",
            str(ws),
            *env_args,
            home=home,
        )
    finally:
        del os.environ["TALON_AGENT_KEY"]
    assert ok.returncode == 1, ok.stdout  # cat is not allowed by READ_POLICY: denied
    assert "-> file.read" not in ok.stdout and "-> file.write" in ok.stdout
    assert "shell.exec" in ok.stdout and '"deny"' in ok.stdout
    assert dry.returncode == 0 and "not judged command by command" in dry.stdout


async def _issue(serve, sid):
    from talon_tui.client import AdminClient

    async with await AdminClient.connect(serve.data) as admin:
        return await admin.issue_agent_key(sid)


def test_hook_path_imports_nothing_heavy(tmp_path):
    payload = json.dumps(
        {
            "hook_event_name": "PreToolUse",
            "cwd": str(tmp_path),
            "tool_name": "Read",
            "tool_input": {"file_path": "/x"},
        }
    )
    done = subprocess.run(
        [
            sys.executable,
            "-X",
            "importtime",
            "-m",
            "talon_tui.cli",
            "hook",
            "claude-code",
            "--data-dir",
            str(tmp_path / "d"),
        ],
        input=payload.encode(),
        capture_output=True,
        cwd=REPO,
        timeout=60,
        env={**os.environ, "TALON_AGENT_KEY": "k"},
    )
    assert b'"deny"' in done.stdout  # no engine there: denied
    imported = {
        ln.split("|")[-1].strip()
        for ln in done.stderr.decode().splitlines()
        if ln.startswith("import time:")
    }
    for heavy in (
        "textual",
        "rich",
        "pydantic",
        "cryptography",
        "argparse",
        "platformdirs",
        "talon_tui.engine.policy",
        "talon_tui.client",
        "asyncio",
    ):
        assert heavy not in imported, heavy


def test_install_warns_when_the_agent_switches_hooks_off(served, tmp_path):
    serve, sid, _ws = served
    home = tmp_path / "home"
    (home / ".codex").mkdir(parents=True)
    (home / ".codex" / "config.toml").write_text("[features]\nhooks = false\n")
    done = talon(
        "hook", "install", "codex", "--session", sid, "--data-dir", str(serve.data), home=home
    )
    assert done.returncode == 0 and "Codex runs no hook" in done.stderr
