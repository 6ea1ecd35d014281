"""Export benchmark (issue 14).

1. Throughput: a log of real events (file.read intents through `talon serve`), then each
   exporter kind follows it from seq 0 to its end: OTLP/HTTP to a collector on 127.0.0.1
   that decodes the protobuf, syslog over TCP (CEF), a second JSONL file. Prints events/s.
2. Intent latency with export on and off: the pipe bench's sequential agent against a `talon
   serve` without exports and one with all three (OTLP, syslog, JSONL), alternated, so that
   the exporters' reading the log in their own threads shows up as added latency if any.

The collector and the syslog receiver stand in for systems on other machines. They run in a
process of their own; by default at idle priority (SCHED_IDLE), so that on this one-box bench
their protobuf decoding does not take the engine's core and read as Talon's latency.
`--receivers normal` runs them at normal priority (a collector sharing the engine's machine).

    .venv/bin/python bench/export_bench.py [--n 2000] [--rounds 2] [--receivers idle|normal]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))  # the real receivers the tests use

import pipe_bench  # noqa: E402
from support.receivers import OtlpReceiver, SyslogTcp  # noqa: E402

from talon_tui.engine.export import ExportManager, parse_spec  # noqa: E402


def throughput(log: Path, spec_text: str, cursor_dir: Path) -> float:
    lines = log.read_bytes().count(b"\n")
    manager = ExportManager([parse_spec(spec_text)], log, cursor_dir)
    t0 = time.perf_counter()
    manager.start()
    manager.drain(lines - 1, timeout=300)
    dt = time.perf_counter() - t0
    row = manager.status(lines - 1)[0]
    manager.stop()
    if row["lag"]:
        raise SystemExit(f"{spec_text}: not caught up: {row}")
    return lines / dt


def receivers(priority: str, ready: mp.Queue, stop: mp.Event) -> None:
    """The OTLP collector and the TCP syslog receiver, in this process until `stop`."""
    if priority == "idle":  # set before the receivers' threads start: they inherit it
        os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
    collector = OtlpReceiver("127.0.0.1").start()
    syslog = SyslogTcp("127.0.0.1")
    ready.put((collector.base, syslog.port))
    stop.wait()
    collector.stop()
    syslog.close()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=2000, help="intents per latency run")
    ap.add_argument("--rounds", type=int, default=2, help="off/on pairs for latency")
    ap.add_argument(
        "--receivers",
        choices=("idle", "normal"),
        default="idle",
        help="the receivers' process priority (default idle: they stand in for other machines)",
    )
    args = ap.parse_args()
    ready: mp.Queue = mp.Queue()
    stop = mp.Event()
    rx = mp.Process(target=receivers, args=(args.receivers, ready, stop), daemon=True)
    rx.start()
    collector_base, syslog_port = ready.get(timeout=30)
    results: dict = {
        "throughput_events_per_s": {},
        "latency": [],
        "receivers_priority": args.receivers,
    }
    with tempfile.TemporaryDirectory(prefix="talon-export-bench-") as tmp:
        root = Path(tmp)
        ws = root / "ws"
        (ws / "work").mkdir(parents=True)
        (ws / "work" / "a.txt").write_text("hello benchmark\n" * 4)
        export_args = [
            "--export",
            f"otlp={collector_base}",
            "--export",
            f"syslog=127.0.0.1:{syslog_port}/tcp,format=cef",
            "--export",
            f"jsonl={root}/copy.jsonl",
        ]

        for round_ in range(args.rounds):
            for label, extra in (("export off", []), ("export on", export_args)):
                data = root / f"data-{round_}-{label.split()[1]}"
                serve = pipe_bench.start_serve(data, extra_args=extra)
                try:
                    key = pipe_bench.make_session(data, ws)
                    sock = str(data / "run" / "agent.sock")
                    pipe_bench.measure(sock, [key], 200)  # warm up
                    r = pipe_bench.timed(serve, sock, [key], args.n)
                finally:
                    pipe_bench.stop_serve(serve)
                results["latency"].append({"run": label, **r})
                log = data / "audit" / "audit.jsonl"

        events = log.read_bytes().count(b"\n")
        for kind, spec in (
            ("otlp", f"otlp={collector_base}"),
            ("syslog-tcp-cef", f"syslog=127.0.0.1:{syslog_port}/tcp,format=cef"),
            ("jsonl", f"jsonl={root}/bench-copy.jsonl"),
        ):
            rate = throughput(log, spec, root / f"cursors-{kind}")
            results["throughput_events_per_s"][kind] = round(rate)

    stop.set()
    rx.join(10)
    print(
        f"export benchmark: {events} events in the log; 1 sequential agent, n={args.n}; "
        f"receivers in their own process at {args.receivers} priority"
    )
    print(f"{'':<14}{'req/s':>9}{'p50 ms':>9}{'p99 ms':>9}{'srv CPU us':>12}")
    for r in results["latency"]:
        print(f"{r['run']:<14}{r['per_s']:>9}{r['p50_ms']:>9}{r['p99_ms']:>9}{r['cpu_us']:>12}")
    for label in ("export off", "export on"):
        p50s = [r["p50_ms"] for r in results["latency"] if r["run"] == label]
        results[f"median_p50_ms_{label.replace(' ', '_')}"] = statistics.median(p50s)
    print("exporter throughput (events/s, following the log from seq 0 to its end):")
    for kind, rate in results["throughput_events_per_s"].items():
        print(f"  {kind:<16}{rate:>9}")
    print(json.dumps(results, sort_keys=True))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
