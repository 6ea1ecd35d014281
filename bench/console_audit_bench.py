"""Audit viewer at scale: first paint and end of a 1,000,000-event log, peak RSS, follow delay.

    .venv/bin/python bench/console_audit_bench.py [--events 1000000] [--keep DIR]

Writes a hash-chained log in the DESIGN section 5 format (a fast writer: the same canonical
bytes and chain as AuditLog, without fsync per event), then opens `AuditList` headless at
120x40 and prints: time to the first painted frame, time to reach the end (`G`), peak RSS with
the log open, and the delay from an append to its line being in the list. Targets: < 0.5 s,
< 150 MB, < 100 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

import orjson
from textual.app import App, ComposeResult

from talon_tui.app.widgets.audit_list import AuditList

ZERO = "sha256:" + "0" * 64


def write_log(path: Path, events: int) -> str:
    """A valid chain of `events` policy events; returns the last hash."""
    prev = ZERO
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as fh:
        buf = []
        for seq in range(events):
            ev = {
                "data": {
                    "by": "policy",
                    "decision": ("ALLOW", "DENY", "REQUIRE_APPROVAL")[seq % 3],
                    "intent_id": f"int_{seq:016x}",
                    "reason": "allowed by override 0 (file.read under work)",
                    "tool": "file.read",
                },
                "event_id": f"evt_{seq:016x}",
                "prev_hash": prev,
                "run_id": f"run_{seq // 6:016x}",
                "seq": seq,
                "session_id": f"sess_{seq % 7:016x}",
                "ts": "2026-11-25T17:00:00.000000Z",
                "type": "policy.decision",
            }
            body = orjson.dumps(ev, option=orjson.OPT_SORT_KEYS)
            prev = "sha256:" + hashlib.sha256(prev.encode() + body).hexdigest()
            buf.append(body[:-1] + b',"hash":"' + prev.encode() + b'"}\n')
            if len(buf) >= 10000:
                fh.write(b"".join(buf))
                buf.clear()
        fh.write(b"".join(buf))
    return prev


class TimedList(AuditList):
    """Notes when the first line with content is rendered (the first painted frame)."""

    painted_at: float | None = None

    def render_line(self, y: int):
        if TimedList.painted_at is None and self.offsets:
            TimedList.painted_at = time.perf_counter()
        return super().render_line(y)


class BenchApp(App[None]):
    def __init__(self, path: Path) -> None:
        super().__init__()
        self.path = path

    def compose(self) -> ComposeResult:
        yield TimedList(self.path, id="list")


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


async def measure(path: Path, appends: int) -> dict[str, float]:
    app = BenchApp(path)
    t0 = time.perf_counter()
    async with app.run_test(size=(120, 40)) as pilot:
        audit_list = app.query_one(AuditList)
        while TimedList.painted_at is None:
            await pilot.pause(0.001)
        first_paint = TimedList.painted_at - t0
        assert audit_list.offsets, "nothing painted"
        while not audit_list.complete:
            await pilot.pause(0.01)
        full_index = time.perf_counter() - t0
        await pilot.press("g")
        t1 = time.perf_counter()
        await pilot.press("G")
        at_end = audit_list.cursor == len(audit_list.offsets) - 1
        end_reached = time.perf_counter() - t1
        assert at_end and audit_list.scroll_y == audit_list.max_scroll_y
        for _ in range(20):  # scroll through a few pages to fill the caches
            await pilot.press("pageup")
        await pilot.press("G")
        delays = []
        with open(path, "rb") as fh:
            fh.seek(-4096, 2)
            line = fh.read().split(b"\n")[-2] + b"\n"
        for _ in range(appends):
            before = len(audit_list.offsets)
            with open(path, "ab") as fh:
                fh.write(line)
            t = time.perf_counter()
            while len(audit_list.offsets) == before:
                await pilot.pause(0.002)
            await pilot.pause()
            delays.append(time.perf_counter() - t)
        return {
            "first_paint_s": first_paint,
            "end_reached_s": end_reached,
            "full_index_s": full_index,
            "peak_rss_mb": rss_mb(),
            "follow_delay_ms_median": statistics.median(delays) * 1000,
            "follow_delay_ms_max": max(delays) * 1000,
            "events": len(audit_list.offsets),
        }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--keep", type=Path, help="write (or reuse) the log in this directory")
    parser.add_argument("--appends", type=int, default=20)
    args = parser.parse_args()
    tmp = None
    if args.keep:
        directory = args.keep
    else:
        tmp = tempfile.TemporaryDirectory()
        directory = Path(tmp.name)
    path = directory / "audit" / "audit.jsonl"
    if not path.exists():
        t = time.perf_counter()
        write_log(path, args.events)
        size_mb = path.stat().st_size / 1e6
        print(f"wrote {args.events:,} events ({size_mb:.0f} MB) in {time.perf_counter() - t:.1f} s")
    base = rss_mb()
    figures = asyncio.run(measure(path, args.appends))
    print(f"RSS before opening the app: {base:.0f} MB")
    targets = {"first_paint_s": 0.5, "peak_rss_mb": 150, "follow_delay_ms_max": 100}
    for name, value in figures.items():
        mark = ""
        if name in targets:
            mark = "  ok" if value < targets[name] else f"  OVER target {targets[name]}"
        print(f"{name:>24}: {value:,.3f}{mark}")
    if tmp is not None:
        tmp.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
