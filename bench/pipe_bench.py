"""Pipe benchmark (issue 4): allowed file.read intents through a real `talon serve`.

Measures intents/s and p50/p99 latency for 1 agent (sequential) and 8 agents (one process
each), with fsync-before-ack on, and a plain asyncio JSON-lines echo server in the same run
as the baseline (the cost of the IPC alone). Then profiles the server for a sequential run
and prints where the time goes.

    .venv/bin/python bench/pipe_bench.py [--n 2000] [--agents 8] [--no-profile]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import os
import pstats
import socket
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from _common import make_session, start_serve, stop_serve

INTENT = {"op": "intent", "tool": "file.read", "params": {"path": "work/a.txt"}}


# --------------------------------------------------------------------------- servers


def echo_server(path: str, ready: mp.Event) -> None:
    async def handle(reader, writer):
        while line := await reader.readline():
            frame = json.loads(line)
            reply = {"id": frame.get("id"), "ok": True}
            writer.write(json.dumps(reply, separators=(",", ":")).encode() + b"\n")
            await writer.drain()
        writer.close()

    async def main():
        server = await asyncio.start_unix_server(handle, path=path)
        ready.set()
        async with server:
            await server.serve_forever()

    asyncio.run(main())


# --------------------------------------------------------------------------- clients


def agent(path: str, key: str | None, n: int, start: mp.Event, out: mp.Queue) -> None:
    """One blocking client: hello (if a key), then n round trips; reports latencies."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.connect(path)
    f = sock.makefile("rb")
    if key is not None:
        sock.sendall(
            json.dumps({"id": 0, "op": "hello", "auth": {"agent_key": key}}).encode() + b"\n"
        )
        assert json.loads(f.readline())["ok"]
    frames = [json.dumps({"id": i, **INTENT}).encode() + b"\n" for i in range(1, n + 1)]
    start.wait()
    lat = []
    errors = 0
    for frame in frames:
        t0 = time.perf_counter()
        sock.sendall(frame)
        reply = f.readline()
        lat.append(time.perf_counter() - t0)
        if b'"ok":true' not in reply:
            errors += 1
    sock.close()
    out.put((lat, errors))


def measure(path: str, keys: list[str | None], n: int) -> dict:
    start = mp.Event()
    out: mp.Queue = mp.Queue()
    procs = [mp.Process(target=agent, args=(path, k, n, start, out)) for k in keys]
    for p in procs:
        p.start()
    time.sleep(0.5)  # let every client connect and say hello before the clock starts
    t0 = time.perf_counter()
    start.set()
    results = [out.get() for _ in procs]
    elapsed = time.perf_counter() - t0
    for p in procs:
        p.join()
    lat = sorted(x for r in results for x in r[0])
    return {
        "clients": len(keys),
        "requests": len(lat),
        "errors": sum(r[1] for r in results),
        "per_s": round(len(lat) / elapsed),
        "p50_ms": round(statistics.median(lat) * 1000, 3),
        "p99_ms": round(lat[int(len(lat) * 0.99) - 1] * 1000, 3),
    }


