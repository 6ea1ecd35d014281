"""Fixtures shared by the engine tests: a workspace, a started in-process Engine, and the
real Docker engine's fixtures (tests/support/docker.py)."""

from __future__ import annotations

import pytest
from support.docker import docker_api, test_image, test_labels

from talon_tui.engine.engine import Engine

__all__ = ["docker_api", "engine", "test_image", "test_labels", "workspace"]


@pytest.fixture
def workspace(tmp_path):
    """`work/a.txt` ("hello") agents may read, and `secret/s.txt` outside any root."""
    ws = tmp_path / "ws"
    (ws / "work").mkdir(parents=True)
    (ws / "work" / "a.txt").write_text("hello")
    (ws / "secret").mkdir()
    (ws / "secret" / "s.txt").write_text("nope")
    return ws.resolve()


@pytest.fixture
async def engine(tmp_path):
    eng = Engine(tmp_path / "data", approval_timeout=5)
    await eng.start()
    yield eng
    await eng.stop()
