"""Identifiers and the current time, drawn from the installed `Clock` (see `clock.py`).

`use_clock(c)` installs another clock (tests make ids and timestamps deterministic that way);
every function here asks whichever clock is installed when it is called.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from datetime import datetime

from .clock import Clock, SystemClock, iso

__all__ = ["Clock", "clock", "iso", "new_id", "now_iso", "set_clock", "use_clock", "utcnow"]

_clock: Clock = SystemClock()


def clock() -> Clock:
    """The installed clock."""
    return _clock


def set_clock(new: Clock) -> Clock:
    """Install `new`; returns the clock it replaces."""
    global _clock
    old, _clock = _clock, new
    return old


@contextlib.contextmanager
def use_clock(new: Clock) -> Iterator[Clock]:
    """Install `new` for the duration of a `with` block."""
    old = set_clock(new)
    try:
        yield new
    finally:
        set_clock(old)


def new_id(prefix: str) -> str:
    """A fresh identifier such as `sess_3f9c0a1b2c3d4e5f`."""
    return _clock.new_id(prefix)


def utcnow() -> datetime:
    return _clock.utcnow()


def now_iso() -> str:
    """RFC 3339 UTC with microseconds and a Z: 2026-11-25T17:00:00.123456Z."""
    return _clock.now_iso()
