"""Pipe benchmark (issues 4 and 13): allowed file.read intents through a real `talon serve`.

Measures intents/s and p50/p99 latency for 1 agent (sequential) and 8 agents (one process
each), with fsync-before-ack on, and a plain asyncio JSON-lines echo server in the same run
as the baseline (the cost of the IPC alone). Then profiles the server's event loop thread
(CPU time, the measured window only) for a sequential run and prints the server CPU per
intent by area, beside the CPU of its other threads.

    .venv/bin/python bench/pipe_bench.py [--n 2000] [--agents 8] [--no-profile] [--save-profile P]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import os
import pstats
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import bench_workspace, make_session, start_serve, stop_serve

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


def start_echo(root: Path) -> tuple[str, mp.Process]:
    """The asyncio echo baseline's server on `root/echo.sock`, in its own process: (path,
    process); terminate the process when done."""
    path = str(root / "echo.sock")
    ready = mp.Event()
    echo = mp.Process(target=echo_server, args=(path, ready), daemon=True)
    echo.start()
    ready.wait(10)
    return path, echo


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

#: where the event loop thread's CPU goes, first match wins: (label, needles matched against
#: "<file> <function>" of each profiled function; builtins have file "~")
AREAS = [
    (
        "capability tokens (issue + verify)",
        ("runtime/tokens.py", "/jwt/", "ed25519", "hmac", "uuid"),
    ),
    ("policy evaluate", ("policy/evaluate.py", "policy/checks.py", "/re/", "_sre")),
    ("pydantic models", ("pydantic", "policy/models.py")),
    (
        "audit encode (check, canonical bytes, hash, write, listeners)",
        (
            "audit/",
            "core/canon.py",
            "core/clock.py",
            "core/ids.py",
            "runtime/bus.py",
            "openssl_sha256",
            "hexdigest",
            "orjson.dumps",
            "posix.write",
        ),
    ),
    ("fsync wait on the loop (checkpoints, group commit)", ("fsync", "fdatasync", "store.py:4")),
    (
        "broker file.read (openat walk, read)",
        ("broker/", "posix.open", "posix.read", "posix.close", "fstat"),
    ),
    (
        "pipe framing + JSON + socket I/O",
        (
            "pipe/server.py",
            "core/frames.py",
            "orjson",
            "json/",
            "streams.py",
            "socket",
            "selector_events",
        ),
    ),
    (
        "intent flow (runtime, engine, ops)",
        ("runtime/", "engine.py", "store.py", "pipe/ops.py", "errors.py"),
    ),
    (
        "event loop + thread hops",
        ("asyncio", "selectors", "threading", "queue", "_contextvars", "SimpleQueue"),
    ),
]


def serve_profiled(out: str, argv: list[str]) -> None:
    """Run `talon serve` (argv) with a CPU-time profiler of its event loop thread that starts
    on SIGUSR1 and is written to `out` on SIGUSR2: only the measured window is profiled, not
    start-up (imports), and waits off the CPU (epoll, GIL, preemption) do not count."""
    import cProfile

    profiler = cProfile.Profile(time.thread_time)

    def start(_sig: int, _frame: object) -> None:
        profiler.enable()

    def stop(_sig: int, _frame: object) -> None:
        profiler.disable()
        profiler.dump_stats(out)

    signal.signal(signal.SIGUSR1, start)
    signal.signal(signal.SIGUSR2, stop)
    from talon_tui.cli.main import main as cli_main

    raise SystemExit(cli_main(argv))


def thread_cpu(pid: int) -> dict[int, float]:
    """CPU seconds (user + system) of each thread of `pid` (Linux /proc)."""
    out = {}
    tick = os.sysconf("SC_CLK_TCK")
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        out[int(task.name)] = (int(fields[11]) + int(fields[12])) / tick
    return out


def profile_run(ws: Path, root: Path, n: int, extra: list[str], save: Path | None = None) -> None:
    """One sequential agent against a `talon serve` that can profile itself: first unprofiled,
    for the server CPU per intent split into the event loop thread and the other threads (the
    fsync flusher, the checkpoint timer); then profiled, for how the loop thread's share
    divides into areas."""
    pdata = root / "pdata"
    prof = root / "serve.prof"
    cmd = [sys.executable, str(Path(__file__).resolve()), "--serve-profiled", str(prof)]
    serve = start_serve(pdata, extra_args=extra, launcher=cmd)
    try:
        key = make_session(pdata, ws)
        sock = str(pdata / "run" / "agent.sock")
        measure(sock, [key], 200)  # warm up
        before = thread_cpu(serve.pid)
        row = measure(sock, [key], n)
        after = thread_cpu(serve.pid)
        serve.send_signal(signal.SIGUSR1)
        time.sleep(0.2)
        profiled = measure(sock, [key], n)
        serve.send_signal(signal.SIGUSR2)
        for _ in range(100):
            if prof.exists():
                break
            time.sleep(0.1)
    finally:
        stop_serve(serve)
    loop_cpu = after.get(serve.pid, 0.0) - before.get(serve.pid, 0.0)
    other_cpu = sum(v - before.get(t, 0.0) for t, v in after.items() if t != serve.pid)
    summarize_profile(prof, row["requests"], profiled["requests"], loop_cpu, other_cpu)
    if save is not None:
        save.write_bytes(prof.read_bytes())
        print(f"profile saved to {save} (pstats; callers with `python -m pstats`)")


def profiler_cost_per_call() -> float:
    """CPU seconds one profiled call costs the profiler itself (two clock reads and its
    bookkeeping), measured here on an empty function: subtracted per call from the profile."""
    import cProfile

    def empty() -> None:
        return None

    rounds = 20_000
    t0 = time.thread_time()
    for _ in range(rounds):
        empty()
    bare = time.thread_time() - t0
    profiler = cProfile.Profile(time.thread_time)
    t0 = time.thread_time()
    profiler.enable()
    for _ in range(rounds):
        empty()
    profiler.disable()
    return max(0.0, (time.thread_time() - t0 - bare) / rounds)


def area_of(key: str) -> str | None:
    for label, needles in AREAS:
        if any(x in key for x in needles):
            return label
    return None


def profile_areas(stats: pstats.Stats, per_call: float = 0.0) -> dict[str, float]:
    """Self CPU time by area, less `per_call` for each call (the profiler's own cost). A
    builtin (`isinstance`, `dict.get`, a C method) that matches no area is charged to the
    areas of its callers, in proportion to the time spent in it from each (so `other` holds
    only what truly has no owner)."""
    raw = stats.stats  # type: ignore[attr-defined]
    keys = {fn: f"{fn[0]}:{fn[1]} {fn[2]}" for fn in raw}
    areas: dict[str, float] = {}

    def charge(fn: tuple, seconds: float, depth: int = 0) -> None:
        label = area_of(keys[fn])
        callers = raw[fn][4]
        if label is None and callers and depth < 8:
            spent = sum(c[2] for c in callers.values()) or 1.0
            for caller, c in callers.items():
                if caller in raw:
                    charge(caller, seconds * c[2] / spent, depth + 1)
            return
        label = label or "other"
        areas[label] = areas.get(label, 0.0) + seconds

    for fn, (_cc, nc, tt, _ct, _callers) in raw.items():
        charge(fn, max(0.0, tt - nc * per_call))
    return areas


def summarize_profile(
    path: Path, requests: int, profiled: int, loop_cpu: float, other_cpu: float
) -> None:
    stats = pstats.Stats(str(path))
    per_call = profiler_cost_per_call()
    areas = profile_areas(stats, per_call)
    total = sum(areas.values())
    loop_us = loop_cpu * 1e6 / requests
    print(
        f"\nserver CPU per intent (one sequential agent, {requests} intents, no profiler): "
        f"{(loop_cpu + other_cpu) * 1e6 / requests:.0f} us = event loop thread {loop_us:.0f} us "
        f"+ other threads (fsync flusher, checkpoint timer) {other_cpu * 1e6 / requests:.0f} us"
    )
    print(
        f"event loop thread by area: shares of a CPU-time profile of {profiled} more intents "
        f"(less the profiler's own {per_call * 1e6:.2f} us per call), applied to its "
        f"{loop_us:.0f} us:"
    )
    for label in [a for a, _ in AREAS] + ["other"]:
        share = areas.get(label, 0.0) / total if total else 0.0
        print(f"  {label:<62} {share * loop_us:7.1f} us  {100 * share:5.1f}%")
    rows = []
    for (file, line, func), (_cc, nc, tt, _ct, _callers) in stats.stats.items():  # type: ignore[attr-defined]
        rows.append((max(0.0, tt - nc * per_call), nc, f"{Path(file).name}:{line}({func})"))
    rows.sort(reverse=True)
    print("top functions (profiled CPU time, self, less the profiler's cost):")
    for tt, nc, name in rows[:12]:
        print(f"  {tt * 1e6 / profiled:7.1f} us  {nc / profiled:6.1f} calls  {name}")


# --------------------------------------------------------------------------- main


def main() -> int:
    if len(sys.argv) > 2 and sys.argv[1] == "--serve-profiled":
        serve_profiled(sys.argv[2], sys.argv[3:])
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=2000, help="intents per agent")
    ap.add_argument("--agents", type=int, default=8)
    ap.add_argument("--no-profile", action="store_true")
    ap.add_argument(
        "--save-profile", type=Path, metavar="PATH", help="keep the loop thread's profile here"
    )
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
        ws = bench_workspace(root)
        echo_path, echo = start_echo(root)
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
        seq, par = rows[2][1], rows[3][1]
        print(
            f"talon / echo baseline: sequential {seq['per_s'] / rows[0][1]['per_s']:.3f}x, "
            f"{args.agents} agents {par['per_s'] / rows[1][1]['per_s']:.3f}x"
        )
        print(
            "targets (issue 13): sequential >= 1,800 intents/s and p50 <= 0.5 ms; "
            f"{args.agents} agents >= 3,000 intents/s aggregate and p99 <= 5 ms"
        )

        if not args.no_profile:
            profile_run(ws, root, args.n, extra, args.save_profile)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
