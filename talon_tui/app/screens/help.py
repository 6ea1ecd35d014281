"""`?`: the keys of the screen the operator was on, generated from its bindings."""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen, Screen
from textual.widgets import DataTable, Footer, Static


def binding_rows(screen: Screen) -> list[tuple[str, str, str, str]]:
    """(key, what it does, where, id) for every active binding of `screen`, screen keys first."""
    app = screen.app
    rows: list[tuple[int, bool, str, str, str, str]] = []
    seen: set[str] = set()
    for active in screen.active_bindings.values():
        binding = active.binding
        if binding.system or not active.enabled:
            continue
        what = binding.description or binding.action
        if binding.tooltip:
            what = f"{what} — {binding.tooltip}" if binding.description else binding.tooltip
        ident = binding.id or binding.action
        if ident in seen:
            continue
        seen.add(ident)
        if active.node is app:
            order, where = 1, "global"
        elif active.node is screen:
            order, where = 0, "screen"
        else:
            order, where = 2, type(active.node).__name__.lower()
        rows.append((order, binding.id is None, app.get_key_display(binding), what, where, ident))
    rows.sort(key=lambda r: (r[0], r[1]))
    return [r[2:] for r in rows]


class HelpScreen(ModalScreen[None]):
    CSS_PATH = "help.tcss"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,question_mark,q", "close", "close", id="help.close"),
    ]

    def __init__(self, screen: Screen) -> None:
        super().__init__()
        self.target = screen
        self.rows = binding_rows(screen)

    def compose(self) -> ComposeResult:
        with Vertical():
            title = type(self.target).__name__.removesuffix("Screen").lower() or "screen"
            yield Static(
                Text.assemble(
                    ("Keys: ", "bold"),
                    (title, "bold"),
                    ("   : jump · esc back · ctrl+p palette · ctrl+q quit", "dim"),
                ),
                id="help-title",
            )
            yield DataTable(cursor_type="row", zebra_stripes=True, id="help-table")
        yield Footer()

    def on_mount(self) -> None:
        table = self.query_one(DataTable)
        # short columns first so a narrow terminal cuts only the long descriptions and ids
        table.add_columns("key", "where", "action", "id")
        for key, what, where, ident in self.rows:
            table.add_row(
                Text(key, style="bold"), Text(where, "dim"), Text(what), Text(ident, "dim")
            )
        table.focus()

    def action_close(self) -> None:
        self.dismiss(None)
