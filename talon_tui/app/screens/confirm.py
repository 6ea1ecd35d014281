"""A yes/no question that states the consequence before anything changes."""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Static

from ..widgets.footer import TalonFooter


class ConfirmScreen(ModalScreen[bool]):
    """Dismisses with True on `y`/Confirm, False on `n`/`esc`/Cancel.

    `body` may carry agent data: pass it as `Text` built with `safe_text`, never as a str.
    """

    CSS_PATH = "confirm.tcss"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("y", "answer(True)", "yes", id="confirm.yes", tooltip="Do it"),
        Binding("n", "answer(False)", "no", id="confirm.no", tooltip="Leave things as they are"),
        Binding("escape", "answer(False)", "cancel", id="confirm.cancel"),
    ]

    def __init__(self, title: str, body: Text | str, *, confirm_label: str = "Yes (y)") -> None:
        super().__init__()
        self.title_text = title
        self.body = body if isinstance(body, Text) else Text(body)
        self.confirm_label = confirm_label

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Static(Text(self.title_text), id="confirm-title")
            with VerticalScroll():
                yield Static(self.body, id="confirm-body")
            with Horizontal():
                yield Button("No (n)", id="no")
                yield Button(self.confirm_label, id="yes", variant="warning")
        yield TalonFooter()

    def on_mount(self) -> None:
        self.query_one("#no", Button).focus()

    def action_answer(self, value: bool) -> None:
        self.dismiss(value)

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        self.dismiss(event.button.id == "yes")
