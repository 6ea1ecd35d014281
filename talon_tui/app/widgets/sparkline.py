"""Decisions per minute as three coloured sparklines (allow, deny, approval)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime

from rich.text import Text
from textual.widget import Widget

from .badges import ALLOW_COLOR, APPROVAL_COLOR, DENY_COLOR

BARS = " ▁▂▃▄▅▆▇█"
SERIES = (
    ("ALLOW", "allow", ALLOW_COLOR),
    ("DENY", "deny", DENY_COLOR),
    ("REQUIRE_APPROVAL", "approval", APPROVAL_COLOR),
)
KEEP_MINUTES = 240


def parse_ts(ts: str | None) -> datetime | None:
    """An audit timestamp (`2026-11-25T17:00:00.123456Z`) as an aware datetime."""
    if not ts:
        return None
    try:
        return datetime.fromisoformat(ts.replace("Z", "+00:00"))
    except ValueError:
        return None


def minute_of(dt: datetime) -> int:
    return int(dt.astimezone(UTC).timestamp()) // 60


def bars(values: list[int]) -> str:
    """One block character per value, scaled to the largest value."""
    top = max(values, default=0)
    if top <= 0:
        return BARS[1] * len(values) if values else ""
    out = []
    for v in values:
        out.append(BARS[0] if v == 0 else BARS[max(1, round(v / top * (len(BARS) - 1)))])
    return "".join(out)


class DecisionSparkline(Widget):
    """Counts policy decisions per minute and draws as many minutes as fit (up to
    KEEP_MINUTES), newest on the right edge."""

    DEFAULT_CSS = """
    DecisionSparkline { height: 3; }
    """

    def __init__(self, clock: Callable[[], datetime], **kwargs) -> None:
        super().__init__(**kwargs)
        self._clock = clock
        self._counts: dict[str, Counter[int]] = {name: Counter() for name, _, _ in SERIES}

    def add(self, decision: str | None, ts: str | None) -> None:
        """Count one decision at its audit timestamp."""
        dt = parse_ts(ts)
        if decision not in self._counts or dt is None:
            return
        self._counts[decision][minute_of(dt)] += 1
        self.refresh()

    def total(self) -> int:
        """Decisions counted so far (all series)."""
        return sum(sum(c.values()) for c in self._counts.values())

    def clear(self) -> None:
        for c in self._counts.values():
            c.clear()

    def series(self, decision: str, minutes: int) -> list[int]:
        now = minute_of(self._clock())
        counts = self._counts[decision]
        for old in [m for m in counts if m < now - KEEP_MINUTES]:
            del counts[old]
        return [counts.get(m, 0) for m in range(now - minutes + 1, now + 1)]

    def render(self) -> Text:
        label_w = 18
        minutes = max(5, min(KEEP_MINUTES, self.size.width - label_w))
        text = Text(no_wrap=True, end="")
        for i, (decision, name, color) in enumerate(SERIES):
            values = self.series(decision, minutes)
            text.append(f"{name:<9}", style=f"bold {color}")
            text.append(f"{values[-1]:>4}/min ", style=color)
            text.append(bars(values), style=color)
            if i < len(SERIES) - 1:
                text.append("\n")
        return text
