"""Audit log benchmark: durable appends (1 and 8 writers), verify of a large log, index rebuild.

    .venv/bin/python bench/audit_bench.py [--events 1000000] [--keep DIR]

Prints one line per figure, then all figures as JSON on the last line. Verify runs in a fresh
process so its peak RSS (and that of its worker processes) is measured on its own.
Targets: verify >= 300,000 events/s, peak RSS < 100 MB, >= 20,000 durable appends/s with 8
writers. Each durable figure is printed beside an in-run baseline: the same number of threads
appending a line of the same size and fdatasyncing it, nothing else (the disk's ceiling for
writers that each wait for their own event), with events per fsync and CPU per append.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from talon_tui.engine.audit.log import ZERO_HASH, AuditIndex, AuditLog, encode_event
from talon_tui.engine.core import keys

VERIFY_CHILD = r"""
import json, resource, sys, time
from pathlib import Path
from talon_tui.engine.core import keys
from talon_tui.engine.audit.verify import verify_log
root = Path(sys.argv[1])
pub = keys.load_public(root / "keys", "audit")
t = time.perf_counter()
report = verify_log(root / "audit", pub)
elapsed = time.perf_counter() - t
me, ch = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
own, kids = me.ru_maxrss, ch.ru_maxrss
cpu = me.ru_utime + me.ru_stime + ch.ru_utime + ch.ru_stime
print(json.dumps({"valid": report.valid, "events": report.events, "seconds": elapsed,
                  "rss_self_kb": own, "rss_children_kb": kids, "cpu_seconds": cpu}))
