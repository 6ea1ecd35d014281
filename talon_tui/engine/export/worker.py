"""The exporters' own process: `python -m talon_tui.engine.export.worker --log FILE
--cursor-dir DIR --status FILE --spec KIND=TARGET...`, started by `talon serve --export`.

A separate process, scheduled only when the CPU is otherwise idle (SCHED_IDLE), so that reading,
encoding and sending events never takes the engine's interpreter lock or its CPU time from
intents. It writes its exporters'
status to `--status` (JSON, atomically, twice a second) for `talon status` and the dashboard.
When its stdin closes (the engine has stopped and written its final checkpoint, or the engine
died) it sends what is left of the log for up to --drain seconds, then exits. SIGINT and
SIGTERM are ignored: a terminal's ^C or a service manager's stop reaches the engine, which
closes the pipe once its last event is written (a signal could come before a handler exists).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
from pathlib import Path

from .config import ExportConfigError, parse_spec
from .follower import ExportManager
from .sinks import SinkError

STATUS_EVERY_S = 0.5


def yield_cpu(nice: int) -> str:
    """Run this process (and the threads it starts from now on) only when no other process
    wants the CPU: SCHED_IDLE, so a waking engine thread takes the core at once instead of
    waiting for the exporters' time slice (what a nice value alone leaves: intent p99 rose
    with export on). Where SCHED_IDLE is refused, `nice` instead. Returns which."""
    try:
        os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
        return "idle"
    except (AttributeError, OSError):
        if nice:
            os.nice(nice)
        return f"nice {nice}"


def write_status(path: Path, rows: list[dict[str, object]]) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"pid": os.getpid(), "exporters": rows}), encoding="utf-8")
    os.replace(tmp, path)


def main(argv: list[str] | None = None) -> int:
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, signal.SIG_IGN)
    ap = argparse.ArgumentParser(prog="talon-export-worker")
    ap.add_argument("--log", required=True)
    ap.add_argument("--cursor-dir", required=True)
    ap.add_argument("--status", required=True)
    ap.add_argument("--spec", action="append", default=[])
    ap.add_argument("--drain", type=float, default=5.0)
    ap.add_argument("--nice", type=int, default=10, help="where SCHED_IDLE is refused")
    args = ap.parse_args(argv)
    yield_cpu(args.nice)
    try:
        specs = [parse_spec(text) for text in args.spec]
        manager = ExportManager(specs, Path(args.log), Path(args.cursor_dir))
    except (ExportConfigError, SinkError) as exc:
        print(f"talon export: {exc}", file=sys.stderr)
        return 2
    stop = threading.Event()

    def wait_for_eof() -> None:
        while sys.stdin.buffer.read(4096):
            pass
        stop.set()

    threading.Thread(target=wait_for_eof, daemon=True).start()
    status = Path(args.status)
    manager.start()
    write_status(status, manager.status(-1))
    while not stop.wait(STATUS_EVERY_S):
        write_status(status, manager.status(-1))
    manager.drain_to_end(args.drain)
    manager.stop()
    write_status(status, manager.status(-1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
