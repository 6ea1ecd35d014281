"""The engine's event bus: every audit event, approval, run and agent change, for the console
and for `events.subscribe` on the pipe.

Publishing never blocks and never waits for a subscriber. Each subscriber has a bounded queue,
in messages and in bytes (an agent controls how large events are: a stalled subscriber must
not pin gigabytes of them); when it overflows, the messages that do not fit are dropped and
counted, and once the subscriber has drained what it had, it receives one `missed` message
`{count, from_seq}` so it can re-read the gap from the audit log. Order is kept: what was
queued, then `missed`, then new messages.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator
from typing import Any

import orjson

from ..api import BusMessage

DEFAULT_QUEUE_SIZE = 10_000
DEFAULT_QUEUE_BYTES = 32 << 20


class Subscription:
    """One subscriber's bounded queue. Iterate it (async) to receive `BusMessage`s."""

    def __init__(self, bus: EventBus, maxsize: int, max_bytes: int = DEFAULT_QUEUE_BYTES) -> None:
        self._bus = bus
        self._maxsize = maxsize
        self._max_bytes = max_bytes
        self._bytes = 0
        self._items: deque[tuple[BusMessage, int]] = deque()
        self._wakeup = asyncio.Event()
        self._missed = 0
        self._missed_from_seq: int | None = None
        self._closed = False

    # -- called by the bus (on the loop thread)
    def _offer(self, msg: BusMessage, size: int = 0) -> None:
        if self._closed:
            return
        if (
            self._missed
            or len(self._items) >= self._maxsize
            or (self._items and self._bytes + size > self._max_bytes)
        ):
            self._missed += 1
            if self._missed_from_seq is None and msg.kind == "audit":
                seq = msg.payload.get("seq")
                if isinstance(seq, int):
                    self._missed_from_seq = seq
            self._wakeup.set()
            return
        self._items.append((msg, size))
        self._bytes += size
        self._wakeup.set()

    @property
    def missed(self) -> int:
        return self._missed

    def close(self) -> None:
        """Stop receiving; a waiting iterator ends."""
        if not self._closed:
            self._closed = True
            self._bus._remove(self)
            self._wakeup.set()

    def get_nowait(self) -> BusMessage | None:
        """The next message, or None when nothing is waiting."""
        if self._items:
            msg, size = self._items.popleft()
            self._bytes -= size
            return msg
        if self._missed:
            msg = BusMessage(
                kind="missed",
                payload={
                    "count": self._missed,
                    "from_seq": self._missed_from_seq,
                },
            )
            self._missed = 0
            self._missed_from_seq = None
            return msg
        return None

    async def get(self) -> BusMessage | None:
        """Wait for the next message; None once closed."""
        while True:
            msg = self.get_nowait()
            if msg is not None:
                return msg
            if self._closed:
                return None
            self._wakeup.clear()
            await self._wakeup.wait()

    def __aiter__(self) -> AsyncIterator[BusMessage]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[BusMessage]:
        try:
            while True:
                msg = await self.get()
                if msg is None:
                    return
                yield msg
        finally:
            self.close()


class EventBus:
    """Fan-out of `BusMessage`s to bounded subscriber queues. Call `publish` on the loop thread."""

    def __init__(self, queue_size: int = DEFAULT_QUEUE_SIZE) -> None:
        self._queue_size = queue_size
        self._subs: list[Subscription] = []

    def subscribe(self, maxsize: int | None = None) -> Subscription:
        sub = Subscription(self, maxsize or self._queue_size)
        self._subs.append(sub)
        return sub

    def _remove(self, sub: Subscription) -> None:
        try:
            self._subs.remove(sub)
        except ValueError:
            pass

    @property
    def subscriber_count(self) -> int:
        return len(self._subs)

    def publish(self, kind: str, payload: dict[str, Any]) -> None:
        if not self._subs:
            return
        msg = BusMessage.model_construct(kind=kind, payload=payload)
        size = payload_size(payload)
        for sub in list(self._subs):
            sub._offer(msg, size)

    def close(self) -> None:
        for sub in list(self._subs):
            sub.close()


def payload_size(payload: dict[str, Any]) -> int:
    """About how many bytes a message pins: its JSON length (what it costs on the pipe)."""
    try:
        return len(orjson.dumps(payload, default=str))
    except TypeError:  # not JSON-able at all: count it as small, it came from our own code
        return 256
