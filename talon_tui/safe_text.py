"""The one place that turns agent-controlled values into text a terminal may show, headless.

Everything an agent or a skill controls (labels, params, paths, URLs, outputs, reasons quoting
them) reaches the operator's terminal through here: the console (`app/widgets/safe_text.py`
wraps `safe_str` in a literal `rich.text.Text`) and every CLI verb (`terminal_line`,
`dumps_json`). Control characters, ANSI/OSC escapes, C1 controls and bidi overrides are
written out visibly (`\\x1b`, `\\u202e`), long values are cut to terminal cells with an
ellipsis. Imports neither textual nor rich, so headless verbs stay light.
"""

from __future__ import annotations

import json
import unicodedata
from typing import Any

ELLIPSIS = "…"
DEFAULT_MAX = 120
DETAIL_MAX = 20_000

# Characters that could move the cursor, clear the screen, change colours or reorder text, and
# invisible ones that hide text: every Unicode format character (category Cf: bidi overrides,
# zero-width joiners, BOM, soft hyphen, tag characters) plus the line/paragraph separators.
_INVISIBLE = {0x2028, 0x2029}
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t", "\x1b": "\\x1b"}


def needs_escape(ch: str) -> bool:
    """True for a character a terminal may act on or that hides or reorders text: C0, DEL, C1,
    lone surrogates, every format character (bidi marks, overrides and isolates, zero-width
    characters) and the line/paragraph separators."""
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


def _escape_char(ch: str, multiline: bool) -> str:
    if multiline and ch == "\n":
        return ch
    if not needs_escape(ch):
        return ch
    if ch in _NAMED:
        return _NAMED[ch]
    code = ord(ch)
    if code < 0x100:
        return f"\\x{code:02x}"
    if code <= 0xFFFF:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"


def visible(value: str, *, multiline: bool = False) -> str:
    """`value` with every control character written out (`\\x1b`, `\\n` unless multiline)."""
    if not any(needs_escape(ch) for ch in value):
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
    except (TypeError, ValueError, RecursionError):
        return repr(value)


def char_cells(ch: str) -> int:
    """Terminal cells one character takes: 0 for combining marks, 2 for wide (CJK, emoji)."""
    if ord(ch) < 0x300:
        return 1 if ch.isprintable() or ord(ch) >= 0xA0 else 0
    if unicodedata.combining(ch) or unicodedata.category(ch) in ("Mn", "Me", "Cf"):
        return 0
    return 2 if unicodedata.east_asian_width(ch) in ("W", "F") else 1


def cell_len(value: str) -> int:
    """Terminal cells `value` takes."""
    if value.isascii():
        return len(value)
    return sum(char_cells(ch) for ch in value)


def cut(value: str, max_len: int) -> str:
    """`value` cut to `max_len` terminal cells, the last one an ellipsis when anything was cut.

    A wide (CJK) character takes two cells and is never split in half.
    """
    if max_len <= 0 or cell_len(value) <= max_len:
        return value
    out: list[str] = []
    width = 0
    for ch in value:
        size = char_cells(ch)
        if width + size > max_len - 1:
            break
        out.append(ch)
        width += size
    return "".join(out) + ELLIPSIS


def safe_str(value: Any, max_len: int = DEFAULT_MAX, *, multiline: bool = False) -> str:
    """Agent-controlled `value` as a string safe to print: controls visible, cut to `max_len`
    cells (0: no limit). Only a prefix of a huge value is looked at, so a 1 MB string costs no
    more than a short one."""
    raw = as_string(value, indent=2 if multiline and not isinstance(value, str) else None)
    head = raw[: max_len + 1] if max_len > 0 else raw
    shown = visible(head, multiline=multiline)
    if max_len > 0 and (len(raw) > len(head) or cell_len(shown) > max_len):
        shown = cut(shown, max_len)
        if not shown.endswith(ELLIPSIS):  # the prefix fitted but the value goes on
            shown = cut(shown, max(cell_len(shown) - 1, 1))
            if not shown.endswith(ELLIPSIS):
                shown += ELLIPSIS
    return shown


def terminal_line(value: Any, max_len: int = 0) -> str:
    """One line for a CLI to print: `safe_str` with no length limit unless asked (a CLI's output
    may be piped into a file, so it is not cut to a screen)."""
    return safe_str(value, max_len)


def escape_json_text(text: str) -> str:
    """JSON text with every character `needs_escape` flags written as a `\\uXXXX` escape.

    Valid on any `json.dumps` output: outside strings JSON holds only ASCII structure and
    whitespace, and inside a string `\\uXXXX` decodes to the same character, so the result
    parses back to the same value.
    """
    if not any(needs_escape(ch) and ch not in "\n" for ch in text):
        return text
    out: list[str] = []
    for ch in text:
        if ch == "\n" or not needs_escape(ch):  # newlines outside strings are indentation
            out.append(ch)
            continue
        code = ord(ch)
        if code > 0xFFFF:
            code -= 0x10000
            out.append(f"\\u{0xD800 + (code >> 10):04x}\\u{0xDC00 + (code & 0x3FF):04x}")
        else:
            out.append(f"\\u{code:04x}")
    return "".join(out)


def dumps_json(obj: Any, *, indent: int | None = None, sort_keys: bool = True) -> str:
    """`json.dumps` for a terminal: readable Unicode kept, every control, C1, bidi and
    invisible character escaped (`\\u202e`, `\\u009b`), still valid JSON that round-trips."""
    text = json.dumps(obj, ensure_ascii=False, indent=indent, sort_keys=sort_keys, default=str)
    return escape_json_text(text)
