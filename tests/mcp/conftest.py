"""Fixtures for `talon mcp`: a real `talon serve` with a session for the gateway."""

from __future__ import annotations

from pathlib import Path

import pytest
from support.mcp import POLICY, Talon
from support.pipe import new_session, run


@pytest.fixture
def talon(request: pytest.FixtureRequest, tmp_path: Path):
    """The engine; `@pytest.mark.approval_timeout("2")` shortens its approval timeout."""
    marker = request.node.get_closest_marker("approval_timeout")
    t = Talon(tmp_path, marker.args[0] if marker else "30")
    t.serve.start()
    t.session_id, t.key = run(new_session(t.serve, t.workspace, POLICY))
    yield t
    t.serve.stop_quietly()
