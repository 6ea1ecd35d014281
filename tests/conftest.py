"""Suite-wide fixtures: isolate every test from the user's real data and config dirs, pin the
locale, put the system clock back after every test, and make Docker tests fail instead of
skipping when TALON_REQUIRE_DOCKER=1. Each test package's conftest.py holds its own shared
fixtures; helpers that are not fixtures live in `support/`."""

from __future__ import annotations

import os

import pytest

from talon_tui.engine.core import ids


@pytest.fixture(autouse=True)
def _isolated_dirs(tmp_path_factory, monkeypatch):
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_DATA_HOME", str(home / "data"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / "config"))
    monkeypatch.delenv("TALON_DATA_DIR", raising=False)
    monkeypatch.delenv("TALON_ADMIN_TOKEN", raising=False)
    monkeypatch.setenv("LC_ALL", "C.UTF-8")
    monkeypatch.setenv("TZ", "UTC")


@pytest.fixture(autouse=True)
def _system_clock_after_test():
    """Tests install deterministic clocks with `ids.set_clock`; this undoes it."""
    old = ids.clock()
    yield
    ids.set_clock(old)


def docker_required() -> bool:
    return os.environ.get("TALON_REQUIRE_DOCKER") == "1"
