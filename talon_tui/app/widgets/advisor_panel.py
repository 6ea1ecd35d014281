"""The advisor panel: every warning about the policy being edited, with why and a tighter way.

Each entry shows its level (info blue, warn amber, danger red), the override it is about, what
the setting allows, why that is risky in plain words and the alternative. An entry the advisor
can tighten on its own (its `tightened` override) is marked; the editor's `t` applies the
highlighted one. Messages quote policy values, which may have come from an agent, so every line
goes through `safe_text`.
"""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.message import Message
from textual.widget import Widget
from textual.widgets import OptionList, Static
from textual.widgets.option_list import Option

from ...engine.console_api import Advice, worst_level
from .badges import APPROVAL_STYLE, DENY_STYLE, INFO_STYLE
from .safe_text import safe_text

LEVEL_STYLES = {"info": INFO_STYLE, "warn": APPROVAL_STYLE, "danger": DENY_STYLE}
LEVEL_WORDS = {"info": "INFO", "warn": "WARN", "danger": "DANGER"}
LINE_MAX = 400


def level_badge(level: str) -> Text:
    return Text(f" {LEVEL_WORDS.get(level, level.upper()):<6} ", style=LEVEL_STYLES.get(level, ""))


def _wrapping(value: Any, style: str = "") -> Text:
    """Literal, control-safe text that may wrap over several lines of the panel."""
    return Text(safe_text(value, LINE_MAX).plain, style=style, end="")


def advice_prompt(advice: Advice, tool: str | None) -> Text:
    """One advisor entry as it appears in the panel."""
    head = Text.assemble(level_badge(advice.level), " ", end="")
    where = (
        f"#{advice.override_index} {tool or '?'}" if advice.override_index is not None else "policy"
    )
    head.append(f"{where} · {advice.field}: ", style="bold")
    head.append_text(_wrapping(advice.message))
    lines = [head]
    lines.append(Text.assemble(("   why: ", "dim"), _wrapping(advice.why)))
    instead = Text.assemble(("   instead: ", "dim"), _wrapping(advice.alternative))
    if advice.tightened is not None:
        instead.append("  [t] tighten", style="bold reverse")
    lines.append(instead)
    return Text("\n").join(lines)


class AdvisorPanel(Widget):
    """Lists the advisor's warnings; `highlighted_advice` is what `t` tightens."""

    class TightenRequested(Message):
        """The operator chose an entry (enter / click): apply its tightened override."""

        def __init__(self, advice: Advice) -> None:
            super().__init__()
            self.advice = advice

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self._advice: list[Advice] = []

    def compose(self) -> ComposeResult:
        yield Static("", id="advisor-title")
        yield OptionList(id="advisor-list")

    @property
    def advice(self) -> list[Advice]:
        return list(self._advice)

    @property
    def highlighted_advice(self) -> Advice | None:
        option_list = self.query_one(OptionList)
        index = option_list.highlighted
        if index is None or not 0 <= index < len(self._advice):
            return None
        return self._advice[index]

    def show(self, advice: list[Advice], overrides: list[dict[str, Any]]) -> None:
        """Replace the entries, keeping the highlight near where it was."""
        self._advice = list(advice)
        option_list = self.query_one(OptionList)
        previous = option_list.highlighted
        option_list.clear_options()
        tools = {i: o.get("tool") for i, o in enumerate(overrides)}
        option_list.add_options(
            Option(advice_prompt(a, tools.get(a.override_index)), id=f"advice-{n}")
            for n, a in enumerate(self._advice)
        )
        if self._advice:
            option_list.highlighted = min(previous or 0, len(self._advice) - 1)
        self._update_title()

    def highlight_override(self, index: int) -> None:
        """Move the highlight to the first entry about override `index`, if there is one."""
        for n, a in enumerate(self._advice):
            if a.override_index == index:
                self.query_one(OptionList).highlighted = n
                return

    def highlight_advice(self, advice: Advice) -> None:
        """Move the highlight to `advice` (an entry of the current list)."""
        for n, a in enumerate(self._advice):
            if a == advice:
                self.query_one(OptionList).highlighted = n
                return

    def _update_title(self) -> None:
        title = Text("Advisor", style="bold", end="")
        if not self._advice:
            title.append("  no warnings: every override is as narrow as the advisor can tell")
        else:
            counts = {lvl: sum(a.level == lvl for a in self._advice) for lvl in LEVEL_WORDS}
            title.append("  ")
            for lvl in ("danger", "warn", "info"):
                if counts[lvl]:
                    title.append(f" {counts[lvl]} {lvl} ", style=LEVEL_STYLES[lvl])
                    title.append(" ")
            worst = worst_level(self._advice)
            if worst == "danger":
                title.append(" — read the danger entries before saving", style="bold")
        self.query_one("#advisor-title", Static).update(title)

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        event.stop()
        index = event.option_index
        if 0 <= index < len(self._advice) and self._advice[index].tightened is not None:
            self.post_message(self.TightenRequested(self._advice[index]))
