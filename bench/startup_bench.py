"""Start-up benchmark (issue 8): how long `talon serve` takes to be ready (its "listening on"
line), to stop on SIGTERM, and how long one admin verb (`talon session list`) takes against it,
beside `python -c pass` measured in the same run.

Every end-to-end test starts a real `talon serve` and runs `talon` verbs in subprocesses, so
these times are what the suite waits for; operators and agents wait for them too. Runs are
interleaved so that machine load hits every command the same way. `--compare DIR` times a
second checkout (e.g. `git worktree add /tmp/old main`) in the same rounds: before and after
side by side. CPU figures are the children's user+sys time per run (load does not inflate
them the way it inflates wall time).

    .venv/bin/python bench/startup_bench.py [--n 15] [--compare DIR]
"""

from __future__ import annotations

import argparse
import compileall
import json
import os
import resource
import select
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def child_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def env_for(tree: Path) -> dict[str, str]:
    env = {**os.environ, "PYTHONPATH": str(tree)}
    env.pop("TALON_ADMIN_TOKEN", None)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


def serve_round(tree: Path, root: Path) -> dict[str, float]:
    """One `talon serve` from Popen to ready, one `talon session list`, then SIGTERM to exit."""
    data = root / "data"
    env = env_for(tree)
    cpu0, t0 = child_cpu(), time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-m", "talon_tui.cli", "serve", "--data-dir", str(data)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=tree,
        env=env,
    )
    ready, _, _ = select.select([proc.stdout], [], [], 120)
    line = proc.stdout.readline() if ready and proc.stdout else b""
    if b"listening on" not in line:
        proc.kill()
        raise SystemExit(f"talon serve did not start in {tree}: {line!r}")
    ready_ms = (time.perf_counter() - t0) * 1000
    t1, cpu1 = time.perf_counter(), child_cpu()
    verb = ["session", "list", "--json", "--data-dir", str(data)]
    listed = subprocess.run(
        [sys.executable, "-m", "talon_tui.cli", *verb],
        capture_output=True,
        cwd=tree,
        env=env,
        check=False,
    )
    verb_ms = (time.perf_counter() - t1) * 1000
    verb_cpu = child_cpu() - cpu1
    if listed.returncode != 0:
        raise SystemExit(f"talon session list failed in {tree}: {listed.stderr[-400:]!r}")
    t2 = time.perf_counter()
    proc.send_signal(signal.SIGTERM)
    proc.communicate(timeout=120)
    stop_ms = (time.perf_counter() - t2) * 1000
    serve_cpu = child_cpu() - cpu0 - verb_cpu
    return {
        "serve_ready_ms": ready_ms,
        "serve_stop_ms": stop_ms,
        "serve_cpu_ms": serve_cpu * 1000,
        "session_list_ms": verb_ms,
        "session_list_cpu_ms": verb_cpu * 1000,
    }


def summary(values: list[float]) -> dict[str, float]:
    return {"p50": round(statistics.median(values), 1), "min": round(min(values), 1)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=15, help="rounds")
    parser.add_argument("--compare", type=Path, help="a second checkout, timed in the same rounds")
    args = parser.parse_args()
    trees = {"this": REPO}
    if args.compare is not None:
        trees["compare"] = args.compare.resolve()
    for tree in trees.values():  # as `pip install` does: no run pays for compiling
        compileall.compile_dir(str(tree / "talon_tui"), quiet=1)
    rounds: dict[str, list[dict[str, float]]] = {name: [] for name in trees}
    base_ms: list[float] = []
    for i in range(args.n + 1):
        for name, tree in trees.items():
            with tempfile.TemporaryDirectory(prefix="talon-startup-bench-") as tmp:
                figures = serve_round(tree, Path(tmp))
            if i:  # the first round warms the page cache
                rounds[name].append(figures)
        t = time.perf_counter()
        subprocess.run([sys.executable, "-c", "pass"], check=True)
        if i:
            base_ms.append((time.perf_counter() - t) * 1000)
    out: dict[str, object] = {
        "n": args.n,
        "cpus": os.cpu_count(),
        "loadavg_1m": round(os.getloadavg()[0], 2),
        "python_c_pass_ms": summary(base_ms),
    }
    for name, tree in trees.items():
        keys = rounds[name][0].keys()
        out[name] = {"tree": str(tree)} | {k: summary([r[k] for r in rounds[name]]) for k in keys}
    print(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
