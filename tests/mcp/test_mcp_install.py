"""`talon mcp install|uninstall` for each client on a temporary HOME: the entry written in the
client's own format, the original backed up first, idempotent, and uninstall restoring the
original bytes."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from support.mcp import Talon
from support.pipe import REPO

from talon_tui.client import AsyncAgentClient
from talon_tui.mcp import clients

pytestmark = pytest.mark.xdist_group("mcp-install")


def talon_cli(*args: str, home: Path) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "HOME": str(home),
        "XDG_CONFIG_HOME": str(home / ".config"),
        "PYTHONPATH": str(REPO),
    }
    env.pop("CODEX_HOME", None)
    return subprocess.run(
        [sys.executable, "-m", "talon_tui.cli", "mcp", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


CONFIGS = {
    "claude-desktop": ".config/Claude/claude_desktop_config.json",
    "claude-code": ".claude.json",
    "cursor": ".cursor/mcp.json",
    "codex": ".codex/config.toml",
}
ORIGINAL = {
    "json": (
        '{\n  "theme": "dark",\n  "mcpServers": {\n'
        '    "notes": {"command": "notes-server"}\n  }\n}\n'
    ),
    "toml": '# my codex config\nmodel = "o4"\n\n[mcp_servers.notes]\ncommand = "notes-server"\n',
}


def _entry(client: str, text: str, name: str = "talon") -> dict:
    if client == "codex":
        return tomllib.loads(text)["mcp_servers"][name]
    return json.loads(text)["mcpServers"][name]


@pytest.mark.parametrize("client", list(CONFIGS))
def test_install_uninstall_round_trip(talon: Talon, tmp_path: Path, client: str) -> None:
    home = tmp_path / "home"
    path = home / CONFIGS[client]
    path.parent.mkdir(parents=True)
    original = ORIGINAL[clients.CLIENTS[client]]
    path.write_text(original)
    os.chmod(path, 0o640)
    data = ["--data-dir", str(talon.data)]

    done = talon_cli("install", client, "--session", talon.session_id, *data, home=home)
    assert done.returncode == 0, done.stderr
    assert "backed up" in done.stdout and "+" in done.stdout  # says what changed
    text = path.read_text()
    entry = _entry(client, text)
    assert entry["command"] == sys.executable
    assert entry["args"][:3] == ["-m", "talon_tui.cli", "mcp"]
    assert _entry(client, text, "notes") == {"command": "notes-server"}  # others kept
    if client == "claude-code":
        assert entry["type"] == "stdio"
    if client == "codex":
        assert text.startswith("# my codex config\n")  # comments kept
    assert stat.S_IMODE(path.stat().st_mode) == 0o640
    backup = path.with_name(path.name + ".talon-backup")
    assert backup.read_text() == original
    # the key is in a private key file, never in the client's config
    key_file = Path(entry["args"][entry["args"].index("--key-file") + 1])
    key = key_file.read_text().strip()
    assert key and key not in text
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert stat.S_IMODE(key_file.parent.stat().st_mode) == 0o700

    async def works() -> str:
        agent = await AsyncAgentClient.connect(key, data_dir=talon.data)
        try:
            return agent.session_id
        finally:
            await agent.close()

    import asyncio

    assert asyncio.run(works()) == talon.session_id

    again = talon_cli("install", client, "--session", talon.session_id, *data, home=home)
    assert again.returncode == 0, again.stderr
    assert "already up to date" in again.stdout
    assert path.read_text() == text  # idempotent
    assert backup.read_text() == original

    gone = talon_cli("uninstall", client, home=home)
    assert gone.returncode == 0, gone.stderr
    assert "restored the original file" in gone.stdout
    assert path.read_bytes() == original.encode()
    assert not backup.exists()
    assert not key_file.exists()


@pytest.mark.parametrize("client", list(CONFIGS))
def test_install_creates_and_uninstall_removes_a_missing_file(
    talon: Talon, tmp_path: Path, client: str
) -> None:
    home = tmp_path / "home"
    home.mkdir()
    path = home / CONFIGS[client]
    done = talon_cli(
        "install", client, "--session", talon.session_id, "--data-dir", str(talon.data), home=home
    )
    assert done.returncode == 0, done.stderr
    assert _entry(client, path.read_text())["args"][-2:] == ["--data-dir", str(talon.data)]
    gone = talon_cli("uninstall", client, home=home)
    assert gone.returncode == 0, gone.stderr
    assert not path.exists()


def test_broken_config_is_refused_untouched(talon: Talon, tmp_path: Path) -> None:
    home = tmp_path / "home"
    path = home / CONFIGS["cursor"]
    path.parent.mkdir(parents=True)
    path.write_text('{"mcpServers": {,}')
    done = talon_cli(
        "install", "cursor", "--session", talon.session_id, "--data-dir", str(talon.data), home=home
    )
    assert done.returncode == 2
    assert "not valid JSON" in done.stderr and "Traceback" not in done.stderr
    assert path.read_text() == '{"mcpServers": {,}'
    assert not path.with_name("mcp.json.talon-backup").exists()


def test_unknown_session_is_one_line(talon: Talon, tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    done = talon_cli(
        "install", "cursor", "--session", "sess_nope", "--data-dir", str(talon.data), home=home
    )
    assert done.returncode == 2
    assert "NOT_FOUND" in done.stderr and "Traceback" not in done.stderr
    assert not (home / CONFIGS["cursor"]).exists()


def test_claude_code_project_scope(talon: Talon, tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    project = tmp_path / "proj"
    project.mkdir()
    done = talon_cli(
        "install",
        "claude-code",
        "--session",
        talon.session_id,
        "--project",
        str(project),
        "--data-dir",
        str(talon.data),
        home=home,
    )
    assert done.returncode == 0, done.stderr
    entry = json.loads((project / ".mcp.json").read_text())["mcpServers"]["talon"]
    assert entry["type"] == "stdio"
    assert not (home / ".claude.json").exists()
