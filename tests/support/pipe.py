"""A real `talon serve` in a subprocess, and raw-socket helpers, for the pipe tests."""

from __future__ import annotations

import asyncio
import json
import os
import select
import signal
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

# the policies moved to support.policies; importers of support.pipe still find them here
from support.policies import APPROVAL_POLICY as APPROVAL_POLICY
from support.policies import READ_POLICY as READ_POLICY
from talon_tui.client import AdminClient

REPO = Path(__file__).resolve().parents[2]
TALON = [sys.executable, "-m", "talon_tui.cli"]


def run_talon(
    data: Path,
    *args: str,
    stdin: str | bytes | None = None,
    env: dict[str, str] | None = None,
    text: bool = True,
    timeout: float = 120.0,
) -> subprocess.CompletedProcess:
    """`talon ARGS --data-dir DATA` from this tree, its output captured; the caller's
    TALON_ADMIN_TOKEN is dropped unless `env` gives one."""
    base = {k: v for k, v in os.environ.items() if k != "TALON_ADMIN_TOKEN"}
    return subprocess.run(
        [*TALON, *args, "--data-dir", str(data)],
        capture_output=True,
        text=text,
        cwd=REPO,
        input=stdin,
        env={**base, **(env or {})},
        timeout=timeout,
    )


def make_workspace(root: Path) -> Path:
    ws = root / "ws"
    (ws / "work").mkdir(parents=True, exist_ok=True)
    (ws / "work" / "a.txt").write_text("hello from the workspace\n")
    (ws / "other").mkdir(exist_ok=True)
    (ws / "other" / "b.txt").write_text("not for agents\n")
    return ws.resolve()


class Serve:
    """`talon serve --data-dir D` in the foreground of a subprocess."""

    def __init__(
        self, data: Path, env: dict[str, str] | None = None, args: list[str] | None = None
    ) -> None:
        self.data = data
        self.args = list(args or [])
        self.env = {**os.environ, **(env or {})}
        self.env.pop("TALON_ADMIN_TOKEN", None)
        self.proc: subprocess.Popen | None = None

    @property
    def socket_path(self) -> Path:
        return self.data / "run" / "agent.sock"

    @property
    def admin_token(self) -> str:
        return (self.data / "admin.token").read_text().strip()

    def start(self, timeout: float = 20.0) -> Serve:
        self.proc = subprocess.Popen(
            [*TALON, "serve", "--data-dir", str(self.data), *self.args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=self.env,
            cwd=REPO,
        )
        ready, _, _ = select.select([self.proc.stdout], [], [], timeout)
        line = self.proc.stdout.readline().decode() if ready else ""
        if "listening on" not in line:
            self.proc.kill()
            err = self.proc.stderr.read().decode()
            raise RuntimeError(f"talon serve did not start: {line!r} {err}")
        return self

    def terminate(self, sig: int = signal.SIGTERM, timeout: float = 30.0) -> tuple[int, str]:
        assert self.proc is not None
        self.proc.send_signal(sig)
        try:
            _out, err = self.proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            _out, err = self.proc.communicate()
        return self.proc.returncode, err.decode()

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait()

    def stop_quietly(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.terminate()


async def new_session(
    serve: Serve, workspace: Path, policy: dict | None = READ_POLICY
) -> tuple[str, str]:
    async with await AdminClient.connect(serve.data) as admin:
        session, key = await admin.create_session("test", str(workspace), policy)
    return session.id, key


class Raw:
    """A raw blocking socket speaking JSON Lines, for hostile frames."""

    def __init__(self, path: Path, timeout: float = 10.0) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        self.sock.connect(str(path))
        self.file = self.sock.makefile("rb")

    def send_bytes(self, data: bytes) -> None:
        self.sock.sendall(data)

    def send(self, frame: Any) -> None:
        self.send_bytes(json.dumps(frame).encode() + b"\n")

    def recv(self) -> dict[str, Any] | None:
        line = self.file.readline()
        return json.loads(line) if line else None

    def call(self, frame: Any) -> dict[str, Any] | None:
        self.send(frame)
        return self.recv()

    def closed_by_peer(self) -> bool:
        try:
            return self.file.readline() == b""
        except (ConnectionResetError, TimeoutError):
            return False

    def close(self) -> None:
        self.file.close()
        self.sock.close()


def run(coro: Any) -> Any:
    return asyncio.run(coro)
