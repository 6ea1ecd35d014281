"""`:` jump: type a screen name (and an optional id) and press enter, as in k9s."""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.suggester import SuggestFromList
from textual.widgets import Input, OptionList
from textual.widgets.option_list import Option


class JumpScreen(ModalScreen[tuple[str, str | None] | None]):
    """Dismisses with `(name, arg)` or None."""

    CSS_PATH = "jump.tcss"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "cancel", "cancel", id="jump.cancel"),
        Binding("down", "pick_next", show=False, id="jump.next"),
        Binding("up", "pick_previous", show=False, id="jump.previous"),
    ]

    def __init__(self, screens: dict[str, tuple[str, str | None]]) -> None:
        super().__init__()
        self.screens = screens

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Input(
                placeholder=":screen [id]  e.g. sessions, approvals, session sess_…",
                suggester=SuggestFromList(list(self.screens), case_sensitive=False),
                id="jump-input",
            )
            yield OptionList(*self._options(""), id="jump-list")

    def _options(self, text: str) -> list[Option]:
        word = text.strip().split(" ", 1)[0].lower()
        out = []
        for name, (help_, arg) in self.screens.items():
            if word and not name.startswith(word):
                continue
            prompt = Text.assemble((f":{name:<10}", "bold"), (f" {help_}", "dim"))
            if arg:
                prompt.append(f" ({arg})", style="italic dim")
            out.append(Option(prompt, id=name))
        return out

    def on_input_changed(self, event: Input.Changed) -> None:
        options = self.query_one("#jump-list", OptionList)
        options.clear_options()
        options.add_options(self._options(event.value))
        if options.option_count:
            options.highlighted = 0

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        text = event.value.strip().lstrip(":")
        name, _, arg = text.partition(" ")
        name = name.lower()
        if name not in self.screens:
            options = self.query_one("#jump-list", OptionList)
            if options.highlighted is None or not options.option_count:
                self.notify(f"no screen called {name!r}", severity="warning", markup=False)
                return
            name = options.get_option_at_index(options.highlighted).id or ""
        self.dismiss((name, arg.strip() or None))

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        self.dismiss((event.option.id or "", None))

    def action_pick_next(self) -> None:
        self.query_one("#jump-list", OptionList).action_cursor_down()

    def action_pick_previous(self) -> None:
        self.query_one("#jump-list", OptionList).action_cursor_up()

    def action_cancel(self) -> None:
        self.dismiss(None)
