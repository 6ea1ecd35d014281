"""The engine's clock and its source of identifiers, one injectable object.

Production code asks `ids` (which asks the installed clock) or takes a `Clock` argument; it
never checks whether a function was replaced. Tests install a deterministic clock with
`ids.use_clock(...)` (or pass one to `AuditLog`), so timestamps and ids come out the same on
every run.
"""

from __future__ import annotations

import os
import secrets
import time
from collections.abc import Callable
from datetime import UTC, datetime


def iso(dt: datetime) -> str:
    """RFC 3339 UTC with microseconds and a Z: 2026-11-25T17:00:00.123456Z."""
    return dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class Clock:
    """What the engine asks for the time and for fresh identifiers. Subclasses give
    `utcnow` and `new_id`; `now_iso` and `id_batch` follow from them unless overridden."""

    def utcnow(self) -> datetime:
        raise NotImplementedError

    def new_id(self, prefix: str) -> str:
        raise NotImplementedError

    def now_iso(self) -> str:
        return iso(self.utcnow())

    def id_batch(self, prefix: str, count: int) -> Callable[[], str]:
        """A function handing out up to `count` fresh ids, one per call (the audit log draws
        the ids of a whole batch at once)."""
        del count
        return lambda: self.new_id(prefix)


class SystemClock(Clock):
    """Real UTC time and random ids. `now_iso` formats the date and time only when the second
    changes (the real time of each call, to the microsecond)."""

    def __init__(self, time_ns: Callable[[], int] = time.time_ns) -> None:
        self._time_ns = time_ns
        self._second: tuple[int, str] = (-1, "")

    def utcnow(self) -> datetime:
        return datetime.now(UTC)

    def new_id(self, prefix: str) -> str:
        """A random identifier such as `sess_3f9c0a1b2c3d4e5f`."""
        return f"{prefix}_{secrets.token_hex(8)}"

    def now_iso(self) -> str:
        us = self._time_ns() // 1000
        sec, frac = divmod(us, 1_000_000)
        second = self._second
        if second[0] != sec:
            second = (sec, time.strftime("%Y-%m-%dT%H:%M:%S.", time.gmtime(sec)))
            self._second = second  # one tuple: threads never see a prefix of another second
        return f"{second[1]}{frac:06d}Z"

    def id_batch(self, prefix: str, count: int) -> Callable[[], str]:
        """One random draw for `count` ids."""
        pool = os.urandom(8 * count).hex()
        head = prefix + "_"
        return iter([head + pool[i : i + 16] for i in range(0, 16 * count, 16)]).__next__