def server_cpu(proc: subprocess.Popen) -> float:
    """CPU seconds (user + system, all threads) the server has used so far (Linux /proc)."""
    try:
        fields = Path(f"/proc/{proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return float("nan")
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def timed(proc: subprocess.Popen, path: str, keys: list[str | None], n: int) -> dict:
    """`measure`, plus the server's CPU per intent: unlike wall time it barely moves with
    what else the machine is running, so it compares runs on a shared machine."""
    before = server_cpu(proc)
    row = measure(path, keys, n)
    row["cpu_us"] = round((server_cpu(proc) - before) / row["requests"] * 1e6)
    return row


def load_average() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "?"


# --------------------------------------------------------------------------- profile

AREAS = [
    ("checkpoint fsync + HEAD on the loop (every 1000 events)", ("fdatasync", "fsync")),
    ("audit append (canonical check, encode, hash, write)", ("audit.py", "canon.py")),
    ("capability tokens (issue + verify)", ("tokens.py", "jwt", "ed25519")),
    ("policy evaluate", ("policy.py", "checks.py")),
    ("broker file.read (openat walk)", ("broker/files.py", "broker.py")),
    ("pipe framing + JSON", ("pipe.py", "json/", "ops.py", "orjson")),
    ("pydantic models", ("pydantic",)),
    ("event loop + thread hops", ("asyncio", "selectors", "threading", "queue")),
]


def summarize_profile(path: Path, top: int = 15) -> None:
    stats = pstats.Stats(str(path))
    total = stats.total_tt  # type: ignore[attr-defined]
    rows = []
    for (file, line, func), (_cc, nc, tt, _ct, _callers) in stats.stats.items():  # type: ignore[attr-defined]
        rows.append((tt, nc, f"{Path(file).name}:{line}({func})", f"{file} {func}"))
    rows.sort(reverse=True)
    print(f"\nserver profile (tottime, one sequential agent; total {total:.2f} s incl. idle wait)")
    for tt, nc, name, _ in rows[:top]:
        print(f"  {tt * 1000:9.1f} ms  {nc:8d} calls  {name}")
    print("by area (tottime, excluding the loop's idle epoll wait):")
    busy = sum(tt for tt, _n, name, _ in rows if "poll" not in name)
    for label, needles in AREAS:
        t = sum(
            tt
            for tt, _n, name, key in rows
            if "poll" not in name and any(x in key for x in needles)
        )
        print(f"  {label:<55} {t * 1000:9.1f} ms  {100 * t / busy:5.1f}%")


# --------------------------------------------------------------------------- main


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=2000, help="intents per agent")
    ap.add_argument("--agents", type=int, default=8)
    ap.add_argument("--no-profile", action="store_true")
    ap.add_argument(
        "--export",
        action="append",
        default=[],
        metavar="KIND=TARGET",
        help="run talon serve with this --export (repeatable; bench/export_bench.py compares)",
    )
    args = ap.parse_args()
    extra = [x for spec in args.export for x in ("--export", spec)]
    mp.set_start_method("fork")
    with tempfile.TemporaryDirectory(prefix="talon-bench-") as tmp:
        root = Path(tmp)
        ws = root / "ws"
        (ws / "work").mkdir(parents=True)
        (ws / "work" / "a.txt").write_text("hello benchmark\n" * 4)

        echo_path = str(root / "echo.sock")
        ready = mp.Event()
        echo = mp.Process(target=echo_server, args=(echo_path, ready), daemon=True)
        echo.start()
        ready.wait(10)
        rows = [
            ("echo baseline, 1 client", measure(echo_path, [None], args.n)),
            (
                f"echo baseline, {args.agents} clients",
                measure(echo_path, [None] * args.agents, args.n),
            ),
        ]
        echo.terminate()

        data = root / "data"
        serve = start_serve(data, extra_args=extra)
        try:
            keys = [make_session(data, ws) for _ in range(args.agents)]
            sock = str(data / "run" / "agent.sock")
            measure(sock, keys[:1], 200)  # warm up
            load_before = load_average()
            rows.append(("talon file.read, 1 agent", timed(serve, sock, keys[:1], args.n)))
            rows.append(
                (f"talon file.read, {args.agents} agents", timed(serve, sock, keys, args.n))
            )
            load_after = load_average()
        finally:
            stop_serve(serve)

        print(f"pipe benchmark: fsync before ack on; {os.cpu_count()} cores; n={args.n} per client")
        print(f"load average (1/5/15 min) before the talon runs {load_before}, after {load_after}")
        print(f"{'':<34}{'req/s':>9}{'p50 ms':>9}{'p99 ms':>9}{'errors':>8}{'srv CPU us':>12}")
        for label, r in rows:
            cpu = r.get("cpu_us", "")
            print(
                f"{label:<34}{r['per_s']:>9}{r['p50_ms']:>9}{r['p99_ms']:>9}{r['errors']:>8}"
                f"{cpu:>12}"
            )
        print("srv CPU us: server CPU (all threads, user + system) per intent")
        print("targets: p50 <= 1 ms sequential, p99 <= 5 ms, >= 2,000 intents/s with 8 agents")

        if not args.no_profile:
            pdata = root / "pdata"
            prof = root / "serve.prof"
            serve = start_serve(pdata, profile_to=prof, extra_args=extra)
            try:
                key = make_session(pdata, ws)
                measure(str(pdata / "run" / "agent.sock"), [key], args.n)
            finally:
                stop_serve(serve)
            summarize_profile(prof)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
