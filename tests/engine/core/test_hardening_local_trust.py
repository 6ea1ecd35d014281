"""Issue 15.8: a foreign data root is refused, and no client hands a credential to whoever
listens. The engine refuses a data dir (or any level in it) it does not own or others can
write; clients check the listener's uid (SO_PEERCRED) and the socket's directory before hello.
"""

from __future__ import annotations

import asyncio
import json
import os
import select
import subprocess
import sys
from pathlib import Path

import pytest
from support.local_users import DROP, require_root, throwaway_user
from support.pipe import run_talon as talon

from talon_tui.client import AdminClient, AgentClient, UntrustedEngineError
from talon_tui.engine.core.paths import DataDir, DataDirUnsafe
from talon_tui.engine.engine import Engine

SECRET = "tln_admin_the-secret-that-must-not-leave"

# A listener that records every byte it is sent: bound (as root if asked), then, when a uid is
# given, it drops to that uid before listen(), so SO_PEERCRED names that uid.
FAKE_LISTENER = (
    DROP
    + """
import socket, select, time
path, uid = sys.argv[1], int(sys.argv[2])
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.bind(path)
os.chmod(path, 0o777)
if uid >= 0:
    drop(uid, uid, [])
s.listen(8)
print("ready", flush=True)
while True:
    c, _ = s.accept()
    c.settimeout(3)
    got = b""
    try:
        while True:
            chunk = c.recv(65536)
            if not chunk:
                break
            got += chunk
    except OSError:
        pass
    print("GOT " + got.hex(), flush=True)
    c.close()
"""
)


class FakeListener:
    def __init__(self, path: Path, uid: int = -1) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-c", FAKE_LISTENER, str(path), str(uid)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        ready, _, _ = select.select([self.proc.stdout], [], [], 20)
        assert ready and self.proc.stdout.readline().strip() == b"ready", self.proc.stderr.read()

    def received(self) -> bytes:
        """Everything any client sent (the listener is stopped)."""
        self.proc.terminate()
        out, _ = self.proc.communicate(timeout=10)
        got = b""
        for line in out.decode().splitlines():
            if line.startswith("GOT "):
                got += bytes.fromhex(line[4:])
        return got


def planted_data_dir(base: Path, run_mode: int = 0o700) -> Path:
    """What a local attacker leaves: a data dir whose run/ holds their own listener."""
    data = base / "data"
    (data / "run").mkdir(parents=True)
    os.chmod(data / "run", run_mode)
    (data / "admin.token").write_text(SECRET + "\n")
    return data


# ------------------------------------------------------------------ the engine's side


def start_engine(root: Path) -> None:
    async def go() -> None:
        engine = Engine(root)
        await engine.start()
        await engine.stop()

    asyncio.run(go())


