"""Where the CPU of one intent goes, stage by stage, with no profiler in the way.

A profiler charges its own cost to every Python call, so a stage made of many small calls
(the audit encode, the run projection) looks several times heavier than it is. Here each
stage of one allowed `file.read` (the intent of bench/pipe_bench.py) is timed on its own, in
process, on the engine's own objects (thread CPU time, many repetitions), then the whole
`Engine.submit` (loop thread and all threads), so the stages' sum can be checked against it.
The pipe's share (framing, socket, the connection's task) is what pipe_bench.py's server CPU
per intent adds on top of `submit`.

    .venv/bin/python bench/intent_cost_bench.py [--n 3000]
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import os
import pstats
import queue
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from _common import READ_POLICY, bench_workspace

from talon_tui.engine.audit.runs import recordable_hashed
from talon_tui.engine.core.canon import jsonable
from talon_tui.engine.engine import Engine
from talon_tui.engine.policy import evaluate as policy_engine
from talon_tui.engine.policy.models import ToolIntent
from talon_tui.engine.runtime.intents import canonical_intent_hash

PARAMS = {"path": "work/a.txt"}


def thread_cpu_of(native_id: int) -> float:
    fields = Path(f"/proc/self/task/{native_id}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def per_call(fn: Callable[[], Any], n: int, repeat: int = 3) -> float:
    """Median over `repeat` batches of the loop thread's CPU per call, in us."""
    runs = []
    for _ in range(repeat):
        t = time.thread_time()
        for _ in range(n):
            fn()
        runs.append((time.thread_time() - t) / n * 1e6)
    return statistics.median(runs)


async def aper_call(fn: Callable[[], Awaitable[Any]], n: int, repeat: int = 3) -> float:
    runs = []
    for _ in range(repeat):
        t = time.thread_time()
        for _ in range(n):
            await fn()
        runs.append((time.thread_time() - t) / n * 1e6)
    return statistics.median(runs)


