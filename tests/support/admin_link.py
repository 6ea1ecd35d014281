"""Shared by the admin-link tests (issue 15.2): a policy whose writes wait for an operator, a
param as large as an agent's frame allows, and the CLI against a data dir."""

from __future__ import annotations

import os
import subprocess

from talon_tui.engine.core import frames

from .pipe import REPO, TALON

WRITE_APPROVAL = {
    "version": 1,
    "overrides": [
        {
            "tool": "file.write",
            "allow": True,
            "approval": "always",
            "constraints": {"roots": ["work"], "max_bytes": 2 << 20},
        }
    ],
}
# as large as an agent's frame allows: the engine's copies of it are larger still
BIG = "A" * (frames.MAX_LINE_BYTES - 300) + "\x01END"


def talon(data, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "TALON_ADMIN_TOKEN"}
    return subprocess.run(
        [*TALON, *args, "--data-dir", str(data)],
        capture_output=True,
        text=True,
        cwd=REPO,
        env=env,
        timeout=120,
    )
