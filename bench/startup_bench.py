"""Start-up benchmark (issue 8): how long `talon serve` takes to be ready (its "listening on"
line, printed once the socket accepts), to stop on SIGTERM, and what the short `talon` verbs
cost: `session list` and `approvals list` against it, `audit verify` on its log once it has
stopped, `policy lint` of a sample policy and `mcp install --help` (offline), beside
`python -c pass` and `python -c "import pydantic"` measured in the same rounds.

Every end-to-end test starts a real `talon serve` and runs `talon` verbs in subprocesses, so
these times are what the suite waits for; operators and agents wait for them too. Runs are
interleaved so that machine load hits every command the same way. `--compare DIR` times a
second checkout (e.g. `git archive main | tar -x -C /tmp/old`) in the same rounds: before and
after side by side. CPU figures are the children's user+sys time per run (load does not inflate
them the way it inflates wall time). Each tree runs with its own directory as the working
directory and first on the path, so `python -m talon_tui.cli` runs that tree's code.

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
LINT_POLICY = "sample_policies/deny-then-fix-after.json"
#: verb name -> argv after `talon`, run while `talon serve` runs ({data}: its data dir)
LIVE_VERBS = {
    "session_list": ["session", "list", "--json", "--data-dir", "{data}"],
    "approvals_list": ["approvals", "list", "--json", "--data-dir", "{data}"],
    "policy_lint": ["policy", "lint", LINT_POLICY, "--json"],
    "mcp_install_help": ["mcp", "install", "--help"],
}
#: run once `talon serve` has stopped (the log is closed)
STOPPED_VERBS = {"audit_verify": ["audit", "verify", "--json", "--data-dir", "{data}"]}
BASELINES = {"python_c_pass": ["-c", "pass"], "python_import_pydantic": ["-c", "import pydantic"]}


def child_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def env_for(tree: Path) -> dict[str, str]:
    env = {**os.environ, "PYTHONPATH": str(tree)}
    env.pop("TALON_ADMIN_TOKEN", None)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


def timed(argv: list[str], tree: Path, ok: tuple[int, ...] = (0,)) -> tuple[float, float]:
    """Wall and CPU milliseconds of `python ARGV` run in `tree`; exit when it fails."""
    cpu0, t0 = child_cpu(), time.perf_counter()
    done = subprocess.run(
        [sys.executable, *argv], capture_output=True, cwd=tree, env=env_for(tree), check=False
    )
    wall, cpu = (time.perf_counter() - t0) * 1000, (child_cpu() - cpu0) * 1000
    if done.returncode not in ok:
        raise SystemExit(f"{argv} failed in {tree}: {done.stderr[-400:]!r}")
    return wall, cpu


def verb(tree: Path, name: str, argv: list[str], data: Path) -> dict[str, float]:
    cli = ["-m", "talon_tui.cli", *(a.format(data=data) for a in argv)]
    wall, cpu = timed(cli, tree)
    return {f"{name}_ms": wall, f"{name}_cpu_ms": cpu}


def serve_round(tree: Path, root: Path) -> dict[str, float]:
    """One `talon serve` from Popen to ready, the live verbs against it, SIGTERM to exit, then
    the verbs that read its closed log."""
    data = root / "data"
    cpu0, t0 = child_cpu(), time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-m", "talon_tui.cli", "serve", "--data-dir", str(data)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=tree,
        env=env_for(tree),
    )
    ready, _, _ = select.select([proc.stdout], [], [], 120)
    line = proc.stdout.readline() if ready and proc.stdout else b""
    if b"listening on" not in line:
        proc.kill()
        raise SystemExit(f"talon serve did not start in {tree}: {line!r}")
    figures = {"serve_ready_ms": (time.perf_counter() - t0) * 1000}
    serve_cpu = child_cpu() - cpu0
    for name, argv in LIVE_VERBS.items():
        figures |= verb(tree, name, argv, data)
    t2, cpu2 = time.perf_counter(), child_cpu()
    proc.send_signal(signal.SIGTERM)
    proc.communicate(timeout=120)
    figures["serve_stop_ms"] = (time.perf_counter() - t2) * 1000
    # serve's CPU from start to exit, without the verbs run between
    figures["serve_cpu_ms"] = (serve_cpu + child_cpu() - cpu2) * 1000
    for name, argv in STOPPED_VERBS.items():
        figures |= verb(tree, name, argv, data)
    return figures


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
    base: dict[str, list[float]] = {f"{k}_{u}": [] for k in BASELINES for u in ("ms", "cpu_ms")}
    load_start = os.getloadavg()[0]
    for i in range(args.n + 1):
        for name, tree in trees.items():
            with tempfile.TemporaryDirectory(prefix="talon-startup-bench-") as tmp:
                figures = serve_round(tree, Path(tmp))
            if i:  # the first round warms the page cache
                rounds[name].append(figures)
        for key, argv in BASELINES.items():
            wall, cpu = timed(argv, Path(tempfile.gettempdir()))
            if i:
                base[f"{key}_ms"].append(wall)
                base[f"{key}_cpu_ms"].append(cpu)
    out: dict[str, object] = {
        "n": args.n,
        "cpus": os.cpu_count(),
        "loadavg_1m": {"start": round(load_start, 2), "end": round(os.getloadavg()[0], 2)},
    }
    out |= {k: summary(v) for k, v in base.items()}
    for name, tree in trees.items():
        keys = rounds[name][0].keys()
        out[name] = {"tree": str(tree)} | {k: summary([r[k] for r in rounds[name]]) for k in keys}
    if "compare" in trees:  # CPU p50 of this tree against the other's, in the same rounds
        this, other = out["this"], out["compare"]
        assert isinstance(this, dict) and isinstance(other, dict)
        out["cpu_p50_this_vs_compare"] = {
            k: f"{this[k]['p50']:.0f} vs {other[k]['p50']:.0f} ms "
            f"({100 * (this[k]['p50'] / other[k]['p50'] - 1):+.0f}%)"
            for k in this
            if k.endswith("cpu_ms")
        }
    print(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
