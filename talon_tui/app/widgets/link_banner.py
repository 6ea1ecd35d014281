"""The banner every screen shows while the console cannot reach its engine.

An attached console loses its engine when `talon serve` stops or the console that hosted the
engine quits. Until it reconnects, what a screen shows is stale: the banner says so in words
(never by colour alone), and says when nothing could be loaded at all.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from rich.text import Text
from textual.widgets import Static


@dataclass(frozen=True)
class LinkDown:
    """The engine is unreachable: since when, how many reconnects were tried, and why."""

    since: datetime
    attempts: int
    reason: str


class LinkBanner(Static):
    """One line at the top of a screen, shown only while the engine is unreachable."""

    DEFAULT_CSS = """
    LinkBanner {
        display: none;
        height: 1;
        padding: 0 1;
        background: $error;
        color: $text;
        text-style: bold;
    }
    LinkBanner.-down { display: block; }
    """

    def show(self, down: LinkDown | None, *, has_data: bool) -> None:
        """Hide (engine reachable) or say that the engine is gone and what the data is.
        Nothing is refreshed while it stays hidden (screens call this after every load)."""
        if down is None:
            if self.has_class("-down"):
                self.remove_class("-down")
                self.update("")
            return
        self.add_class("-down")
        tries = f" (try {down.attempts})" if down.attempts > 1 else ""
        data = (
            f"shown data is STALE (as of {down.since:%H:%M:%S})"
            if has_data
            else "nothing loaded yet"
        )
        self.update(Text(f"⚠ Engine disconnected — reconnecting…{tries} · {data}"))
