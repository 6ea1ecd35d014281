"""Fixtures for `talon mcp`: a real `talon serve` with a session for the gateway."""

from __future__ import annotations

from pathlib import Path

import pytest
from support.mcp import POLICY, Talon
from support.pipe import new_session, run


@pytest.fixture
def talon(tmp_path: Path):
    t = Talon(tmp_path)
    t.serve.start()
    t.session_id, t.key = run(new_session(t.serve, t.workspace, POLICY))
    yield t
    t.serve.stop_quietly()
