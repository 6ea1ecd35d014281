"""A session's runs as a Line-API list (sized for 100,000 runs; a DataTable takes 28 s there).

Runs come from `EngineAPI.list_runs` in pages, newest first: the first page is fetched before
the first paint, the rest by a worker page after page (each page one pipe reply when attached,
well under the pipe's 1 MiB line limit). Only the visible rows are rendered, from an LRU cache
of Strips; the bus keeps the list live (a started run is inserted at the top, a finished one
updated in place) without fetching again. `/` filters by status and text.
"""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Any, ClassVar

from rich.text import Text
from textual import work
from textual.binding import Binding, BindingType
from textual.message import Message
from textual.strip import Strip

from talon_tui.engine.api import EngineAPI, RunSummary
from talon_tui.engine.console_api import utcnow
from talon_tui.engine.errors import TalonError

from .badges import APPROVAL_COLOR, DENY_COLOR, status_badge
from .cursor_list import CursorList, cursor_bindings
from .safe_text import safe_text
from .summaries import age_seconds, human_age

PAGE = 500

# (title, width, justify) of the fixed columns; content takes the rest
COLUMNS = (
    ("run", 22, "left"),
    ("status", 11, "left"),
    ("steps", 6, "right"),
    ("allow", 6, "right"),
    ("deny", 6, "right"),
    ("appr", 6, "right"),
    ("started", 10, "right"),
)


def parse_run_filter(text: str) -> tuple[set[str], list[str]]:
    """(`status:` values, free words), both lowercase: `status:error deploy` →
    ({"error"}, ["deploy"])."""
    statuses: set[str] = set()
    words: list[str] = []
    for token in text.lower().split():
        if token.startswith("status:") and len(token) > 7:
            statuses.update(v for v in token[7:].split(",") if v)
        else:
            words.append(token)
    return statuses, words


def run_matches(run: RunSummary, statuses: set[str], words: list[str]) -> bool:
    if statuses and run.status.lower() not in statuses:
        return False
    if not words:
        return True
    hay = f"{run.run_id} {run.status} {run.content}".lower()
    return all(w in hay for w in words)


def _cell(value: Text | str, width: int, justify: str = "left") -> Text:
    text = value if isinstance(value, Text) else Text(value, end="")
    text = text.copy()
    text.truncate(width, overflow="ellipsis", pad=False)
    pad = " " * (width - text.cell_len)
    if justify == "right":
        return Text.assemble(pad, text, " ", end="")
    return Text.assemble(text, pad, " ", end="")


def header_row() -> Text:
    row = Text(end="", style="bold")
    for title, width, justify in COLUMNS:
        row.append_text(_cell(title, width, justify))
    row.append("content")
    return row


def run_row(run: RunSummary, now: datetime) -> Text:
    """One run as a row; its content is agent data, so it goes through `safe_text`."""
    started = human_age(age_seconds(run.started, now))
    cells: list[tuple[Text | str, str]] = [
        (Text(run.run_id, end=""), ""),
        (status_badge(run.status), ""),
        (Text(str(run.steps), end=""), ""),
        (Text(str(run.allowed), end="", style="#3fb950"), ""),
        (Text(str(run.denied), end="", style=DENY_COLOR), ""),
        (Text(str(run.approvals), end="", style=APPROVAL_COLOR), ""),
        (Text(f"{started} ago", end=""), ""),
    ]
    row = Text(end="")
    for (value, _), (_title, width, justify) in zip(cells, COLUMNS, strict=True):
        row.append_text(_cell(value, width, justify))
    row.append_text(safe_text(run.content, 200))
    return row


