"""A/B of the intent path: two source trees' `talon serve` side by side, in one run.

Starts one `talon serve` from each tree (same policy, same workspace file), then alternates
short rounds between them (sequential agent, then `--agents` agents), so both see the same
machine load; prints per round and the medians of intents/s, p50/p99 and the server CPU per
intent (all threads), beside the asyncio echo baseline and the load average. Meant for a
change to the hot path on a shared machine, where one run of pipe_bench.py per tree is noise.

    .venv/bin/python bench/pipe_ab.py OLD_TREE NEW_TREE [--rounds 6] [--n 500] [--agents 8]
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import statistics
import tempfile
from pathlib import Path

from _common import bench_workspace, make_session, start_serve, stop_serve
from pipe_bench import load_average, measure, server_cpu, start_echo


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("old", type=Path)
    ap.add_argument("new", type=Path)
    ap.add_argument("--rounds", type=int, default=6)
    ap.add_argument("--n", type=int, default=500, help="intents per agent per round")
    ap.add_argument("--agents", type=int, default=8)
    args = ap.parse_args()
    mp.set_start_method("fork")
    trees = {"old": args.old.resolve(), "new": args.new.resolve()}
    with tempfile.TemporaryDirectory(prefix="talon-ab-") as tmp:
        root = Path(tmp)
        ws = bench_workspace(root)
        echo_path, echo = start_echo(root)
        serves, socks, keys = {}, {}, {}
        try:
            for name, tree in trees.items():
                data = root / f"data-{name}"
                serves[name] = start_serve(data, tree=tree)
                keys[name] = [make_session(data, ws) for _ in range(args.agents)]
                socks[name] = str(data / "run" / "agent.sock")
                measure(socks[name], keys[name][:1], 200)  # warm up
            rows: dict[str, list[dict]] = {}
            for r in range(args.rounds):
                order = ["old", "new"] if r % 2 == 0 else ["new", "old"]
                cells = [("echo", "1", measure(echo_path, [None], args.n))]
                for name in order:
                    for label, ks in (("1", keys[name][:1]), (str(args.agents), keys[name])):
                        before = server_cpu(serves[name])
                        row = measure(socks[name], ks, args.n)
                        row["cpu_us"] = round(
                            (server_cpu(serves[name]) - before) / row["requests"] * 1e6
                        )
                        cells.append((name, label, row))
                print(f"round {r + 1}: load {load_average()}")
                for name, label, row in cells:
                    rows.setdefault(f"{name} x{label}", []).append(row)
                    print(
                        f"  {name:>4} x{label:<3} {row['per_s']:>7}/s  p50 {row['p50_ms']:>7} ms"
                        f"  p99 {row['p99_ms']:>7} ms  cpu {row.get('cpu_us', '-'):>6} us"
                        f"  errors {row['errors']}"
                    )
        finally:
            for proc in serves.values():
                stop_serve(proc)
            echo.terminate()
    print(f"medians over {args.rounds} rounds (old = {trees['old']}, new = {trees['new']}):")
    for key, cells in rows.items():
        med = {
            k: statistics.median(c[k] for c in cells if k in c)
            for k in ("per_s", "p50_ms", "p99_ms", "cpu_us")
            if any(k in c for c in cells)
        }
        print(
            f"  {key:<9} {med['per_s']:>8.0f}/s  p50 {med['p50_ms']:>7.3f} ms"
            f"  p99 {med['p99_ms']:>7.3f} ms  cpu {med.get('cpu_us', float('nan')):>6.0f} us"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
