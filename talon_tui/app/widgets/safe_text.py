"""The console's side of `talon_tui.safe_text`: agent-controlled values as literal `Text`.

Everything an agent or a skill controls (labels, params, paths, URLs, outputs, reasons quoting
them) goes through here. The string comes from the headless `talon_tui.safe_text.safe_str`, the
same function every CLI verb uses, so the console and the CLI show the same characters. The
result is a `rich.text.Text` built literally: never parsed as markup, control characters, ANSI
escapes and bidi overrides shown visibly (`\\x1b`, `\\u202e`), and long values cut with an
ellipsis. A `str` handed to a DataTable cell, a Static or a Label would be parsed as markup, so
screens never pass agent data as `str`.
"""

from __future__ import annotations

from typing import Any

from rich.text import Text

from talon_tui.safe_text import (
    DEFAULT_MAX,
    DETAIL_MAX,
    ELLIPSIS,
    as_string,
    cut,
    safe_str,
    visible,
)

__all__ = [
    "DEFAULT_MAX",
    "DETAIL_MAX",
    "ELLIPSIS",
    "as_string",
    "cut",
    "labelled",
    "safe_plain",
    "safe_text",
    "visible",
]


def safe_text(
    value: Any,
    max_len: int = DEFAULT_MAX,
    *,
    style: str = "",
    multiline: bool = False,
) -> Text:
    """Agent-controlled `value` as literal `Text`: no markup, controls visible, cut to
    `max_len` cells (0: no limit)."""
    return Text(
        safe_str(value, max_len, multiline=multiline), style=style, no_wrap=not multiline, end=""
    )


def safe_plain(value: Any, max_len: int = DEFAULT_MAX) -> str:
    """The same treatment as `safe_text`, as a plain string for places that take no Text
    (notifications with markup off, window titles)."""
    return safe_str(value, max_len)


def labelled(label: str, value: Any, max_len: int = DEFAULT_MAX, *, style: str = "") -> Text:
    """`label: value` where the label is ours (dim) and the value is agent data (literal)."""
    text = Text(f"{label}: ", style="dim", end="")
    text.append_text(safe_text(value, max_len, style=style))
    return text
