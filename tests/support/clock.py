"""Deterministic clocks for tests: install one with `ids.use_clock(...)` (or the `clock`
fixtures in tests/conftest.py) instead of patching functions."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from datetime import datetime, timedelta

from talon_tui.engine.core.clock import Clock, SystemClock


class CountingIds:
    """Ids that count per prefix (`run_0000000000000001`, ...) or in one shared sequence."""

    def __init__(self, *, shared: bool = False, start: int = 1) -> None:
        self._shared = itertools.count(start) if shared else None
        self._per_prefix: dict[str, itertools.count[int]] = {}
        self._start = start

    def __call__(self, prefix: str) -> str:
        counter = self._shared or self._per_prefix.setdefault(prefix, itertools.count(self._start))
        return f"{prefix}_{next(counter):016x}"


class TestClock(Clock):
    """A clock whose time comes from `now` and whose ids come from `new_id`; either may be
    left to the real system clock."""

    __test__ = False  # not a test class

    def __init__(
        self,
        now: Callable[[], datetime] | None = None,
        new_id: Callable[[str], str] | None = None,
    ) -> None:
        self._system = SystemClock()
        self._now = now
        self._new_id = new_id

    def utcnow(self) -> datetime:
        return self._now() if self._now else self._system.utcnow()

    def now_iso(self) -> str:
        return super().now_iso() if self._now else self._system.now_iso()

    def new_id(self, prefix: str) -> str:
        return self._new_id(prefix) if self._new_id else self._system.new_id(prefix)


def fixed(at: datetime, **ids: bool) -> TestClock:
    """Always `at`, with counting ids (per prefix unless shared=True)."""
    return TestClock(lambda: at, CountingIds(**ids))


def ticking(start: datetime, step: timedelta, *, ids: Callable[[str], str] | None = None) -> Clock:
    """`start`, then one `step` later at every reading."""
    ticks = itertools.count()
    return TestClock(lambda: start + step * next(ticks), ids)
