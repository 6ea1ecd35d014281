"""Allowlists entered as chips: one value a chip, `enter` adds, `delete` on a chip removes it.

Values may come from an agent (a suggested fix quotes the path or host it asked for), so every
chip is drawn with `safe_text`. The domain flavour never stores a URL: typing
`https://api.example.com/v1?q=1` proposes the exact host `api.example.com`, and `enter` adds
the host, not the URL.
"""

from __future__ import annotations

from typing import Literal

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.message import Message
from textual.reactive import reactive
from textual.widget import Widget
from textual.widgets import Input, Static

from ...engine.console_api import canonical_domain, parse_fetch_url
from ...engine.errors import TalonError
from .safe_text import safe_text

ChipKind = Literal["plain", "domain", "secret", "root", "image", "mount", "command"]

CHIP_MAX = 48
EMPTY_NOTES: dict[str, str] = {
    "secret": "(none: no secret may be sent)",
}
EMPTY_NOTE = "(none yet: an empty allowlist allows nothing)"
BROAD_ROOT_NOTE = Text(
    "⚠ this root is the whole workspace or file system: name a subdirectory", style="bold"
)


def propose_host(text: str) -> tuple[str | None, str | None]:
    """For a URL-looking entry: (its exact host, None) or (None, why it cannot be used).

    Plain host names give (None, None): they are entries already. The URL is read by the
    engine's one URL check (`checks.parse_fetch_url`), so the proposal is the host a fetch of
    that URL would actually contact.
    """
    candidate = text.strip()
    if "://" not in candidate and "/" not in candidate and "@" not in candidate:
        return None, None
    if "://" not in candidate:
        candidate = "https://" + candidate
    try:
        return parse_fetch_url(candidate).host, None
    except TalonError as exc:
        return None, exc.message


class Chip(Static, can_focus=True):
    """One allowlist entry; focus it and press `delete` to take it out."""

    BINDINGS = [
        Binding(
            "delete,backspace",
            "remove",
            "Remove entry",
            id="chips.remove",
            tooltip="Take this entry out of the allowlist",
        ),
    ]

    def __init__(self, value: str) -> None:
        super().__init__(classes="chip")
        self.value = value

    def render(self) -> Text:
        text = safe_text(self.value, CHIP_MAX)
        text.append(" ×", style="dim")
        return text

    def action_remove(self) -> None:
        chip_input = next(a for a in self.ancestors if isinstance(a, ChipInput))
        chip_input.remove_value(self.value)


class ChipInput(Widget):
    """A list of strings edited as chips plus an input for the next entry."""

    class Changed(Message):
        """The list of values changed."""

        def __init__(self, chip_input: ChipInput, values: list[str]) -> None:
            super().__init__()
            self.chip_input = chip_input
            self.values = values

        @property
        def control(self) -> ChipInput:
            return self.chip_input

    proposal: reactive[tuple[str | None, str | None]] = reactive((None, None), init=False)

    def __init__(
        self,
        values: list[str] | None = None,
        *,
        kind: ChipKind = "plain",
        placeholder: str = "",
        id: str | None = None,
        disabled: bool = False,
    ) -> None:
        super().__init__(id=id, disabled=disabled)
        self.kind = kind
        self._values: list[str] = list(values or [])
        self._placeholder = placeholder

    @property
    def values(self) -> list[str]:
        return list(self._values)

    def compose(self) -> ComposeResult:
        with Horizontal(classes="chip-row"):
            for value in self._values:
                yield Chip(value)
        yield Static(EMPTY_NOTES.get(self.kind, EMPTY_NOTE), classes="chip-empty")
        yield Input(placeholder=self._placeholder, select_on_focus=False)
        yield Static("", classes="chip-proposal")

    def on_mount(self) -> None:
        self._sync_empty()
        self.query_one(".chip-proposal", Static).display = False

    @property
    def input(self) -> Input:
        return self.query_one(Input)

    def _sync_empty(self) -> None:
        self.query_one(".chip-empty", Static).display = not self._values
        self.query_one(".chip-row", Horizontal).display = bool(self._values)

    async def add_value(self, value: str) -> bool:
        """Add `value` (stripped) unless blank or already there; True when added."""
        value = value.strip()
        if self.kind == "domain":
            value = value.lower().rstrip(".")
        if not value or value in self._values:
            return False
        self._values.append(value)
        await self.query_one(".chip-row", Horizontal).mount(Chip(value))
        self._sync_empty()
        self.post_message(self.Changed(self, self.values))
        return True

    def remove_value(self, value: str) -> None:
        if value not in self._values:
            return
        index = self._values.index(value)
        self._values.pop(index)
        chips = list(self.query(Chip))
        chip = chips[index]
        # Keep the keyboard where the operator is: the next chip, else the input.
        following = chips[index + 1] if index + 1 < len(chips) else None
        previous = chips[index - 1] if index > 0 else None
        target: Widget = following or previous or self.input
        if chip.has_focus:
            target.focus()
        chip.remove()
        self._sync_empty()
        self.post_message(self.Changed(self, self.values))

    def pending_text(self) -> str:
        """What is typed but not yet added (so a form can add it on apply)."""
        return self.input.value.strip()

    async def commit_pending(self) -> None:
        """Add what is typed in the input, as `enter` would."""
        if self.pending_text():
            await self._submit(self.input.value)

    async def _submit(self, raw: str) -> None:
        value = raw.strip()
        if self.kind == "domain":
            host, problem = propose_host(value)
            if problem is not None:
                self.proposal = (None, problem)
                return
            if host is not None:
                value = host
        await self.add_value(value)
        self.input.value = ""

    @on(Input.Submitted)
    async def _on_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        await self._submit(event.value)

    @on(Input.Changed)
    def _on_changed(self, event: Input.Changed) -> None:
        event.stop()
        if self.kind == "domain":
            self.proposal = propose_host(event.value)
            if self.proposal == (None, None):  # unchanged proposals are not watched
                self._show_proposal(self._matched_as(event.value))
        elif self.kind == "root":
            broad = event.value.strip() in ("/", ".", "./")
            self._show_proposal(BROAD_ROOT_NOTE if broad else None)

    def watch_proposal(self, proposal: tuple[str | None, str | None]) -> None:
        host, problem = proposal
        text: Text | None
        if problem is not None:
            text = Text("✗ not usable: ", style="bold", end="")
            text.append_text(safe_text(problem, 120))
        elif host is not None:
            text = Text("↳ a URL is not a domain: enter adds its exact host ", end="")
            text.append_text(safe_text(host, 80, style="bold"))
        else:
            text = self._matched_as(self.input.value) if self.kind == "domain" else None
        self._show_proposal(text)

    @staticmethod
    def _matched_as(typed: str) -> Text | None:
        """For a non-ASCII entry, the form matching compares (`ｉｏ` is `io`, `аррӏе` punycode)."""
        entry = typed.strip().lower().rstrip(".")
        if not entry or entry.isascii():
            return None
        canon = canonical_domain(entry)
        if canon is None:
            return Text("✗ not a host name: this entry would match nothing", style="bold")
        text = Text("↳ matched as ", end="")
        text.append_text(safe_text(("*." if canon[0] else "") + canon[1], 80, style="bold"))
        return text

    def _show_proposal(self, text: Text | None) -> None:
        label = self.query_one(".chip-proposal", Static)
        label.display = text is not None
        label.update(text if text is not None else "")
