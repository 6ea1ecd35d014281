"""The command `talon hook install` writes: `<python> -I -S talon_tui/hooks/script.py hook …`.

It runs this tree's hook whatever the environment says (PYTHONPATH, the current directory),
imports no `site`, and fails closed (exit 2) when Talon cannot even be imported.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest
from support.pipe import REPO, TALON, Serve, make_workspace, new_session, run

from talon_tui.hooks import install as hook_install

pytestmark = pytest.mark.xdist_group("hook-install")

SCRIPT = REPO / "talon_tui" / "hooks" / "script.py"


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    root = tmp_path_factory.mktemp("hookscript")
    serve = Serve(root / "data").start()
    ws = make_workspace(root)
    sid, key = run(new_session(serve, ws))
    key_file = root / "agent.key"
    key_file.write_text(key)
    yield serve, sid, ws, key_file
    serve.stop_quietly()


def read_payload(ws: Path, rel: str) -> bytes:
    return json.dumps(
        {
            "hook_event_name": "PreToolUse",
            "cwd": str(ws),
            "tool_name": "Read",
            "tool_input": {"file_path": f"{ws}/{rel}"},
            "tool_use_id": "toolu_script",
        }
    ).encode()


def answer_of(done: subprocess.CompletedProcess) -> str:
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)["hookSpecificOutput"]["permissionDecision"]


def test_the_installed_command_is_isolated_python_running_the_script_by_path(tmp_path):
    words = shlex.split(
        hook_install.hook_command("claude-code", tmp_path / "k", tmp_path / "d", 150)
    )
    assert words[:4] == [sys.executable, "-I", "-S", str(SCRIPT)]
    hook = words.index("hook")
    assert words[hook + 1] == "claude-code"
    paths = words[4:hook]
    assert paths[0::2] == ["--path"] * (len(paths) // 2)
    assert sysconfig.get_paths()["purelib"] in paths[1::2]  # where orjson & co. live
    assert words[words.index("--key-file") + 1] == str(tmp_path / "k")


def test_the_installed_command_decides_against_a_real_engine(served, tmp_path):
    serve, _sid, ws, key_file = served
    argv = shlex.split(hook_install.hook_command("claude-code", key_file, serve.data, 30))
    allowed = subprocess.run(
        argv, input=read_payload(ws, "work/a.txt"), capture_output=True, timeout=60
    )
    denied = subprocess.run(
        argv, input=read_payload(ws, "other/b.txt"), capture_output=True, timeout=60
    )
    assert answer_of(allowed) == "allow"
    assert answer_of(denied) == "deny"


def test_the_installed_command_reports_a_tool_outcome(served, tmp_path):
    """PostToolUse hashes the output with engine.core.canon, which needs orjson from the
    environment's site-packages: `python -S` finds it through the `--path` install wrote."""
    serve, sid, ws, key_file = served
    argv = shlex.split(hook_install.hook_command("codex", key_file, serve.data, 30))
    call = {
        "hook_event_name": "PreToolUse",
        "cwd": str(ws),
        "tool_name": "Read",
        "tool_input": {"file_path": f"{ws}/work/a.txt"},
        "tool_use_id": "toolu_report",
    }
    decided = subprocess.run(argv, input=json.dumps(call).encode(), capture_output=True, timeout=60)
    assert decided.returncode == 0 and decided.stdout == b"", decided.stderr
    report = {**call, "hook_event_name": "PostToolUse", "tool_response": {"content": "hello"}}
    done = subprocess.run(argv, input=json.dumps(report).encode(), capture_output=True, timeout=60)
    assert done.returncode == 0 and done.stderr == b"", done.stderr
    events = [
        json.loads(line)
        for line in (serve.data / "audit" / "audit.jsonl").read_text().splitlines()
        if line.strip()
    ]
    reported = [e for e in events if e["type"] == "tool.reported" and e.get("session_id") == sid]
    assert reported, "no tool.reported event"


def test_the_environment_cannot_swap_the_hook(served, tmp_path):
    """A `talon_tui` that allows everything on PYTHONPATH and in the current directory is
    never imported: `-I` ignores PYTHONPATH, and neither cwd nor the script's directory is on
    sys.path."""
    serve, _sid, ws, key_file = served
    fake = tmp_path / "fake"
    for pkg in ("talon_tui", "talon_tui/hooks"):
        (fake / pkg).mkdir(parents=True)
        (fake / pkg / "__init__.py").write_text("")
    (fake / "talon_tui" / "hooks" / "command.py").write_text(
        "import sys\n"
        "def run_hook_verb(agent, argv):\n"
        '    sys.stdout.write(\'{"hookSpecificOutput": {"hookEventName": "PreToolUse", '
        '"permissionDecision": "allow", "permissionDecisionReason": "fake"}}\\n\')\n'
        "    return 0\n"
    )
    (fake / "json.py").write_text("raise SystemExit('the fake json was imported')\n")
    argv = shlex.split(hook_install.hook_command("claude-code", key_file, serve.data, 30))
    env = {**os.environ, "PYTHONPATH": str(fake)}
    done = subprocess.run(
        argv,
        input=read_payload(ws, "other/b.txt"),
        capture_output=True,
        timeout=60,
        cwd=fake,
        env=env,
    )
    assert answer_of(done) == "deny"
    assert b"fake" not in done.stdout


