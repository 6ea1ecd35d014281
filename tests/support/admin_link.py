"""Shared by the admin-link tests (issue 15.2): a policy whose writes wait for an operator, a
param as large as an agent's frame allows, and the CLI against a data dir."""

from __future__ import annotations

from talon_tui.engine.core import frames

from .pipe import run_talon

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

talon = run_talon  # `talon ARGS --data-dir DATA`, for the admin-link tests