"""


def event_data(i: int) -> dict:
    return {
        "intent_id": f"int_{i:016x}",
        "tool": "file.read",
        "status": "ok",
        "code": None,
        "message": "",
        "output": {"path": f"work/file{i % 97}.txt", "content": "lorem ipsum " * 4, "bytes": 48},
        "output_sha256": "sha256:" + "ab" * 32,
        "bytes": 48,
        "truncated": False,
        "redacted": False,
        "duration_ms": 3,
    }


def disk_ceiling(root: Path, writers: int, per_writer: int) -> float:
    """The in-run baseline: `writers` threads that each append a line of an event's size to
    one O_APPEND file and fdatasync it, with nothing else (no encoding, no chain, no lock of
    ours; the kernel shares journal commits between concurrent fdatasyncs). Lines per second:
    what this disk, at this load, allows that many writers who each wait for their own line."""
    line = encode_event(
        {
            "seq": 0,
            "event_id": "evt_0000000000000000",
            "ts": "2026-01-01T00:00:00.000000Z",
            "session_id": "sess_bench",
            "run_id": "run_0",
            "type": "tool.executed",
            "data": event_data(0),
            "prev_hash": ZERO_HASH,
        }
    )[0]
    path = root / f"disk-w{writers}.jsonl"
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    start = threading.Barrier(writers + 1)

    def work() -> None:
        start.wait()
        for _ in range(per_writer):
            os.write(fd, line)
            os.fdatasync(fd)

    threads = [threading.Thread(target=work) for _ in range(writers)]
    for t in threads:
        t.start()
    start.wait()
    t0 = time.perf_counter()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - t0
    os.close(fd)
    path.unlink()
    return writers * per_writer / elapsed


def durable_appends(root: Path, writers: int, per_writer: int) -> tuple[float, float, float]:
    """(durable appends per second, events made durable per fsync, process CPU microseconds
    per durable append: user + system, every thread)."""
    priv, _ = keys.load_or_create(root / "keys", "audit")
    audit_dir = root / f"audit-w{writers}"
    log = AuditLog(audit_dir, priv).open()
    start = threading.Barrier(writers + 1)

    def work(n: int) -> None:
        start.wait()
        for i in range(per_writer):
            log.append_durable(
                "tool.executed", session_id="sess_bench", run_id=f"run_{n}", data=event_data(i)
            )

    threads = [threading.Thread(target=work, args=(n,)) for n in range(writers)]
    for t in threads:
        t.start()
    start.wait()
    t0, cpu0 = time.perf_counter(), time.process_time()
    for t in threads:
        t.join()
    elapsed, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    per_fsync = log.fsynced_events / max(1, log.fsyncs)
    log.close()
    shutil.rmtree(audit_dir)
    events = writers * per_writer
    return events / elapsed, per_fsync, cpu / events * 1e6


def run_events(run: int) -> list[tuple[str, dict]]:
    """The events one allowed file.read run writes, as the engine records them."""
    iid = f"int_{run:016x}"
    params = {"path": f"work/file{run % 97}.txt"}
    return [
        ("run.started", {"subject": "agent-1", "content": "summarise the file", "one_shot": False}),
        (
            "policy.intent.received",
            {
                "intent_id": iid,
                "subject": "agent-1",
                "tool": "file.read",
                "params": params,
                "origin": "agent",
                "intent_hash": "sha256:" + "cd" * 32,
            },
        ),
        (
            "policy.decision",
            {
                "intent_id": iid,
                "tool": "file.read",
                "decision": "ALLOW",
                "reason": "override #0 allows file.read under work",
                "by": "policy",
                "override_index": 0,
                "suggested_fix": None,
                "code": None,
            },
        ),
        (
            "capability.issued",
            {
                "intent_id": iid,
                "jti": f"jti_{run:016x}",
                "token_sha256": "sha256:" + "ef" * 32,
                "tool": "file.read",
                "exp": 1_790_000_000 + run,
                "ttl_seconds": 60,
            },
        ),
        ("tool.executed", event_data(run)),
        ("run.finished", {"status": "ok", "steps": 1}),
    ]


def build_log(root: Path, events: int) -> float:
    """A log of `events` events: file.read runs of 6 events each, checkpoints every 1000."""
    priv, _ = keys.load_or_create(root / "keys", "audit")
    log = AuditLog(root / "audit", priv, checkpoint_every=1000).open()
    t0 = time.perf_counter()
    run = 0
    while log.next_seq < events - 1:  # leave room for the final checkpoint
        run_id, session_id = f"run_{run:012x}", f"sess_{run % 50:04d}"
        for etype, data in run_events(run):
            if log.next_seq >= events - 1:
                break
            log.append(etype, session_id=session_id, run_id=run_id, data=data)
        run += 1
    log.close()
    return time.perf_counter() - t0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=1_000_000, help="events in the verify log")
    ap.add_argument("--durable", type=int, default=4000, help="durable appends per scenario")
    ap.add_argument("--keep", help="build the log in DIR and leave it there")
    args = ap.parse_args()
    root = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="talon-bench-"))
    root.mkdir(parents=True, exist_ok=True)
    figures: dict[str, float | int | bool] = {"load_avg_1m_at_start": round(os.getloadavg()[0], 2)}
    try:
        # each figure beside the in-run baseline taken just before it: the disk's own rate for
        # as many writers that each wait for their own line (the ceiling for that many)
        for writers, per in ((1, args.durable // 4), (8, args.durable // 8)):
            disk = disk_ceiling(root, writers, per)
            rate, per_fsync, cpu_us = durable_appends(root, writers, per)
            name = f"{writers}_writer{'s' if writers > 1 else ''}"
            figures[f"disk_ceiling_per_s_{name}"] = round(disk)
            figures[f"durable_appends_per_s_{name}"] = round(rate)
            figures[f"events_per_fsync_{name}"] = round(per_fsync, 2)
            figures[f"cpu_us_per_durable_append_{name}"] = round(cpu_us, 1)
            print(
                f"durable appends/s, {writers} writer{'s' if writers > 1 else ' '}:"
                f"{round(rate):>9} ({per_fsync:.1f} events per fsync, {cpu_us:.0f} us CPU"
                f" each); baseline, the disk alone: {round(disk)} lines/s"
                f" ({rate / disk:.0%})"
            )
        figures["load_avg_1m_after_durable"] = round(os.getloadavg()[0], 2)
        print(
            f"load average (1 min): {figures['load_avg_1m_at_start']} at start,"
            f" {figures['load_avg_1m_after_durable']} after the durable runs"
        )

        if (root / "audit" / "audit.jsonl").exists():
            shutil.rmtree(root / "audit")
        build = build_log(root, args.events)
        size = (root / "audit" / "audit.jsonl").stat().st_size
        figures["log_build_seconds"] = round(build, 2)
        figures["log_bytes"] = size
        print(f"built {args.events} events ({size / 1e6:.0f} MB) in {build:.1f} s")

        child = subprocess.run(
            [sys.executable, "-c", VERIFY_CHILD, str(root)],
            capture_output=True,
            text=True,
            check=True,
            cwd=Path(__file__).resolve().parent.parent,
        )
        v = json.loads(child.stdout.strip().splitlines()[-1])
        figures["verify_valid"] = v["valid"]
        figures["verify_events"] = v["events"]
        figures["verify_seconds"] = round(v["seconds"], 2)
        figures["verify_events_per_s"] = round(v["events"] / v["seconds"])
        figures["verify_cpu_seconds"] = round(v["cpu_seconds"], 2)
        figures["verify_events_per_cpu_s"] = round(v["events"] / v["cpu_seconds"])
        figures["verify_peak_rss_mb"] = round(max(v["rss_self_kb"], v["rss_children_kb"]) / 1024, 1)
        figures["verify_rss_parent_mb"] = round(v["rss_self_kb"] / 1024, 1)
        figures["verify_rss_worker_max_mb"] = round(v["rss_children_kb"] / 1024, 1)
        print(
            f"verify: {v['events']} events in {v['seconds']:.2f} s = "
            f"{figures['verify_events_per_s']} events/s, valid={v['valid']}, peak RSS "
            f"{figures['verify_peak_rss_mb']} MB (parent {figures['verify_rss_parent_mb']}, "
            f"worker {figures['verify_rss_worker_max_mb']}); "
            f"{figures['verify_events_per_cpu_s']} events per CPU-second"
        )

        (root / "audit" / "index.bin").unlink(missing_ok=True)
        t0 = time.perf_counter()
        idx = AuditIndex.load(root / "audit")
        figures["index_rebuild_seconds"] = round(time.perf_counter() - t0, 2)
        figures["index_runs"] = len(idx.runs)
        print(f"index rebuild: {figures['index_rebuild_seconds']} s ({len(idx.runs)} runs)")
    finally:
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)
    print(json.dumps(figures, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