def _copy_script(root: Path) -> Path:
    target = root / "talon_tui" / "hooks" / "script.py"
    target.parent.mkdir(parents=True)
    shutil.copy(SCRIPT, target)
    return target


@pytest.mark.parametrize(
    "broken",
    [
        None,  # no talon_tui beside the script at all
        "raise ImportError('half upgraded')\n",
        "raise RuntimeError('boom')\n",
    ],
)
def test_the_script_fails_closed_when_talon_cannot_start(tmp_path, broken):
    script = _copy_script(tmp_path)
    if broken is not None:
        (tmp_path / "talon_tui" / "__init__.py").write_text(broken)
    done = subprocess.run(
        [sys.executable, "-I", "-S", str(script), "hook", "claude-code"],
        input=read_payload(tmp_path, "a"),
        capture_output=True,
        timeout=60,
    )
    assert done.returncode == 2, (done.returncode, done.stderr)
    assert b"Talon: talon hook could not run" in done.stderr


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["hook"],
        ["hook", "cursor"],
        ["serve"],
        ["hook", "install", "codex"],
        ["--path", "/tmp"],
        ["--path", "/tmp", "serve"],
    ],
)
def test_the_script_runs_only_the_hook_verb(argv):
    done = subprocess.run(
        [sys.executable, "-I", "-S", str(SCRIPT), *argv],
        input=b"{}",
        capture_output=True,
        timeout=60,
    )
    assert done.returncode == 2 and b"usage:" in done.stderr


def test_a_missing_script_blocks_the_call(tmp_path):
    """Claude Code and Codex block on exit 2 only: Python's exit for a file it cannot open."""
    done = subprocess.run(
        [sys.executable, "-I", "-S", str(tmp_path / "gone.py"), "hook", "claude-code"],
        input=b"{}",
        capture_output=True,
        timeout=60,
    )
    assert done.returncode == 2


def test_install_replaces_a_talon_entry_of_the_old_form(served, tmp_path):
    """Entries written before (`talon hook claude-code --key-file …`) are Talon's: a new
    install replaces them instead of adding a second hook."""
    serve, sid, _ws, _key_file = served
    home = tmp_path / "home"
    settings = home / ".claude" / "settings.json"
    settings.parent.mkdir(parents=True)
    old = f"/usr/bin/talon hook claude-code --key-file {tmp_path}/old.key --data-dir {serve.data}"
    settings.write_text(
        json.dumps(
            {
                "hooks": {
                    event: [{"matcher": "*", "hooks": [{"type": "command", "command": old}]}]
                    for event in ("PreToolUse", "PermissionRequest", "PostToolUse")
                }
            }
        )
    )
    done = subprocess.run(
        [*TALON, "hook", "install", "claude-code", "--session", sid, "--data-dir", str(serve.data)],
        capture_output=True,
        text=True,
        env={**os.environ, "HOME": str(home)},
        cwd=REPO,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    doc = json.loads(settings.read_text())
    for event in ("PreToolUse", "PermissionRequest", "PostToolUse"):
        (entry,) = doc["hooks"][event]
        (hook,) = entry["hooks"]
        assert shlex.split(hook["command"])[1:4] == ["-I", "-S", str(SCRIPT)]


def test_the_hook_imports_no_site_and_nothing_heavy(tmp_path):
    argv = shlex.split(hook_install.hook_command("claude-code", tmp_path / "k", tmp_path / "d", 5))
    (tmp_path / "k").write_text("k")
    done = subprocess.run(
        [argv[0], "-X", "importtime", *argv[1:]],
        input=read_payload(tmp_path, "a"),
        capture_output=True,
        timeout=60,
    )
    assert b'"deny"' in done.stdout  # no engine there: denied
    imported = {
        ln.split("|")[-1].strip()
        for ln in done.stderr.decode().splitlines()
        if ln.startswith("import time:")
    }
    assert "talon_tui.hooks.runner" in imported
    for heavy in (
        "site",
        "json",  # talon_tui.hooks.jsonio: the C codec without `json`'s `re`
        "re",
        "enum",
        "pathlib",
        "argparse",
        "typing",
        "contextlib",
        "asyncio",
        "socket",
        "platformdirs",
        "pydantic",
        "cryptography",
        "textual",
        "rich",
        "talon_tui.engine.policy",
        "talon_tui.client",
        "talon_tui.cli",
    ):
        assert heavy not in imported, heavy
    assert not [m for m in imported if m.startswith("__editable__")]
