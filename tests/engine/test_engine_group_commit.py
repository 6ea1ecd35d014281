"""GroupCommit: the dedicated flusher thread wakes every waiter once its events are synced,
never before, never loses a wake-up, shares fsyncs, and hands a sync failure to the waiters."""

from __future__ import annotations

import asyncio
import random
import threading
import time

import pytest

from talon_tui.engine.runtime.store import GroupCommit


class FakeLog:
    def __init__(self, fail_after: int | None = None) -> None:
        self.next_seq = 0
        self.durable = 0
        self.syncs = 0
        self.fail_after = fail_after
        self.lock = threading.Lock()

    def append(self) -> int:
        self.next_seq += 1
        return self.next_seq

    def sync(self) -> None:
        target = self.next_seq
        time.sleep(random.random() * 0.001)
        with self.lock:
            self.syncs += 1
            if self.fail_after is not None and self.syncs > self.fail_after:
                raise OSError("disk gone")
            self.durable = max(self.durable, target)


def test_every_waiter_is_woken_after_its_events_are_durable() -> None:
    async def main() -> None:
        log = FakeLog()
        commit = GroupCommit(log)  # type: ignore[arg-type]

        async def writer(n: int) -> None:
            for _ in range(n):
                for _ in range(random.randint(1, 6)):
                    seq = log.append()
                if random.random() < 0.3:
                    await asyncio.sleep(0)
                await asyncio.wait_for(commit.wait(), timeout=10)
                assert log.durable >= seq

        await asyncio.gather(*(writer(300) for _ in range(16)))
        await asyncio.wait_for(commit.wait(), timeout=10)  # nothing new: returns at once
        assert log.syncs < 16 * 300  # shared
        commit.close()

    asyncio.run(main())


def test_sequential_waiters_never_stall() -> None:
    async def main() -> None:
        log = FakeLog()
        commit = GroupCommit(log)  # type: ignore[arg-type]
        for _ in range(2000):
            seq = log.append()
            await asyncio.wait_for(commit.wait(), timeout=5)
            assert log.durable >= seq
        commit.close()

    asyncio.run(main())


def test_a_failed_sync_reaches_the_waiters() -> None:
    async def main() -> None:
        log = FakeLog(fail_after=0)
        commit = GroupCommit(log)  # type: ignore[arg-type]
        log.append()
        with pytest.raises(OSError, match="disk gone"):
            await asyncio.wait_for(commit.wait(), timeout=5)
        commit.close()

    asyncio.run(main())
