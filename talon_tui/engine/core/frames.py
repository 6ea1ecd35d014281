"""The size of what crosses the pipe, and what the engine sends to admin clients (DESIGN 6).

Rule: what an agent sends can never make an admin reply unreadable. An agent's frame may be as
long as any other, and the engine copies agent data (params, reasons, run content, remembered
overrides) into approvals, audit events and replies. So, in this one place:

- `MAX_LINE_BYTES` is the longest line (without its newline) that the server and every client
  read, and that the server sends;
- agent data in admin frames is a *preview* when it is large: long strings shortened, long
  lists and objects cut, and the frame says how much is missing in a `cut` marker
  (`{"<field>": {"bytes": full size in bytes, "strings": shortened, "items": dropped}}`);
- the full value is read in pages of at most `MAX_PAGE_CHARS` characters of its JSON text
  (`approval.get`, `audit.event`), each page well inside one line;
- lists are paged by size (`more: true` says to ask again from where the page ended);
- a reply that still would not fit becomes a TOO_LARGE error answering that request, never a
  line the client cannot read.
"""

from __future__ import annotations

import json
from typing import Any

import orjson

#: the longest line, without its newline, either side of the pipe reads or the engine sends
MAX_LINE_BYTES = 1 << 20
#: agent data larger than this (as JSON) reaches admins as a preview with a `cut` marker
PREVIEW_BYTES = 8 * 1024
#: the longest string kept in a preview (several fields of one object stay visible)
PREVIEW_STRING_CHARS = 1024
#: the most characters of JSON text in one page; JSON escapes a character in at most 6 bytes
MAX_PAGE_CHARS = 128 * 1024
#: what a paged list reply may fill, leaving room for the reply's own fields
LIST_BUDGET_BYTES = MAX_LINE_BYTES - 64 * 1024
_PREVIEW_DEPTH = 16

assert MAX_PAGE_CHARS * 6 < LIST_BUDGET_BYTES


def dumps(value: Any) -> bytes:
    """Compact JSON bytes as the pipe sends them (the same encoder as the server's)."""
    try:
        return orjson.dumps(value)
    except TypeError:
        return json.dumps(value, ensure_ascii=True, default=str).encode("ascii")


def json_text(value: Any) -> str:
    """The JSON text that pages are cut from: sorted keys, so every page is cut from the same
    text."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


class _Shortener:
    """Walks a JSON value keeping at most `left` characters in total and `max_str` per string."""

    def __init__(self, left: int, max_str: int) -> None:
        self.left = left
        self.max_str = max_str
        self.strings = 0
        self.items = 0

    def text(self, value: str) -> str:
        keep = max(0, min(len(value), self.max_str, self.left))
        self.left -= keep + 2
        if keep < len(value):
            self.strings += 1
            return value[:keep]
        return value

    def walk(self, value: Any, depth: int) -> Any:
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, dict):
            out: dict[str, Any] = {}
            for i, (key, item) in enumerate(value.items()):
                if self.left <= 0 or depth >= _PREVIEW_DEPTH:
                    self.items += len(value) - i
                    break
                short = self.text(str(key))
                if short in out:  # two long keys with one prefix: keep the first
                    self.items += 1
                    continue
                out[short] = self.walk(item, depth + 1)
            return out
        if isinstance(value, list | tuple):
            kept: list[Any] = []
            for i, item in enumerate(value):
                if self.left <= 0 or depth >= _PREVIEW_DEPTH:
                    self.items += len(value) - i
                    break
                kept.append(self.walk(item, depth + 1))
            return kept
        self.left -= 8
        return value


def preview(value: Any, budget: int = PREVIEW_BYTES) -> tuple[Any, dict[str, int] | None]:
    """`(value, None)` when its JSON fits `budget` bytes, else `(shortened copy, marker)`: the
    copy keeps the value's shape and fits `budget`; the marker says how much is missing."""
    full = len(dumps(value))
    if full <= budget:
        return value, None
    chars = budget
    while True:
        walker = _Shortener(chars, max(1, min(PREVIEW_STRING_CHARS, chars // 4)))
        short = walker.walk(value, 0)
        if len(dumps(short)) <= budget or chars <= 64:
            break
        chars //= 2  # escapes made it longer than counted: keep less
    return short, {"bytes": full, "strings": walker.strings, "items": walker.items}


def shape(obj: dict[str, Any], fields: tuple[str, ...]) -> dict[str, Any]:
    """A copy of `obj` whose agent-controlled `fields` are previews, with a `cut` marker naming
    each field that was shortened (`obj` itself unchanged; returned as is when nothing is cut)."""
    cut: dict[str, dict[str, int]] = {}
    out = obj
    for name in fields:
        if name not in obj:
            continue
        short, marker = preview(obj[name])
        if marker is not None:
            if out is obj:
                out = dict(obj)
            out[name] = short
            cut[name] = marker
    if cut:
        out["cut"] = {**(obj.get("cut") or {}), **cut}
    return out


#: the fields of each admin-bound object that carry agent data
APPROVAL_FIELDS = ("params", "reason", "remember_override")
EVENT_FIELDS = ("data",)
RUN_FIELDS = ("content",)
STEP_FIELDS = ("params", "output", "reason")
CHANGE_FIELDS = ("params", "reason")


def approval_view(approval: dict[str, Any]) -> dict[str, Any]:
    return shape(approval, APPROVAL_FIELDS)


def event_view(event: dict[str, Any]) -> dict[str, Any]:
    return shape(event, EVENT_FIELDS)


def bus_view(kind: str, payload: dict[str, Any]) -> dict[str, Any]:
    """The payload of a bus message as an admin's event frame carries it."""
    if kind == "audit":
        return event_view(payload)
    if kind == "approval" and isinstance(payload.get("approval"), dict):
        return {**payload, "approval": approval_view(payload["approval"])}
    if kind == "run" and isinstance(payload.get("run"), dict):
        return {**payload, "run": shape(payload["run"], RUN_FIELDS)}
    return payload


def fit_list(
    items: list[dict[str, Any]], budget: int = LIST_BUDGET_BYTES
) -> tuple[list[dict[str, Any]], bool]:
    """The longest prefix of `items` whose JSON fits `budget` (at least one item), and whether
    some were left for the next page."""
    used = 0
    for i, item in enumerate(items):
        used += len(dumps(item)) + 1
        if used > budget and i > 0:
            return items[:i], True
    return items, False


def page(value: Any, offset: int, limit: int) -> dict[str, Any]:
    """One page of `value`'s JSON text: `{json, offset, total}` (`total` in characters);
    the caller checks 0 <= offset and 0 < limit <= MAX_PAGE_CHARS."""
    text = json_text(value)
    return {"json": text[offset : offset + limit], "offset": offset, "total": len(text)}


def fit_reply(reply: dict[str, Any], op: Any) -> dict[str, Any]:
    """`reply` when it fits one line; else a TOO_LARGE error answering the same request."""
    size = len(dumps(reply))
    if size <= MAX_LINE_BYTES:
        return reply
    error = {
        "code": "TOO_LARGE",
        "message": (
            f"the reply to {op!r} would be {size} bytes, over the {MAX_LINE_BYTES}-byte frame "
            "limit; ask for less (a smaller limit, or a paged op)"
        ),
        "details": {"op": op, "bytes": size, "limit": MAX_LINE_BYTES},
    }
    return {"id": reply.get("id"), "ok": False, "error": error}
