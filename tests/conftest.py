"""Suite-wide fixtures: isolate every test from the user's real data and config dirs, pin the
locale, put the system clock back after every test, and make Docker tests fail instead of
skipping when TALON_REQUIRE_DOCKER=1. Each test package's conftest.py holds its own shared
fixtures; helpers that are not fixtures live in `support/`.

Modules with a slow test run first. The run ends with a list of the tests whose call took over
SLOW_SECONDS but that carry no `slow` marker (a report, never a failure: timings belong to
bench/, not to assertions)."""

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


SLOW_SECONDS = 5.0
_unmarked_slow: dict[str, float] = {}


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    """Runs in the controller too under xdist: each worker's reports come back to it."""
    if report.when == "call" and report.duration > SLOW_SECONDS and "slow" not in report.keywords:
        _unmarked_slow[report.nodeid] = report.duration


def pytest_terminal_summary(terminalreporter, exitstatus, config) -> None:
    if not _unmarked_slow or hasattr(config, "workerinput"):
        return
    terminalreporter.section(f"over {SLOW_SECONDS:g} s without the slow marker")
    for nodeid, seconds in sorted(_unmarked_slow.items(), key=lambda kv: -kv[1]):
        terminalreporter.write_line(f"{seconds:6.1f}s {nodeid}")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Modules with a `slow` test run first (each module's tests stay together and in order, so
    a module-scoped fixture is still set up once per worker): under xdist a long test dealt
    out last would keep one worker busy while the others sit idle at the end of the run."""
    slow = {item.path for item in items if item.get_closest_marker("slow")}
    items.sort(key=lambda item: item.path not in slow)


def docker_required() -> bool:
    return os.environ.get("TALON_REQUIRE_DOCKER") == "1"
