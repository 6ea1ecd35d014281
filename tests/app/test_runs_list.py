"""RunsList: a session's runs as a Line-API list fed page by page from `list_runs`, sized for
100,000 runs; and the engine's paging (`offset`) it relies on."""

from __future__ import annotations

import time

import pytest
from textual.app import App, ComposeResult

from talon_tui.app.widgets.runs_list import RunsList, parse_run_filter
from talon_tui.engine.api import RunSummary
from talon_tui.engine.audit.runs import RunProjection

SID = "sess_1"
TS = "2026-11-25T17:00:00.000000Z"


def projection(n: int, session_id: str = SID) -> RunProjection:
    runs = RunProjection(keep_finished=n + 10)
    for i in range(n):
        rid = f"run_{i:016x}"
        runs.apply(
            {
                "type": "run.started",
                "run_id": rid,
                "session_id": session_id,
                "ts": TS,
                "data": {"content": f"task {i}" if i % 10 else "[bold]deploy[/] \x1b[2J"},
            }
        )
        runs.apply(
            {
                "type": "run.finished",
                "run_id": rid,
                "session_id": session_id,
                "ts": TS,
                "data": {"status": "error" if i % 7 == 0 else "ok"},
            }
        )
    return runs


class RunsEngine:
    """The part of `EngineAPI` RunsList uses, over a real RunProjection; counts the calls."""

    def __init__(self, runs: RunProjection) -> None:
        self.runs = runs
        self.calls: list[tuple[int, int]] = []

    async def list_runs(self, session_id=None, limit=500, offset=0) -> list[RunSummary]:
        self.calls.append((offset, limit))
        return self.runs.list(session_id, limit, offset)


class RunsApp(App[None]):
    def __init__(self, engine: RunsEngine) -> None:
        super().__init__()
        self.engine = engine
        self.chosen: list[str] = []
        self.loaded = 0

    def compose(self) -> ComposeResult:
        yield RunsList(self.engine, SID)

    async def on_mount(self) -> None:
        runs = self.query_one(RunsList)
        runs.focus()
        await runs.load()

    def on_runs_list_run_chosen(self, event: RunsList.RunChosen) -> None:
        self.chosen.append(event.run.run_id)

    def on_runs_list_loaded(self, event: RunsList.Loaded) -> None:
        self.loaded += 1


async def wait_loaded(pilot, app: RunsApp) -> None:
    await app.workers.wait_for_complete()
    await pilot.pause()
    assert app.loaded == 1


def test_projection_pages_newest_first_without_gaps():
    runs = projection(2_345)
    seen: list[str] = []
    offset = 0
    while True:
        page = runs.list(SID, 500, offset)
        seen += [r.run_id for r in page]
        offset += len(page)
        if len(page) < 500:
            break
    assert len(seen) == len(set(seen)) == 2_345
    assert seen[0] == "run_" + f"{2_344:016x}" and seen[-1] == "run_" + f"{0:016x}"
    assert runs.list(SID, 10, 5_000) == []
    assert runs.list("other", 10, 10) == []


@pytest.mark.slow
async def test_100k_runs_first_page_then_all_pages_in_a_worker():
    engine = RunsEngine(projection(100_000))
    app = RunsApp(engine)
    async with app.run_test(size=(120, 30)) as pilot:
        runs = app.query_one(RunsList)
        assert len(runs.runs) >= 500  # the first page is there before any other page
        await wait_loaded(pilot, app)
        assert len(runs.runs) == 100_000 and runs.complete
        assert engine.calls[0] == (0, 500) and len(engine.calls) == 201
        # only visible rows are rendered: the row text is the newest run
        assert "run_000000000001869f" in runs.render_line(1).text
        assert "100,000 runs" in str(runs.border_title)
        await pilot.press("G")
        assert runs.selected.run_id == "run_0000000000000000"
        assert runs.scroll_y > 99_000
        await pilot.press("g", "down", "down", "enter")
        await pilot.pause()
        assert app.chosen == ["run_000000000001869d"]


async def test_filter_by_status_and_text_and_literal_content():
    engine = RunsEngine(projection(1_000))
    app = RunsApp(engine)
    async with app.run_test(size=(120, 30)) as pilot:
        await wait_loaded(pilot, app)
        runs = app.query_one(RunsList)
        runs.set_filter("status:error")
        assert len(runs.rows) == len([i for i in range(1_000) if i % 7 == 0])
        assert all(r.status == "error" for r in runs.rows)
        runs.set_filter("status:ok deploy")
        assert runs.rows and all("deploy" in r.content and r.status == "ok" for r in runs.rows)
        line = runs.render_line(1).text
        assert "[bold]deploy[/]" in line and "\\x1b[2J" in line and "\x1b" not in line
        runs.set_filter("")
        assert len(runs.rows) == 1_000
    assert parse_run_filter("Status:Error,denied x") == ({"error", "denied"}, ["x"])


async def test_live_run_is_inserted_at_top_and_finished_in_place():
    engine = RunsEngine(projection(3))
    app = RunsApp(engine)
    async with app.run_test(size=(120, 30)) as pilot:
        await wait_loaded(pilot, app)
        runs = app.query_one(RunsList)
        await pilot.press("down")
        chosen = runs.selected.run_id
        new = {"run_id": "run_new", "session_id": SID, "status": "running", "started": TS}
        runs.run_changed("started", new)
        runs.run_changed("started", {**new, "run_id": "run_elsewhere", "session_id": "sess_2"})
        assert [r.run_id for r in runs.runs][:2] == ["run_new", "run_0000000000000002"]
        assert runs.selected.run_id == chosen  # the cursor stays on the same run
        runs.run_changed("finished", {**new, "status": "denied", "steps": 4, "denied": 1})
        await pilot.pause()
        assert runs.runs[0].status == "denied" and runs.runs[0].steps == 4
        assert "denied" in runs.render_line(1).text


def bench_first_paint(n: int = 100_000) -> dict[str, float]:
    """Not a test: seconds from starting an app with a RunsList over `n` runs to the first
    painted run row, to every page fetched, and for G to reach the oldest run
    (`python -c "import sys; sys.path.insert(0, 'tests'); from test_runs_list import
    bench_first_paint as b; print(b())"`)."""
    import asyncio

    engine = RunsEngine(projection(n))
    out: dict[str, float] = {}
    start = time.perf_counter()
    original = RunsList.render_line

    def timed(self, y):
        if y >= 1 and self.rows and "first_row_painted_s" not in out:
            out["first_row_painted_s"] = time.perf_counter() - start
            out["runs_known_then"] = len(self.runs)
        return original(self, y)

    async def main() -> None:
        app = RunsApp(engine)
        async with app.run_test(size=(160, 48)) as pilot:
            await app.workers.wait_for_complete()
            await pilot.pause()
            out["all_pages_s"] = time.perf_counter() - start
            t = time.perf_counter()
            await pilot.press("G")
            await pilot.pause()
            out["to_end_s"] = time.perf_counter() - t

    RunsList.render_line = timed
    try:
        asyncio.run(main())
    finally:
        RunsList.render_line = original
    return out
