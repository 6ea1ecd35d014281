"""Byte-offset line index of a JSON Lines file, built tail first (toolong's design).

Pure file scanning, no Textual: the audit list asks for the newest lines first (so the first
paint needs only the last block of the file), then walks backwards in batches that double in
size until it reaches byte 0, while new lines appended to the end are scanned forwards. Only
complete lines (ending in a newline) are indexed; a line being written is picked up once its
newline lands. A predicate over the raw line bytes keeps only matching lines (filters), so a
filtered view is a list of offsets too, never a list of parsed events.
"""

from __future__ import annotations

import os
from array import array
from collections.abc import Callable
from dataclasses import dataclass, replace
from itertools import accumulate
from typing import Any

import orjson

LinePredicate = Callable[[bytes], bool]

FIRST_BATCH = 64 * 1024
MAX_BATCH = 8 * 1024 * 1024


def complete_end(fd: int) -> int:
    """The offset just after the last newline of the file (0 if it has none)."""
    size = os.fstat(fd).st_size
    pos, block = size, 64 * 1024
    while pos > 0:
        start = max(0, pos - block)
        data = os.pread(fd, pos - start, start)
        nl = data.rfind(b"\n")
        if nl >= 0:
            return start + nl + 1
        pos = start
    return 0


def _starts(data: bytes, base: int, pred: LinePredicate | None) -> array[int]:
    """Offsets of the lines in `data` (which ends with a newline), `base` being its offset."""
    lines = data[:-1].split(b"\n")
    starts = accumulate((len(line) + 1 for line in lines[:-1]), initial=base)
    if pred is None:
        return array("Q", starts)
    return array("Q", (s for s, line in zip(starts, lines, strict=True) if pred(line)))


def scan_back(
    fd: int, hi: int, size: int, pred: LinePredicate | None = None
) -> tuple[int, array[int], int]:
    """(new hi, offsets, bytes read) of the lines that end at or before `hi` (a line start),
    reading about `size` bytes back from it; the first partial line is left for the next call."""
    while True:
        lo = max(0, hi - size)
        data = os.pread(fd, hi - lo, lo)
        if lo == 0:
            first = 0
            break
        nl = data.find(b"\n")
        if 0 <= nl < len(data) - 1:
            first = nl + 1
            break
        size *= 2  # a line longer than the block: read further back
    body = data[first:]
    if not body:
        return lo + first, array("Q"), len(data)
    return lo + first, _starts(body, lo + first, pred), len(data)


def scan_forward(
    fd: int, start: int, end: int, pred: LinePredicate | None = None
) -> tuple[int, array[int]]:
    """(new start, offsets) of the complete lines in [start, end)."""
    if end <= start:
        return start, array("Q")
    data = os.pread(fd, end - start, start)
    nl = data.rfind(b"\n")
    if nl < 0:
        return start, array("Q")
    return start + nl + 1, _starts(data[: nl + 1], start, pred)


def read_line(fd: int, offset: int, limit: int = 0) -> bytes:
    """The line at `offset` without its newline (reads on until the newline)."""
    chunk = 4096
    parts: list[bytes] = []
    pos = offset
    while True:
        data = os.pread(fd, chunk, pos)
        if not data:
            break
        nl = data.find(b"\n")
        if nl >= 0:
            parts.append(data[:nl])
            break
        parts.append(data)
        pos += len(data)
        chunk = min(chunk * 4, 1 << 22)
        if limit and pos - offset > limit:
            break
    return b"".join(parts)


@dataclass(frozen=True)
class AuditFilter:
    """What the operator asked to see. Every field narrows; empty means "everything"."""

    session_id: str | None = None
    run_id: str | None = None
    type: str | None = None
    decision: str | None = None  # ALLOW | DENY | REQUIRE_APPROVAL
    text: str = ""

    @property
    def empty(self) -> bool:
        return not (self.session_id or self.run_id or self.type or self.decision or self.text)

    def describe(self) -> str:
        parts = []
        for name in ("session_id", "run_id", "type", "decision"):
            value = getattr(self, name)
            if value:
                parts.append(f"{name.removesuffix('_id')}:{value}")
        if self.text:
            parts.append(f'"{self.text}"')
        return " ".join(parts)

    def without_session(self) -> AuditFilter:
        return replace(self, session_id=None)

    def predicate(self) -> LinePredicate | None:
        """A test on raw line bytes: cheap byte checks first, a parse only for candidates."""
        if self.empty:
            return None
        needles = []
        if self.session_id:
            needles.append(orjson.dumps(self.session_id))
        if self.run_id:
            needles.append(orjson.dumps(self.run_id))
        if self.type:
            needles.append(b'"type":' + orjson.dumps(self.type))
        decision_hint = bool(self.decision)
        text = self.text.lower().encode("utf-8")
        flt = self

        def match(line: bytes) -> bool:
            for needle in needles:
                if needle not in line:
                    return False
            if decision_hint and b'"decision":' not in line and b'"type":"approval.' not in line:
                return False
            if text and text not in line.lower():
                return False
            if not (flt.session_id or flt.run_id or flt.type or flt.decision):
                return True
            try:
                event = orjson.loads(line)
            except orjson.JSONDecodeError:
                return False
            return type(event) is dict and flt.matches(event)

        return match

    def matches(self, event: dict[str, Any]) -> bool:
        if self.session_id and event.get("session_id") != self.session_id:
            return False
        if self.run_id and event.get("run_id") != self.run_id:
            return False
        if self.type and event.get("type") != self.type:
            return False
        if self.decision and event_decision(event) != self.decision:
            return False
        return True


FILTER_KEYS = {"session": "session_id", "run": "run_id", "type": "type", "decision": "decision"}
DECISION_WORDS = {"allow": "ALLOW", "deny": "DENY", "approval": "REQUIRE_APPROVAL"}


def parse_filter(query: str, base: AuditFilter | None = None) -> AuditFilter:
    """`type:policy.decision decision:deny session:sess_… run:run_… free words`."""
    values: dict[str, str | None] = {}
    if base is not None:
        values = {k: getattr(base, k) for k in FILTER_KEYS.values()}
    words = []
    for word in query.split():
        key, sep, value = word.partition(":")
        if sep and key.lower() in FILTER_KEYS and value:
            name = FILTER_KEYS[key.lower()]
            if name == "decision":
                value = DECISION_WORDS.get(value.lower(), value.upper())
            values[name] = value
        else:
            words.append(word)
    return AuditFilter(text=" ".join(words), **values)


def event_decision(event: dict[str, Any]) -> str | None:
    """The decision an event carries: policy.decision's, approval.decided's, or APPROVAL."""
    data = event.get("data")
    if not isinstance(data, dict):
        return None
    etype = event.get("type")
    if etype == "policy.decision":
        decision = data.get("decision")
        return decision if isinstance(decision, str) else None
    if etype == "approval.decided":
        return "ALLOW" if data.get("allow") is True else "DENY"
    if etype == "approval.requested":
        return "REQUIRE_APPROVAL"
    return None
