"""Fixtures shared by the console tests (the helpers are in tests/support/app.py)."""

from __future__ import annotations

import pytest
from support.app import frozen

__all__ = ["frozen"]


@pytest.fixture(autouse=True)
def console_config_dir(tmp_path_factory, monkeypatch):
    """Every console test reads and writes its own settings file (console.json), never the
    user's: a theme picked on this machine must not change a snapshot."""
    path = tmp_path_factory.mktemp("config")
    monkeypatch.setenv("TALON_CONFIG_DIR", str(path))
    return path
