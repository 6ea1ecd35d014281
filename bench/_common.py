"""What the benches that drive a real `talon serve` start the same way: this repository on the
import path, the one-root file.read policy, the serve subprocess (ready once it says it is
listening), a session on it, and its stop. Internal to bench/: `make bench` runs the benches,
which import it as `_common` (their own folder is first on the path)."""

from __future__ import annotations

import asyncio
import os
import select
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

#: allowed, never asked: file.read under `work/` of the workspace, up to 1 MiB
READ_POLICY: dict[str, Any] = {
    "version": 1,
    "overrides": [
        {
            "tool": "file.read",
            "allow": True,
            "approval": "never",
            "constraints": {"roots": ["work"], "max_bytes": 1 << 20},
        }
    ],
}
#: the pipe's per-agent rate limit lifted, so a bench measures the engine, not the limiter
NO_RATE_LIMIT = {"TALON_PIPE_RATE": "1000000", "TALON_PIPE_BURST": "1000000"}


def bench_workspace(root: Path) -> Path:
    """`root/ws`, the agent's workspace of the file.read benches: `work/a.txt`, 64 bytes."""
    ws = root / "ws"
    (ws / "work").mkdir(parents=True)
    (ws / "work" / "a.txt").write_text("hello benchmark\n" * 4)
    return ws


def start_serve(
    data: Path,
    extra_args: list[str] | None = None,
    *,
    launcher: list[str] | None = None,
    lift_rate_limit: bool = True,
    tree: Path | None = None,
) -> subprocess.Popen[bytes]:
    """`talon serve --data-dir DATA [extra_args]` from this repository, or from another
    checkout `tree` (its code first on the path: bench/pipe_ab.py), returned once it says it is
    listening (exit with its stderr when it has not within 30 s); `launcher` is what runs the
    CLI (default `python -m talon_tui.cli`; pipe_bench passes its own profiling wrapper)."""
    cmd = [*(launcher or [sys.executable, "-m", "talon_tui.cli"])]
    cmd += ["serve", "--data-dir", str(data), *(extra_args or [])]
    env = {**os.environ, **(NO_RATE_LIMIT if lift_rate_limit else {})}
    if tree is not None:
        env["PYTHONPATH"] = str(tree)
    cwd = tree or REPO
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, cwd=cwd)
    assert proc.stdout is not None and proc.stderr is not None
    ready, _, _ = select.select([proc.stdout], [], [], 30)
    if not ready or b"listening" not in proc.stdout.readline():
        proc.kill()
        raise SystemExit(f"talon serve of {cwd} did not start: {proc.stderr.read().decode()}")
    return proc


def stop_serve(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM, then wait for the serve to drain and exit."""
    proc.send_signal(signal.SIGTERM)
    proc.communicate(timeout=60)


def make_session(
    data: Path, ws: Path, label: str = "bench", policy: dict[str, Any] = READ_POLICY
) -> str:
    """A new session on workspace `ws` with `policy`; its agent key."""
    from talon_tui.client import AdminClient

    async def go() -> str:
        async with await AdminClient.connect(data) as admin:
            _session, key = await admin.create_session(label, str(ws), policy)
            return key

    return asyncio.run(go())