class RunsList(CursorList):
    """The runs of one session, newest first, with a header row that stays in place."""

    HEADER_LINES = 1
    COMPONENT_CLASSES: ClassVar[set[str]] = {*CursorList.COMPONENT_CLASSES, "runs-list--header"}
    DEFAULT_CSS = """
    RunsList > .runs-list--header { color: $text-muted; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        *cursor_bindings(
            "runs_list", top_tooltip="Newest run", bottom="oldest", bottom_tooltip="Oldest run"
        ),
        Binding("enter", "open", "open run", id="runs_list.open", tooltip="Step timeline"),
    ]

    class RunChosen(Message):
        """`enter` on a run."""

        def __init__(self, run: RunSummary) -> None:
            super().__init__()
            self.run = run

    class Loaded(Message):
        """Every page was fetched (the list holds all the runs the engine keeps)."""

        def __init__(self, runs_list: RunsList) -> None:
            super().__init__()
            self.runs_list = runs_list

    def __init__(
        self,
        engine: EngineAPI,
        session_id: str | None,
        *,
        page_size: int = PAGE,
        name: str | None = None,
        id: str | None = None,
        classes: str | None = None,
    ) -> None:
        super().__init__(name=name, id=id, classes=classes)
        self.engine = engine
        self.session_id = session_id
        self.page_size = page_size
        self.runs: list[RunSummary] = []  # newest first
        self._by_id: dict[str, RunSummary] = {}
        self._view: list[RunSummary] | None = None  # filtered rows, or None
        self.filter_text = ""
        self.complete = False
        self._generation = 0
        self._stamp: dict[str, int] = {}  # run id -> bumps on every in-place update

    # ------------------------------------------------------------------ data

    @property
    def rows(self) -> list[RunSummary]:
        """What is shown: every run, or the ones the filter keeps."""
        return self.runs if self._view is None else self._view

    @property
    def selected(self) -> RunSummary | None:
        rows = self.rows
        return rows[self.cursor] if 0 <= self.cursor < len(rows) else None

    @property
    def row_count(self) -> int:
        return len(self.rows)

    def row_key(self, index: int) -> tuple[str, int]:
        run_id = self.rows[index].run_id
        return run_id, self._stamp.get(run_id, 0)

    def row_text(self, index: int) -> Text:
        return run_row(self.rows[index], self._now())

    def _now(self) -> datetime:
        clock = getattr(self.app, "clock", None)
        if clock is not None:
            return clock()
        return utcnow()

    async def load(self) -> None:
        """Fetch the newest page now (for the first paint), then the rest in a worker."""
        self._generation += 1
        first = await self.engine.list_runs(self.session_id, limit=self.page_size, offset=0)
        keep = self.selected.run_id if self.selected is not None else None
        self.runs = list(first)
        self._by_id = {r.run_id: r for r in self.runs}
        self._stamp.clear()
        self.complete = len(first) < self.page_size
        self._refilter(keep)
        if self.complete:
            self.post_message(self.Loaded(self))
        else:
            self._fetch_rest(self._generation, len(first))

    @work(exclusive=True, group="runs-pages", exit_on_error=False)
    async def _fetch_rest(self, generation: int, offset: int) -> None:
        while generation == self._generation:
            try:
                page = await self.engine.list_runs(
                    self.session_id, limit=self.page_size, offset=offset
                )
            except TalonError as exc:
                self.notify(str(exc), title="Runs", severity="error", markup=False)
                return
            if generation != self._generation:
                return
            offset += len(page)
            self._extend(page)
            # an in-process engine answers without suspending: give the screen its turn
            await asyncio.sleep(0)
            if len(page) < self.page_size:
                self.complete = True
                self._show_status()
                self.post_message(self.Loaded(self))
                return

    def _extend(self, page: list[RunSummary]) -> None:
        # a run started while paging shifts the pages by one: skip what is already listed
        fresh = [r for r in page if r.run_id not in self._by_id]
        self.runs.extend(fresh)
        self._by_id.update((r.run_id, r) for r in fresh)
        if self._view is not None:
            statuses, words = parse_run_filter(self.filter_text)
            self._view.extend(r for r in fresh if run_matches(r, statuses, words))
        self._update_size()

    def run_changed(self, action: str, run: dict[str, Any]) -> None:
        """A `run` bus message: insert a started run at the top, update a finished one."""
        summary = RunSummary.model_validate(run)
        if summary.session_id != self.session_id and self.session_id is not None:
            return
        known = self._by_id.get(summary.run_id)
        if known is not None:
            for key, value in summary.model_dump().items():
                setattr(known, key, value)
            self._stamp[summary.run_id] = self._stamp.get(summary.run_id, 0) + 1
            if self._view is not None:
                self._refilter(self.selected.run_id if self.selected else None)
            self.refresh()
            return
        if action != "started":
            return
        self.runs.insert(0, summary)
        self._by_id[summary.run_id] = summary
        statuses, words = parse_run_filter(self.filter_text)
        if self._view is None or run_matches(summary, statuses, words):
            if self._view is not None:
                self._view.insert(0, summary)
            if self.cursor > 0:  # stay on the same run; at the top, show the newest
                self.cursor += 1
        self._update_size()

    def set_filter(self, text: str) -> None:
        """Keep only the runs matching `status:a,b` and every free word (run id, content)."""
        self.filter_text = text.strip()
        self._refilter(self.selected.run_id if self.selected else None)

    def _refilter(self, keep: str | None) -> None:
        statuses, words = parse_run_filter(self.filter_text)
        if statuses or words:
            self._view = [r for r in self.runs if run_matches(r, statuses, words)]
        else:
            self._view = None
        rows = self.rows
        index = next((i for i, r in enumerate(rows) if r.run_id == keep), 0) if keep else 0
        self._strips.clear()
        self._update_size()
        self.cursor = index

    # ------------------------------------------------------------------ rendering

    def render_header(self, y: int, width: int) -> Strip:
        return self.text_strip(header_row(), width, "runs-list--header")

    def _update_size(self) -> None:
        super()._update_size()
        self._show_status()

    def _show_status(self) -> None:
        total = len(self.runs)
        title = f"{total:,} runs" if self.complete else f"{total:,} runs (loading…)"
        if self._view is not None:
            title = f"{len(self._view):,} of {title}"
        self.border_title = Text(title, no_wrap=True, end="")
        self.border_subtitle = (
            Text(f"filter: {self.filter_text}", no_wrap=True, end="")
            if self._view is not None
            else "/ filter · enter open"
        )

    # ------------------------------------------------------------------ actions

    def action_open(self) -> None:
        run = self.selected
        if run is not None:
            self.post_message(self.RunChosen(run))
