"""`?`: the keys of the screen the operator was on, generated from its bindings: the key, the
action and what it does, in words (binding ids stay internal)."""

from __future__ import annotations

import re
from typing import ClassVar, NamedTuple

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical, VerticalScroll
from textual.screen import ModalScreen, Screen
from textual.widgets import Static

from ..widgets.footer import TalonFooter


class HelpRow(NamedTuple):
    key: str
    action: str  # the footer's word for it
    description: str  # what it does, in a sentence
    where: str  # "this screen", "everywhere", or the part of the screen it belongs to
    ident: str  # the binding's id (for remapping and tests, never shown)
    action_name: str  # the action the key runs (for the palette)
    node: object  # where the action runs: the app, the screen or one of its widgets


def class_words(node: object) -> str:
    """A class name in words: PolicyEditorScreen -> "policy editor", DataTable -> "data table"."""
    name = type(node).__name__.removesuffix("Screen")
    return " ".join(w.lower() for w in re.findall(r"[A-Z][a-z0-9]*", name)) or name.lower()


def binding_rows(screen: Screen) -> list[HelpRow]:
    """Every active binding of `screen`, the screen's own keys first."""
    app = screen.app
    rows: list[tuple[int, bool, HelpRow]] = []
    seen: set[str] = set()
    for active in screen.active_bindings.values():
        binding = active.binding
        if binding.system or not active.enabled:
            continue
        ident = binding.id or binding.action
        if ident in seen:
            continue
        seen.add(ident)
        action = binding.description or binding.tooltip or "(no name)"
        description = binding.tooltip if binding.description else ""
        if active.node is app:
            order, where = 1, "everywhere"
        elif active.node is screen:
            order, where = 0, "this screen"
        else:
            order, where = 2, class_words(active.node)
        key = app.get_key_display(binding)
        row = HelpRow(key, action, description, where, ident, binding.action, active.node)
        rows.append((order, binding.id is None, row))
    rows.sort(key=lambda r: (r[0], r[1]))
    return [r[2] for r in rows]


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
            yield Static(
                Text.assemble(
                    ("Keys of the ", "bold"),
                    (class_words(self.target), "bold"),
                    ("   ctrl+p: every command · ctrl+q: quit", "dim"),
                ),
                id="help-title",
            )
            with VerticalScroll(id="help-keys"):
                yield Static(self._table(), id="help-table")
        yield TalonFooter()

    def _table(self) -> Table:
        # key and action never wrap; what it does wraps, so nothing is cut at 80 columns
        table = Table(box=None, expand=True, show_edge=False, pad_edge=False, header_style="bold")
        table.add_column("key", no_wrap=True, style="bold")
        table.add_column("action", no_wrap=True)
        table.add_column("what it does", ratio=1)
        table.add_column("where", no_wrap=True, style="dim")
        for row in self.rows:
            table.add_row(Text(row.key), Text(row.action), Text(row.description), Text(row.where))
        return table

    def on_mount(self) -> None:
        self.query_one("#help-keys").focus()

    def action_close(self) -> None:
        self.dismiss(None)
