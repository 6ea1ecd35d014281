"""Fair sharing of the engine between sessions: blocking tools, pending approvals, audit noise.

- `ToolScheduler` runs blocking tool calls (everything but the inline file.read) on its own
  thread pool under a per-session and a per-agent limit, so no session can hold every thread:
  another session's intent always finds a free one. A session's excess intents wait in a FIFO
  queue, bounded per session; past that bound the intent is refused at once (RATE_LIMITED).
  A slot is given back when the tool's thread ends, not when the waiting request goes away, so
  an agent cannot run more threads by disconnecting.
- `Aggregator` turns a flood of like events (refused hellos, refused intents) into at most one
  audit event per key per interval, carrying the count.
- `REQUEST_BUDGET` / `parked()`: the pipe counts memory a request may pin while it runs (see
  pipe.ReplyBudget); a request waiting on something slow (an operator, a tool thread) is
  "parked" and stops counting until it resumes.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from ..errors import ErrorCode, TalonError

DEFAULT_TOOL_THREADS = 16
DEFAULT_TOOLS_PER_SESSION = 4
DEFAULT_TOOLS_PER_AGENT = 4
DEFAULT_TOOL_QUEUE_PER_SESSION = 64
DEFAULT_APPROVALS_PER_SESSION = 32
DEFAULT_APPROVALS_PER_AGENT = 16
DEFAULT_APPROVAL_PARAMS_BYTES = 8 << 20
DEFAULT_AUDIT_AGGREGATE_SECONDS = 10.0
# the pipe's (pipe.py uses them; kept here so the CLI can show them without importing it)
DEFAULT_MAX_CONNECTIONS = 256
DEFAULT_MAX_CONNECTIONS_PER_AGENT = 64
DEFAULT_HELLO_TIMEOUT = 5.0
DEFAULT_MAX_UNAUTH_PER_UID = 64
DEFAULT_MAX_UNAUTH = 128
DEFAULT_MAX_UNSENT = 4 << 20
DEFAULT_MAX_UNSENT_TOTAL = 64 << 20


class RateLimited(TalonError):
    code = ErrorCode.RATE_LIMITED


@dataclass(frozen=True)
class ToolLimits:
    threads: int = DEFAULT_TOOL_THREADS
    per_session: int = DEFAULT_TOOLS_PER_SESSION
    per_agent: int = DEFAULT_TOOLS_PER_AGENT
    queue_per_session: int = DEFAULT_TOOL_QUEUE_PER_SESSION

    def __post_init__(self) -> None:
        for name in ("threads", "per_session", "per_agent", "queue_per_session"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"tool limit {name} must be at least 1")
        if self.per_session >= self.threads or self.per_agent >= self.threads:
            raise ValueError(
                "the per-session and per-agent tool limits must be below the thread count, "
                "or one session could take every thread"
            )


@dataclass(frozen=True)
class ApprovalLimits:
    per_session: int = DEFAULT_APPROVALS_PER_SESSION
    per_agent: int = DEFAULT_APPROVALS_PER_AGENT
    params_bytes_per_session: int = DEFAULT_APPROVAL_PARAMS_BYTES

    def __post_init__(self) -> None:
        for name in ("per_session", "per_agent", "params_bytes_per_session"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"approval limit {name} must be at least 1")


# --------------------------------------------------------------------------- request budget

#: set by the pipe in each request's task: an object with `park()`, `unpark()`, `produced(n)`
REQUEST_BUDGET: ContextVar[Any] = ContextVar("talon_request_budget", default=None)


def produced(size: int) -> None:
    """The current request has made a result of about `size` bytes (its reply will carry it)."""
    budget = REQUEST_BUDGET.get()
    if budget is not None:
        budget.produced(size)


@contextlib.contextmanager
def parked() -> Iterator[None]:
    """The current request waits on something slow: its reply budget is lent back meanwhile."""
    budget = REQUEST_BUDGET.get()
    if budget is None:
        yield
        return
    budget.park()
    try:
        yield
    finally:
        budget.unpark()


# --------------------------------------------------------------------------- tool scheduler


class ToolSlot:
    """One granted execution slot; `run` uses it once, `release` gives it back (once)."""

    __slots__ = ("_released", "_running", "_scheduler", "agent", "session")

    def __init__(self, scheduler: ToolScheduler, session: str, agent: str) -> None:
        self._scheduler = scheduler
        self.session = session
        self.agent = agent
        self._running = False
        self._released = False

    async def run(self, fn: Callable[[], Any]) -> Any:
        """`fn()` on the tool pool; the slot stays taken until the thread ends, even if the
        caller is cancelled first."""
        loop = asyncio.get_running_loop()
        self._running = True
        cfut: Future = self._scheduler.pool.submit(fn)

        def done(_f: Future) -> None:
            with contextlib.suppress(RuntimeError):  # loop closed: the engine is gone
                loop.call_soon_threadsafe(self._thread_ended)

        cfut.add_done_callback(done)
        with parked():
            return await asyncio.wrap_future(cfut)

    def _thread_ended(self) -> None:
        self._running = False
        if self._released:
            self._scheduler._free(self)

    def release(self) -> None:
        if self._released:
            return
        self._released = True
        if not self._running:
            self._scheduler._free(self)


class ToolScheduler:
    """Grants tool slots: at most `threads` at once, `per_session` per session and `per_agent`
    per agent subject; waiters are served first come first served among those that fit."""

    def __init__(self, limits: ToolLimits | None = None) -> None:
        self.limits = limits or ToolLimits()
        self.pool = ThreadPoolExecutor(
            max_workers=self.limits.threads, thread_name_prefix="talon-tool"
        )
        self.running = 0
        self.by_session: dict[str, int] = {}
        self.by_agent: dict[str, int] = {}
        self.queued_by_session: dict[str, int] = {}
        self.queued_by_agent: dict[str, int] = {}
        self._waiters: deque[tuple[str, str, asyncio.Future]] = deque()

    def _fits(self, session: str, agent: str) -> bool:
        return (
            self.running < self.limits.threads
            and self.by_session.get(session, 0) < self.limits.per_session
            and self.by_agent.get(agent, 0) < self.limits.per_agent
        )

    def _take(self, session: str, agent: str) -> ToolSlot:
        self.running += 1
        self.by_session[session] = self.by_session.get(session, 0) + 1
        self.by_agent[agent] = self.by_agent.get(agent, 0) + 1
        return ToolSlot(self, session, agent)

    def try_acquire(self, session: str, agent: str) -> ToolSlot | None:
        """A slot at once if one is free for `session`/`agent` and none of theirs is queued
        (waiters of other sessions do not fit, else they would have been granted: they cannot
        hold this one up); None otherwise."""
        if (
            self._fits(session, agent)
            and session not in self.queued_by_session
            and agent not in self.queued_by_agent
        ):
            return self._take(session, agent)
        return None

    async def acquire(self, session: str, agent: str) -> ToolSlot:
        """A slot for one tool call of `session`/`agent`; waits (parked) for one, or raises
        RateLimited when the session already has `queue_per_session` calls waiting."""
        slot = self.try_acquire(session, agent)
        if slot is not None:
            return slot
        queued = self.queued_by_session.get(session, 0)
        if queued >= self.limits.queue_per_session:
            raise RateLimited(
                f"this session already has {queued} tool calls waiting for a slot "
                f"(at most {self.limits.per_session} run at once); slow down",
                details={"queued": queued, "per_session": self.limits.per_session},
            )
        fut: asyncio.Future = asyncio.get_running_loop().create_future()
        entry = (session, agent, fut)
        self._waiters.append(entry)
        self.queued_by_session[session] = queued + 1
        self.queued_by_agent[agent] = self.queued_by_agent.get(agent, 0) + 1
        try:
            with parked():
                return await fut
        except asyncio.CancelledError:
            if fut.done() and not fut.cancelled():
                fut.result().release()  # granted in the same turn as the cancel
            raise
        finally:
            with contextlib.suppress(ValueError):
                self._waiters.remove(entry)
            for counts, key in ((self.queued_by_session, session), (self.queued_by_agent, agent)):
                left = counts[key] - 1
                if left:
                    counts[key] = left
                else:
                    del counts[key]

    def _free(self, slot: ToolSlot) -> None:
        self.running -= 1
        for counts, key in ((self.by_session, slot.session), (self.by_agent, slot.agent)):
            left = counts[key] - 1
            if left:
                counts[key] = left
            else:
                del counts[key]
        self._grant()

    def _grant(self) -> None:
        """Wake, in arrival order, every waiter that now fits."""
        for entry in list(self._waiters):
            if self.running >= self.limits.threads:
                return
            session, agent, fut = entry
            if fut.done() or not self._fits(session, agent):
                continue
            self._waiters.remove(entry)
            fut.set_result(self._take(session, agent))

    def snapshot(self) -> dict[str, int]:
        return {
            "tool_threads": self.limits.threads,
            "tools_per_session": self.limits.per_session,
            "tools_per_agent": self.limits.per_agent,
            "tool_queue_per_session": self.limits.queue_per_session,
            "tools_running": self.running,
            "tools_queued": len(self._waiters),
        }

    def shutdown(self) -> None:
        self.pool.shutdown(wait=False, cancel_futures=True)


# --------------------------------------------------------------------------- aggregation


class Aggregator:
    """At most one event per key per `interval` seconds: the first occurrence is emitted at
    once (count 1); later ones in the interval are counted and emitted together when it ends.
    `emit(key, count, last, tally)` is called on the event loop with the most recent details
    and, for each field named in `tally_fields`, how often each value of it occurred."""

    def __init__(
        self,
        emit: Callable[[Any, int, dict[str, Any], dict[str, dict[str, int]]], None],
        interval: float,
        tally_fields: tuple[str, ...] = (),
    ) -> None:
        self.emit = emit
        self.interval = interval
        self.tally_fields = tally_fields
        self._last_emit: dict[Any, float] = {}
        self._pending: dict[Any, _Pending] = {}
        self._timers: dict[Any, asyncio.TimerHandle] = {}

    def _tally(self, details: dict[str, Any], into: dict[str, dict[str, int]]) -> None:
        for name in self.tally_fields:
            counts = into.setdefault(name, {})
            value = str(details.get(name))
            if value in counts or len(counts) < 32:
                counts[value] = counts.get(value, 0) + 1

    def note(self, key: Any, details: dict[str, Any]) -> None:
        now = time.monotonic()
        last = self._last_emit.get(key)
        if key not in self._pending and (last is None or now - last >= self.interval):
            self._last_emit[key] = now
            self._prune(now)
            tally: dict[str, dict[str, int]] = {}
            self._tally(details, tally)
            self.emit(key, 1, details, tally)
            return
        pending = self._pending.get(key)
        if pending is None:
            pending = self._pending[key] = _Pending()
        pending.count += 1
        pending.last = details
        self._tally(details, pending.tally)
        if key not in self._timers:
            delay = max(0.0, (last or now) + self.interval - now)
            self._timers[key] = asyncio.get_running_loop().call_later(delay, self._flush, key)

    def _flush(self, key: Any) -> None:
        self._timers.pop(key, None)
        pending = self._pending.pop(key, None)
        if pending is None:
            return
        self._last_emit[key] = time.monotonic()
        self.emit(key, pending.count, pending.last, pending.tally)

    def _prune(self, now: float) -> None:
        if len(self._last_emit) > 4096:  # forget keys quiet for a whole interval
            for key, stamp in list(self._last_emit.items()):
                if now - stamp >= self.interval and key not in self._pending:
                    del self._last_emit[key]

    def flush_all(self) -> None:
        """Emit every count still held (engine stopping)."""
        for key in list(self._pending):
            timer = self._timers.pop(key, None)
            if timer is not None:
                timer.cancel()
            self._flush(key)


class _Pending:
    __slots__ = ("count", "last", "tally")

    def __init__(self) -> None:
        self.count = 0
        self.last: dict[str, Any] = {}
        self.tally: dict[str, dict[str, int]] = {}