async def main(n: int) -> None:
    with tempfile.TemporaryDirectory(prefix="talon-cost-") as tmp:
        ws = bench_workspace(Path(tmp))
        async with Engine(Path(tmp) / "data") as eng:
            session, _key = await eng.create_session("bench", str(ws), READ_POLICY)
            sid, subject = session.id, "agent:bench"

            def intent() -> ToolIntent:
                return ToolIntent(tool="file.read", params=dict(PARAMS), origin="agent")

            async def submit() -> Any:
                return await eng.submit(sid, subject, intent(), None)

            for _ in range(300):
                await submit()
            # the audit events one intent writes (captured from a real one)
            batches: list[list[Any]] = []
            real_append = eng.audit.append_many

            def capture(specs: Any) -> Any:
                specs = list(specs)
                batches.append(specs)
                return real_append(specs)

            eng.audit.append_many = capture  # type: ignore[method-assign]
            await submit()
            eng.audit.append_many = real_append  # type: ignore[method-assign]
            events = [spec for batch in batches for spec in batch]

            one = intent()
            workspace = session.workspace
            decision = policy_engine.evaluate(one, eng.store.policy(sid), workspace=workspace)
            ih = canonical_intent_hash(one.tool, one.params)

            def issue() -> Any:
                return eng.store.issuer.issue(
                    session_id=sid,
                    subject=subject,
                    tool=one.tool,
                    constraints=decision.constraints,
                    intent_hash=ih,
                    ttl_seconds=decision.ttl_seconds,
                )

            async def issue_execute() -> Any:
                return await eng.store.execute(one, issue().token, session, subject, None)

            raw = await issue_execute()

            def record_output() -> Any:
                result, _ = eng.store.redactor(jsonable(raw))
                return recordable_hashed(result, eng.max_output_bytes)

            def judge() -> Any:
                eng.store.redactor(one.params)
                d = policy_engine.evaluate(one, eng.store.policy(sid), workspace=workspace)
                eng.store.redactor(d.reason)
                return d

            async def fsync_round() -> None:
                eng._record("engine.started", {"bench": 1})
                await eng.durable()

            # warm every stage once
            await issue_execute()
            await fsync_round()
            stages: list[tuple[str, float]] = [
                ("request model (ToolIntent)", per_call(intent, n)),
                ("intent hash (canonical {tool, params})", per_call(lambda: ih_of(one), n)),
                ("policy evaluate + redaction of params and reason", per_call(judge, n)),
                ("token issue (in-process MAC)", per_call(issue, n)),
            ]
            both = await aper_call(issue_execute, n)
            stages.append(("broker: token verify + file.read (openat walk)", both - stages[-1][1]))
            stages.append(
                ("output: jsonable, redaction, canonical size + hash", per_call(record_output, n))
            )
            stages.append(
                (
                    f"audit append of the intent's {len(events)} events (+ run projection)",
                    per_call(lambda: real_append(events), n),
                )
            )
            flusher = eng._commit._thread
            assert flusher is not None and flusher.native_id is not None
            f0 = thread_cpu_of(flusher.native_id)
            loop_round = await aper_call(fsync_round, n // 3, repeat=1)
            flusher_round = (thread_cpu_of(flusher.native_id) - f0) / (n // 3) * 1e6
            stages.append(("fsync round, loop side (one event, group commit wake)", loop_round))

            t, p = time.thread_time(), time.process_time()
            for _ in range(n):
                await submit()
            loop_total = (time.thread_time() - t) / n * 1e6
            all_total = (time.process_time() - p) / n * 1e6
            # the same stages as shares of a profile of the whole flow (C calls charged to
            # their Python callers): what they cost inside the flow, caches and all
            profiler = cProfile.Profile(time.thread_time, builtins=False)
            profiler.enable()
            for _ in range(n):
                await submit()
            profiler.disable()
    shares = profile_shares(pstats.Stats(profiler))
    hop = await bare_hop(n)
    print(f"one allowed file.read, in process (no pipe), n={n}; load average {load()}")
    print(
        f"Engine.submit: loop thread {loop_total:.0f} us, all threads {all_total:.0f} us per intent"
    )
    print(
        "loop thread by stage: A = the stage timed on its own (warm caches), B = its share of "
        "a profile of the whole flow applied to the loop thread's CPU (the profiler's cost per "
        "Python call inflates call-heavy stages): the truth lies between"
    )
    print(f"  {'':<62} {'A us':>7} {'A %':>6} {'B us':>7} {'B %':>6}")
    total_a = total_b = 0.0
    for (label, us), key in zip(stages, STAGE_KEYS, strict=True):
        b = shares.get(key, 0.0)
        total_a += us
        total_b += b
        print(
            f"  {label:<62} {us:7.1f} {100 * us / loop_total:5.1f}% "
            f"{b * loop_total:7.1f} {100 * b:5.1f}%"
        )
    rest_a, rest_b = loop_total - total_a, 1.0 - total_b
    print(
        f"  {'the rest: flow bookkeeping, awaits, ids, cache misses':<62} {rest_a:7.1f} "
        f"{100 * rest_a / loop_total:5.1f}% {rest_b * loop_total:7.1f} {100 * rest_b:5.1f}%"
    )
    print(
        f"flusher thread per fsync round (fdatasync, in the kernel mostly): {flusher_round:.0f} us"
    )
    print(
        f"in-run baseline: a bare thread hop (SimpleQueue put, call_soon_threadsafe back) costs "
        f"the loop {hop:.1f} us"
    )


async def bare_hop(n: int) -> float:
    """Loop CPU of one round trip to a thread and back with nothing done there: what the
    machine's load does to the cheapest wake-up, to read the figures above against."""
    loop = asyncio.get_running_loop()
    requests: queue.SimpleQueue[asyncio.Future[None] | None] = queue.SimpleQueue()

    def worker() -> None:
        while (fut := requests.get()) is not None:
            loop.call_soon_threadsafe(fut.set_result, None)

    thread = threading.Thread(target=worker, daemon=True)
    thread.start()

    async def hop() -> None:
        fut = loop.create_future()
        requests.put(fut)
        await fut

    try:
        return await aper_call(hop, n)
    finally:
        requests.put(None)
        thread.join()


#: per stage, the functions whose cumulative profiled time is that stage in the flow
STAGE_KEYS = [
    "request",
    "hash",
    "judge",
    "issue",
    "broker",
    "output",
    "audit",
    "fsync",
]
STAGE_FUNCS = {
    "request": [("intent_cost_bench.py", "intent")],
    "hash": [("runtime/intents.py", "canonical_intent_hash")],
    "judge": [("policy/evaluate.py", "evaluate")],
    "issue": [("runtime/tokens.py", "issue")],
    "broker": [("broker/broker.py", "execute")],
    "output": [("audit/runs.py", "recordable_hashed"), ("core/canon.py", "jsonable")],
    "audit": [("audit/log.py", "append_many")],
    "fsync": [
        ("runtime/store.py", "wait"),
        ("runtime/store.py", "_synced"),
        ("selector_events.py", "_read_from_self"),
        ("selectors.py", "select"),
    ],
}


def profile_shares(stats: pstats.Stats) -> dict[str, float]:
    """Each stage's cumulative time (outermost calls only: a stage's function called from
    inside another of its functions is not counted twice) over the profile's total."""
    raw = stats.stats  # type: ignore[attr-defined]
    total = sum(tt for (_cc, _nc, tt, _ct, _callers) in raw.values()) or 1.0
    out: dict[str, float] = {}
    for stage, funcs in STAGE_FUNCS.items():
        keys = {
            fn
            for fn in raw
            if any(fn[0].endswith(path) and (not name or fn[2] == name) for path, name in funcs)
        }
        spent = 0.0
        for fn in keys:
            _cc, _nc, _tt, _ct, callers = raw[fn]
            # time reached from callers outside the stage (cumulative per caller edge)
            spent += sum(edge[3] for caller, edge in callers.items() if caller not in keys)
        out[stage] = spent / total
    return out


def ih_of(intent: ToolIntent) -> str:
    return canonical_intent_hash(intent.tool, intent.params)


def load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=3000)
    asyncio.run(main(ap.parse_args().n))
    sys.exit(0)
