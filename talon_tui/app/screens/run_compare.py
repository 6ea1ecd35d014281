"""Compare two runs: their intents aligned by tool and target, each pair marked with what
differs (decision, params, recorded output hash) or which side lacks it. Read from the log."""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import BindingType
from textual.containers import VerticalScroll
from textual.widgets import DataTable, Header, Static

from talon_tui.engine.api import RunComparison, RunStepDiff

from ..widgets.badges import decision_badge
from ..widgets.footer import TalonFooter
from ..widgets.safe_text import labelled, safe_text
from .base import TalonScreen, fill_table, selected_key


class RunCompareScreen(TalonScreen):
    CSS_PATH = "run_compare.tcss"
    RELOAD_ON = frozenset({"missed"})
    BINDINGS: ClassVar[list[BindingType]] = []

    def __init__(self, engine, run_a: str, run_b: str) -> None:
        super().__init__(engine, name="compare")
        self.run_a, self.run_b = run_a, run_b
        self.comparison: RunComparison | None = None

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static(id="compare-title", classes="hint")
        yield DataTable(cursor_type="row", zebra_stripes=True, id="compare-table")
        with VerticalScroll(id="compare-detail", classes="detail"):
            yield Static(id="compare-body")
        yield TalonFooter()

    def on_mount(self) -> None:
        table = self.query_one(DataTable)
        for col in ("", "tool", "target", "A", "B", "differs"):
            table.add_column(col, key=col or "mark")
        table.focus()
        super().on_mount()

    async def load(self) -> None:
        self.comparison = await self.engine.compare_runs(self.run_a, self.run_b)
        rows = []
        for i, s in enumerate(self.comparison.steps):
            rows.append(
                (
                    str(i),
                    (
                        Text("≠", "bold yellow") if s.differs else Text("="),
                        safe_text(s.tool, 12),
                        safe_text(s.target, 40),
                        _side(s.a),
                        _side(s.b),
                        Text(", ".join(s.differs) or "same", "yellow" if s.differs else "dim"),
                    ),
                )
            )
        fill_table(self.query_one(DataTable), rows)
        n = sum(1 for s in self.comparison.steps if s.differs)
        title = Text()
        title.append_text(labelled("A", self.run_a, 40))
        title.append(" · ", "dim")
        title.append_text(labelled("B", self.run_b, 40))
        title.append(f" · {n} of {len(self.comparison.steps)} steps differ")
        self.query_one("#compare-title", Static).update(title)
        self._detail()

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        self._detail()

    def _detail(self) -> None:
        body = self.query_one("#compare-body", Static)
        key = selected_key(self.query_one(DataTable))
        if self.comparison is None or key is None:
            body.update("")
            return
        s: RunStepDiff = self.comparison.steps[int(key)]
        text = Text()
        text.append_text(labelled("tool", s.tool, 40))
        text.append("  ")
        text.append_text(labelled("target", s.target, 200))
        text.append("\n")
        for name, side in (("A", s.a), ("B", s.b)):
            text.append(f"\n{name} ", "bold")
            if side is None:
                text.append("(no such step in this run)\n", "italic")
                continue
            text.append(f"seq {side['seq']}  ", "dim")
            text.append_text(decision_badge(str(side.get("decision") or "?")))
            text.append(f"  status {side.get('status') or '-'}\n")
            text.append_text(labelled("output", side.get("output_sha256") or "-", 80))
            text.append("\n")
            text.append_text(labelled("params", side.get("params"), 600))
            text.append("\n")
        body.update(text)


def _side(step: dict | None) -> Text:
    if step is None:
        return Text("—", "dim")
    return decision_badge(str(step.get("decision") or "?"))
