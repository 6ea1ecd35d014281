"""Fixtures for the agent hook tests: one real `talon serve` per module, a session per test."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from support.hooks import Session, guard_policy
from support.pipe import Serve, make_workspace, new_session, run


@pytest.fixture(scope="module")
def serve(tmp_path_factory):
    root = tmp_path_factory.mktemp("hookserve")
    s = Serve(root / "data", env={"TALON_APPROVAL_TIMEOUT": "20"}).start()
    yield s
    s.stop_quietly()


@pytest.fixture
def make_session(serve, tmp_path):
    def make(policy: dict[str, Any] | None = None, workspace: Path | None = None) -> Session:
        ws = workspace or make_workspace(tmp_path)
        sid, key = run(new_session(serve, ws, policy or guard_policy()))
        return Session(serve, ws, key, sid, tmp_path)

    return make
