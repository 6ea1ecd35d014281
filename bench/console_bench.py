"""Console benchmarks: each figure is one function so others can add theirs beside it.

    .venv/bin/python bench/console_bench.py

first_dashboard_paint: wall time from spawning a fresh Python process to the first dashboard
painted with the engine's data (imports, engine start on a data dir with sessions and a few
hundred audit events, the dashboard's first load, one refresh). Headless Textual driver, so
terminal output cost is excluded. Target < 1 s.

first_live_dashboard: wall time from spawning `talon demo`'s code path (engine and pipe on a
fresh data dir, demo sessions created, demo agents on the real pipe) to the first painted
dashboard that shows demo traffic (a decision in the sparkline). Issue 5 wants a first-time
user to see a live system within 2 s.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CHILD = r"""
import asyncio, sys, time
from talon_tui.app.app import create_app
from talon_tui.app.screens.dashboard import DashboardScreen
from talon_tui.engine.engine import Engine

engine = Engine(sys.argv[1])
app = create_app(engine, startup=engine.start, shutdown=engine.stop)

def painted():
    sys.stdout.write("PAINTED\n"); sys.stdout.flush()
    app.exit()

def poll():
    screen = app.screen
    if isinstance(screen, DashboardScreen) and screen.loads:
        app.call_after_refresh(painted)
    else:
        app.set_timer(0.005, poll)

app.call_later(poll)
app.run(headless=True, size=(120, 40))
"""

LIVE_CHILD = r"""
import asyncio, sys
from pathlib import Path
from talon_tui.app.app import create_app
from talon_tui.demo import demo_services
from talon_tui.app.screens.dashboard import DashboardScreen
from talon_tui.app.widgets.sparkline import DecisionSparkline
from talon_tui.cli.commands.console_cmd import hosted_engine

async def main(data_dir):
    async with hosted_engine(data_dir) as hosted:
        app = create_app(hosted.api, services=await demo_services(hosted.api, data_dir))

        def painted():
            sys.stdout.write("LIVE\n"); sys.stdout.flush()
            app.exit()

        def poll():
            screen = app.screen
            if isinstance(screen, DashboardScreen) and screen.loads:
                if screen.query_one(DecisionSparkline).total():
                    app.call_after_refresh(painted)
                    return
            app.set_timer(0.005, poll)

        app.call_later(poll)
        await app.run_async(headless=True, size=(120, 40))

asyncio.run(main(Path(sys.argv[1])))
"""

SEED = r"""
import asyncio, sys
from talon_tui.engine.engine import Engine
from talon_tui.engine.policy.models import ToolIntent

async def main():
    engine = Engine(sys.argv[1])
    await engine.start()
    policy = {"version": 1, "overrides": [{"tool": "file.read", "allow": True,
              "approval": "never", "constraints": {"roots": ["notes"]}}]}
    for n in range(3):
        session, _ = await engine.create_session(f"bench-{n}", None, policy)
        for i in range(40):
            try:
                await engine.submit(session.id, "agent:bench",
                                    ToolIntent(tool="file.read", params={"path": f"x/{i}.md"}))
            except Exception:
                pass
    await engine.stop()

asyncio.run(main())
"""


def seconds_to_line(argv: list[str], marker: str) -> float | None:
    """Seconds from spawning `argv` (a console child) to its stdout line `marker`; None when
    it exits without printing it."""
    start = time.perf_counter()
    proc = subprocess.Popen(
        argv,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env={**os.environ, "TEXTUAL": ""},
    )
    assert proc.stdout is not None
    took = None
    for line in proc.stdout:
        if line.strip() == marker:
            took = time.perf_counter() - start
            break
    proc.wait(timeout=30)
    return took


def first_dashboard_paint(runs: int = 5) -> dict[str, float]:
    """Seconds from process spawn to the first painted dashboard (median and max of runs)."""
    python = sys.executable
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data"
        subprocess.run([python, "-c", SEED, str(data)], check=True)
        took = [seconds_to_line([python, "-c", CHILD, str(data)], "PAINTED") for _ in range(runs)]
    times = [t for t in took if t is not None]
    return {"median_s": statistics.median(times), "max_s": max(times), "runs": runs}


def first_live_dashboard(runs: int = 3) -> dict[str, float]:
    """Seconds from process spawn to the first painted dashboard showing demo traffic, each
    run on a fresh demo data dir (a first-time user's `talon demo`)."""
    python = sys.executable
    times = []
    for n in range(runs):
        with tempfile.TemporaryDirectory() as tmp:
            took = seconds_to_line([python, "-c", LIVE_CHILD, str(Path(tmp) / f"demo-{n}")], "LIVE")
            if took is not None:
                times.append(took)
    if not times:
        raise RuntimeError("the demo dashboard never showed traffic")
    return {"median_s": statistics.median(times), "max_s": max(times), "runs": runs}


def main() -> None:
    figure = first_dashboard_paint()
    verdict = "ok" if figure["median_s"] < 1.0 else "OVER TARGET"
    print(
        f"console first dashboard paint: median {figure['median_s'] * 1000:.0f} ms, "
        f"max {figure['max_s'] * 1000:.0f} ms over {figure['runs']} runs "
        f"(target < 1000 ms: {verdict})"
    )
    live = first_live_dashboard()
    verdict = "ok" if live["median_s"] <= 2.0 else "OVER TARGET"
    print(
        f"demo: first dashboard with live traffic: median {live['median_s'] * 1000:.0f} ms, "
        f"max {live['max_s'] * 1000:.0f} ms over {live['runs']} runs on a fresh data dir "
        f"(target <= 2000 ms: {verdict})"
    )


if __name__ == "__main__":
    main()
