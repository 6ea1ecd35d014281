"""The one place that turns agent-controlled values into something the screen may show.

Everything an agent or a skill controls (labels, params, paths, URLs, outputs, reasons quoting
them) goes through here. The result is a `rich.text.Text` built literally: never parsed as
markup, control characters, ANSI escapes and bidi overrides shown visibly (`\\x1b`, `\\u202e`),
and long values cut with an ellipsis. A `str` handed to a DataTable cell, a Static or a Label
would be parsed as markup, so screens never pass agent data as `str`.
"""

from __future__ import annotations

import json
import unicodedata
from typing import Any

from rich.cells import cell_len, get_character_cell_size
from rich.text import Text

ELLIPSIS = "…"
DEFAULT_MAX = 120
DETAIL_MAX = 20_000

# Characters that could move the cursor, clear the screen, change colours or reorder text, and
# invisible ones that hide text: every Unicode format character (category Cf: bidi overrides,
# zero-width joiners, BOM, soft hyphen, tag characters) plus the line/paragraph separators.
_INVISIBLE = {0x2028, 0x2029}
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t", "\x1b": "\\x1b"}


def _escape_char(ch: str, multiline: bool) -> str:
    if multiline and ch == "\n":
        return ch
    if not _needs_escape(ch):
        return ch
    if ch in _NAMED:
        return _NAMED[ch]
    code = ord(ch)
    if code < 0x100:
        return f"\\x{code:02x}"
    if code <= 0xFFFF:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"


def _needs_escape(ch: str) -> bool:
    code = ord(ch)
    if code < 0x20 or 0x7F <= code < 0xA0:
        return True
    if code < 0xAD:
        return False
    return (
        code in _INVISIBLE
        or 0xD800 <= code < 0xE000  # lone surrogates
        or unicodedata.category(ch) == "Cf"
    )


def visible(value: str, *, multiline: bool = False) -> str:
    """`value` with every control character written out (`\\x1b`, `\\n` unless multiline)."""
    if not any(_needs_escape(ch) for ch in value):
        return value
    return "".join(_escape_char(ch, multiline) for ch in value)


def as_string(value: Any, *, indent: int | None = None) -> str:
    """A readable string form: strings as they are, everything else as compact JSON."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    try:
        return json.dumps(value, ensure_ascii=False, indent=indent, sort_keys=True, default=str)
    except (TypeError, ValueError):
        return repr(value)


def cut(value: str, max_len: int) -> str:
    """`value` cut to `max_len` terminal cells, the last one an ellipsis when anything was cut.

    A wide (CJK) character takes two cells and is never split in half.
    """
    if max_len <= 0 or cell_len(value) <= max_len:
        return value
    out: list[str] = []
    width = 0
    for ch in value:
        size = get_character_cell_size(ch)
        if width + size > max_len - 1:
            break
        out.append(ch)
        width += size
    return "".join(out) + ELLIPSIS


def safe_text(
    value: Any,
    max_len: int = DEFAULT_MAX,
    *,
    style: str = "",
    multiline: bool = False,
) -> Text:
    """Agent-controlled `value` as literal `Text`: no markup, controls visible, cut to
    `max_len` cells (0: no limit).

    Only a prefix of a huge value is looked at, so a 1 MB string costs no more than a short one.
    """
    raw = as_string(value, indent=2 if multiline and not isinstance(value, str) else None)
    head = raw[: max_len + 1] if max_len > 0 else raw
    shown = visible(head, multiline=multiline)
    if max_len > 0 and (len(raw) > len(head) or cell_len(shown) > max_len):
        shown = cut(shown, max_len)
        if not shown.endswith(ELLIPSIS):  # the prefix fitted but the value goes on
            shown = cut(shown, max(cell_len(shown) - 1, 1))
            if not shown.endswith(ELLIPSIS):
                shown += ELLIPSIS
    return Text(shown, style=style, no_wrap=not multiline, end="")


def safe_plain(value: Any, max_len: int = DEFAULT_MAX) -> str:
    """The same treatment as `safe_text`, as a plain string for places that take no Text
    (notifications with markup off, window titles)."""
    return safe_text(value, max_len).plain


def labelled(label: str, value: Any, max_len: int = DEFAULT_MAX, *, style: str = "") -> Text:
    """`label: value` where the label is ours (dim) and the value is agent data (literal)."""
    text = Text(f"{label}: ", style="dim", end="")
    text.append_text(safe_text(value, max_len, style=style))
    return text
