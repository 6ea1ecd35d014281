"""Console benchmarks: each figure is one function so others can add theirs beside it.

    .venv/bin/python bench/console_bench.py

first_dashboard_paint: wall time from spawning a fresh Python process to the first dashboard
painted with the engine's data (imports, engine start on a data dir with sessions and a few
hundred audit events, the dashboard's first load, one refresh). Headless Textual driver, so
terminal output cost is excluded. Target < 1 s.
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

SEED = r"""
import asyncio, sys
from talon_tui.engine.engine import Engine
from talon_tui.engine.models import ToolIntent

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


def first_dashboard_paint(runs: int = 5) -> dict[str, float]:
    """Seconds from process spawn to the first painted dashboard (median and max of runs)."""
    python = sys.executable
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data"
        subprocess.run([python, "-c", SEED, str(data)], check=True)
        times = []
        for _ in range(runs):
            start = time.perf_counter()
            proc = subprocess.Popen(
                [python, "-c", CHILD, str(data)],
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                text=True,
                env={**os.environ, "TEXTUAL": ""},
            )
            assert proc.stdout is not None
            for line in proc.stdout:
                if line.strip() == "PAINTED":
                    times.append(time.perf_counter() - start)
                    break
            proc.wait(timeout=30)
    return {"median_s": statistics.median(times), "max_s": max(times), "runs": runs}


def main() -> None:
    figure = first_dashboard_paint()
    verdict = "ok" if figure["median_s"] < 1.0 else "OVER TARGET"
    print(
        f"console first dashboard paint: median {figure['median_s'] * 1000:.0f} ms, "
        f"max {figure['max_s'] * 1000:.0f} ms over {figure['runs']} runs "
        f"(target < 1000 ms: {verdict})"
    )


if __name__ == "__main__":
    main()