def test_world_writable_root_is_refused_by_serve(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    os.chmod(data, 0o777)
    r = talon(data, "serve")
    assert r.returncode == 2, r.stdout
    assert "refusing data dir" in r.stderr and "writable by group or others" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    assert not (data / "admin.token").exists()
    assert not (data / "run").exists()


@pytest.mark.parametrize("level", ["run", "audit", "keys", "secrets", "keys/trusted", "workspaces"])
def test_every_level_writable_by_others_is_refused(tmp_path, level):
    root = tmp_path / "data"
    DataDir(root).ensure()
    os.chmod(root / level, 0o777)
    with pytest.raises(DataDirUnsafe, match="writable by group or others"):
        DataDir(root).ensure()


@pytest.mark.parametrize("level", ["run", "audit", "keys", "secrets"])
def test_a_symlinked_level_is_refused(tmp_path, level):
    root = tmp_path / "data"
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir(mode=0o700)
    root.mkdir(mode=0o700)
    (root / level).symlink_to(elsewhere)
    with pytest.raises(DataDirUnsafe, match="symlink"):
        start_engine(root)


def test_a_symlinked_root_is_refused(tmp_path):
    real = tmp_path / "real"
    real.mkdir(mode=0o700)
    (tmp_path / "link").symlink_to(real)
    r = talon(tmp_path / "link", "serve")
    assert r.returncode == 2 and "it is a symlink" in r.stderr
    assert not (real / "admin.token").exists()


@pytest.mark.parametrize("name", ["state.json", "admin.token", "engine.lock"])
def test_a_symlinked_or_shared_file_is_refused(tmp_path, name):
    root = tmp_path / "data"
    DataDir(root).ensure()
    target = tmp_path / "target"
    target.write_text("{}")
    (root / name).symlink_to(target)
    with pytest.raises(DataDirUnsafe, match="symlink"):
        DataDir(root).ensure()
    (root / name).unlink()
    (root / name).write_text("{}")
    os.chmod(root / name, 0o666)
    with pytest.raises(DataDirUnsafe, match="writable by group or others"):
        DataDir(root).ensure()


def test_a_parent_writable_by_others_is_refused(tmp_path):
    parent = tmp_path / "open"
    parent.mkdir()
    os.chmod(parent, 0o777)
    with pytest.raises(DataDirUnsafe, match="writable by others"):
        DataDir(parent / "data").ensure()
    os.chmod(parent, 0o1777)  # sticky, like /tmp: others cannot rename our entries
    DataDir(parent / "data").ensure()


def test_ensure_creates_private_and_narrows_readable_modes(tmp_path):
    root = tmp_path / "data"
    old = os.umask(0)
    try:
        data = DataDir(root).ensure()
    finally:
        os.umask(old)
    for d in data.private_dirs():
        assert d.stat().st_mode & 0o777 == 0o700, d
    os.chmod(root / "keys", 0o755)
    os.chmod(root / "audit", 0o755)
    os.chmod(root, 0o755)
    (root / "keys" / "policy_ed25519.key").write_text("x")
    os.chmod(root / "keys" / "policy_ed25519.key", 0o644)
    (root / "audit" / "audit.jsonl").write_text("")
    os.chmod(root / "audit" / "audit.jsonl", 0o644)
    data.ensure()
    assert root.stat().st_mode & 0o777 == 0o700
    assert (root / "keys").stat().st_mode & 0o777 == 0o700
    assert (root / "audit").stat().st_mode & 0o777 == 0o700
    assert (root / "keys" / "policy_ed25519.key").stat().st_mode & 0o777 == 0o600
    assert (root / "audit" / "audit.jsonl").stat().st_mode & 0o777 == 0o600
    assert data.inspect() == []


def test_a_root_owned_by_another_user_is_refused(tmp_path):
    require_root()
    with throwaway_user() as other:
        root = tmp_path / "data"
        root.mkdir(mode=0o700)
        os.chown(root, other.uid, other.gid)
        with pytest.raises(DataDirUnsafe, match=f"belongs to uid {other.uid}"):
            start_engine(root)
        os.chown(root, 0, 0)
        DataDir(root).ensure()
        (root / "admin.token").write_text(SECRET)
        os.chmod(root / "admin.token", 0o600)
        os.chown(root / "admin.token", other.uid, other.gid)
        with pytest.raises(DataDirUnsafe, match=f"belongs to uid {other.uid}"):
            DataDir(root).ensure()


# ------------------------------------------------------------------ the clients' side


@pytest.mark.slow
def test_clients_send_nothing_to_a_listener_of_another_uid(tmp_path):
    require_root()
    with throwaway_user() as attacker:
        data = planted_data_dir(tmp_path)
        fake = FakeListener(data / "run" / "agent.sock", attacker.uid)
        try:
            with pytest.raises(UntrustedEngineError, match=f"uid {attacker.uid}"):
                asyncio.run(AdminClient.connect(data, admin_token=SECRET))
            with pytest.raises(UntrustedEngineError):
                AgentClient("tln_ag_key-that-must-not-leave", data_dir=data, timeout=5)
            cli = talon(data, "approvals", "list")
            assert cli.returncode == 2
            assert "UNAUTHENTICATED" in cli.stderr and f"uid {attacker.uid}" in cli.stderr
            agent = talon(data, "agent", "intent", "--key", "tln_ag_k", "--tool", "file.read")
            assert agent.returncode == 2 and "nothing was sent" in agent.stderr
            doctor = talon(data, "doctor")
            assert "nothing was sent" in doctor.stdout
        finally:
            got = fake.received()
        assert got == b"", f"the fake listener received {got!r}"

        # naming that uid as the engine's (a dedicated engine user) is how to trust it
        fake = FakeListener(data / "run" / "agent.sock.2", attacker.uid)
        try:
            os.replace(data / "run" / "agent.sock.2", data / "run" / "agent.sock")
            r = talon(data, "approvals", "list", "--engine-user", attacker.name)
            assert "refusing" not in r.stderr
        finally:
            got = fake.received()
        assert SECRET.encode() in got


def test_clients_refuse_a_socket_dir_others_can_write(tmp_path):
    # the listener runs as our own uid, but anyone could have put it there
    data = planted_data_dir(tmp_path, run_mode=0o777)
    fake = FakeListener(data / "run" / "agent.sock")
    try:
        with pytest.raises(UntrustedEngineError, match="writable by others"):
            asyncio.run(AdminClient.connect(data, admin_token=SECRET))
        with pytest.raises(UntrustedEngineError, match="writable by others"):
            AgentClient("tln_ag_key-that-must-not-leave", data_dir=data, timeout=5)
        cli = talon(data, "session", "list")
        assert cli.returncode == 2 and "nothing was sent" in cli.stderr
    finally:
        got = fake.received()
    assert got == b""


def test_engine_uid_names_must_exist(monkeypatch):
    from talon_tui.client import trusted_engine_uids

    monkeypatch.setenv("TALON_ENGINE_UID", "no-such-user-here-xyz")
    with pytest.raises(UntrustedEngineError, match="no user"):
        trusted_engine_uids()
    monkeypatch.setenv("TALON_ENGINE_UID", "1234, 0")
    assert {1234, 0, os.geteuid()} <= trusted_engine_uids()


def test_doctor_json_on_a_fresh_dir(tmp_path):
    root = tmp_path / "data"
    DataDir(root).ensure()
    r = talon(root, "doctor", "--json")
    doc = json.loads(r.stdout)
    assert r.returncode == 0, doc
    assert doc["warnings"] == 0
    os.chmod(root / "keys", 0o755)
    r = talon(root, "doctor", "--json")
    assert r.returncode == 1
    assert any("keys" in c["message"] for c in json.loads(r.stdout)["checks"])


def test_a_planted_admin_token_file_is_not_read(tmp_path):
    from talon_tui.client import UnauthenticatedError, read_admin_token

    data = tmp_path / "data"
    data.mkdir(mode=0o700)
    private = tmp_path / "id_ed25519"
    private.write_text("the operator's private key\n")
    (data / "admin.token").symlink_to(private)
    with pytest.raises(UnauthenticatedError, match="symlink"):
        read_admin_token(data)
    (data / "admin.token").unlink()
    (data / "admin.token").write_text(SECRET)
    os.chmod(data / "admin.token", 0o666)
    with pytest.raises(UnauthenticatedError, match="writable only by it"):
        read_admin_token(data)
    os.chmod(data / "admin.token", 0o600)
    assert read_admin_token(data) == SECRET
