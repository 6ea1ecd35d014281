"""Fixtures for `talon mcp`: a real `talon serve` with a session for the gateway.

A test gets a session and a workspace of its own on an engine that the module's other tests
share (one `talon serve` start per module and worker, not per test). A test that stops or
restarts the engine, or needs another approval timeout, gets an engine of its own:
`@pytest.mark.own_engine`, or `@pytest.mark.approval_timeout("2")`."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from support.mcp import POLICY, Talon
from support.pipe import Serve, new_session, run


@pytest.fixture(scope="module")
def shared_engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Serve]:
    root = tmp_path_factory.mktemp("engine")
    # started before the per-test HOME isolation: give the engine a HOME of its own
    home = {"HOME": str(root / "home"), "XDG_CONFIG_HOME": str(root / "home" / "config")}
    serve = Serve(root / "data", {**home, "TALON_APPROVAL_TIMEOUT": "30"}).start()
    yield serve
    serve.stop_quietly()


@pytest.fixture
def talon(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Talon]:
    """The engine and this test's session on it (`approval_timeout`, `own_engine`: see above)."""
    marker = request.node.get_closest_marker("approval_timeout")
    own = bool(marker or request.node.get_closest_marker("own_engine"))
    if own:
        t = Talon(tmp_path, marker.args[0] if marker else "30")
        t.serve.start()
    else:
        t = Talon(tmp_path, shared=request.getfixturevalue("shared_engine"))
    t.session_id, t.key = run(new_session(t.serve, t.workspace, POLICY))
    yield t
    if own:
        t.serve.stop_quietly()  # (restart may have replaced it)
