"""The audit log as a live list (toolong's design, sized for a million events).

A thread worker builds a byte-offset index of the jsonl file tail first, in batches that double
in size, so the first paint reads one 64 KiB block however long the log is. The Line API
renders only the visible lines, from LRU caches of formatted rows and of Strips; a cache miss
loads a prefetch window of lines below it in one read. New lines are picked up by polling the
file size every 25 ms (and at once when the screen forwards an engine audit event); the list
follows them unless the operator moved away, in which case it counts them as pending.
Filters produce another offset list by the same scan, never a list of parsed events.
"""

from __future__ import annotations

import os
from array import array
from pathlib import Path
from typing import Any, ClassVar

import orjson
from rich.text import Text
from textual import events, work
from textual.binding import Binding, BindingType
from textual.cache import LRUCache
from textual.message import Message
from textual.worker import get_current_worker

from ...engine.console_api import (
    FIRST_BATCH,
    MAX_BATCH,
    AuditFilter,
    complete_end,
    read_line,
    scan_back,
    scan_forward,
)
from .audit_row import NARROW_BELOW, event_row, unreadable_row
from .cursor_list import CursorList, cursor_bindings

POLL_SECONDS = 0.025
PREFETCH = 120
ROW_CACHE = 4000
MAX_FOLLOW_READ = 8 << 20  # bytes read per poll on the UI thread; more goes to the worker


class AuditList(CursorList):
    """Every event of an audit log file (or of one session), newest at the bottom."""

    BINDINGS: ClassVar[list[BindingType]] = [
        *cursor_bindings(
            "audit_list",
            top_tooltip="First event",
            bottom="end",
            bottom_tooltip="Last event; follow",
        ),
        Binding(
            "enter", "open", "JSON", id="audit_list.open", tooltip="The full event with its hashes"
        ),
    ]

    class Changed(Message):
        """The list grew, was filtered, or its follow state changed."""

        def __init__(self, audit_list: AuditList) -> None:
            super().__init__()
            self.audit_list = audit_list

        @property
        def control(self) -> AuditList:
            return self.audit_list

    class Indexed(Message):
        """The index reached the top of the file (every matching line is known)."""

        def __init__(self, audit_list: AuditList) -> None:
            super().__init__()
            self.audit_list = audit_list

    class EventChosen(Message):
        """`enter` on an event: its full dict and byte offset."""

        def __init__(self, event: dict[str, Any], offset: int) -> None:
            super().__init__()
            self.event = event
            self.offset = offset

    def __init__(
        self,
        audit_path: Path,
        *,
        session_id: str | None = None,
        name: str | None = None,
        id: str | None = None,
        classes: str | None = None,
    ) -> None:
        super().__init__(name=name, id=id, classes=classes)
        self.audit_path = Path(audit_path)
        self.session_id = session_id
        self.labels: dict[str, str] = {}  # session id -> label, shown instead of the id
        self.filter = AuditFilter(session_id=session_id)
        self.offsets = array("Q")
        self.following = True
        self.pending = 0
        self.complete = False
        self.missing = False
        self._fd: int | None = None
        self._inode: tuple[int, int] | None = None
        self._back_hi = 0  # lines before this offset are not indexed yet
        self._fwd_end = 0  # lines up to this offset are indexed
        self._generation = 0
        self._rows: LRUCache[int, Text] = LRUCache(ROW_CACHE)
        self._formatted_width = 0
        self._jump_seq: int | None = None

    # ------------------------------------------------------------------ lifecycle

    def on_mount(self) -> None:
        self.rebuild()
        self.set_interval(POLL_SECONDS, self.poll, name="audit-follow")

    def on_unmount(self) -> None:
        self._close()

    def _close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def _open(self) -> int | None:
        try:
            fd = os.open(self.audit_path, os.O_RDONLY)
        except FileNotFoundError:
            self.missing = True
            return None
        self.missing = False
        st = os.fstat(fd)
        self._inode = (st.st_dev, st.st_ino)
        return fd

    def rebuild(self, flt: AuditFilter | None = None) -> None:
        """Index the file again from scratch (a new filter, or the file was replaced)."""
        if flt is not None:
            self.filter = flt
        self._generation += 1
        self._close()
        self._rows.clear()
        self._strips.clear()
        self.offsets = array("Q")
        self.pending = 0
        self.following = True
        self.complete = False
        self._fd = self._open()
        if self._fd is None:
            self._back_hi = self._fwd_end = 0
            self._update_size()
            self._post_changed()
            return
        end = complete_end(self._fd)
        self._fwd_end = end
        pred = self.filter.predicate()
        # the first block synchronously, so the first frame already shows the tail
        hi, found, _ = scan_back(self._fd, end, FIRST_BATCH, pred)
        self.offsets = found
        self._back_hi = hi
        self.cursor = max(0, len(found) - 1)
        self._update_size()
        self.scroll_end(animate=False, immediate=True)
        self._post_changed()
        if hi == 0:
            self._index_done()
        else:
            self._scan_back_worker(self._generation, self._fd, hi, pred)

    @work(thread=True, exclusive=True, group="audit-index", exit_on_error=False)
    def _scan_back_worker(self, generation: int, fd: int, hi: int, pred: Any) -> None:
        worker = get_current_worker()
        size = FIRST_BATCH * 2
        while hi > 0 and not worker.is_cancelled:
            try:
                hi, found, _ = scan_back(fd, hi, size, pred)
            except OSError:
                return  # the fd was closed by a rebuild
            if worker.is_cancelled:
                return
            self.app.call_from_thread(self._prepend, generation, found, hi)
            size = min(size * 2, MAX_BATCH)

    def _prepend(self, generation: int, found: array, hi: int) -> None:
        if generation != self._generation:
            return
        self._back_hi = hi
        if found:
            self.offsets = found + self.offsets
            added = len(found)
            self._update_size()
            if self.following:
                self.scroll_end(animate=False, immediate=True)
                self.cursor = len(self.offsets) - 1
            else:
                self.scroll_to(y=self.scroll_y + added, animate=False, immediate=True)
                self.cursor += added
        if hi == 0:
            self._index_done()
        self._post_changed()

    def _index_done(self) -> None:
        self.complete = True
        self._show_status()  # a log that fits the first batch is done before any worker runs
        self.post_message(self.Indexed(self))
        if self._jump_seq is not None:
            seq, self._jump_seq = self._jump_seq, None
            self.jump_to_seq(seq)

    # ------------------------------------------------------------------ following

    def poll(self) -> None:
        """Pick up lines appended since the last look; rebuild if the file was replaced."""
        if self._fd is None:
            if self.audit_path.exists():
                self.rebuild()
            return
        try:
            st = os.stat(self.audit_path)
        except FileNotFoundError:
            return
        if (st.st_dev, st.st_ino) != self._inode or st.st_size < self._fwd_end:
            self.rebuild()
            return
        if st.st_size == self._fwd_end:
            return
        end = min(st.st_size, self._fwd_end + MAX_FOLLOW_READ)
        new_end, found = scan_forward(self._fd, self._fwd_end, end, self.filter.predicate())
        if new_end == self._fwd_end and end < st.st_size:
            new_end, found = scan_forward(self._fd, self._fwd_end, st.st_size, None)
            found = array("Q", (o for o in found if self._matches_at(o)))
        self._fwd_end = new_end
        if found:
            self._append(found)

    def _matches_at(self, offset: int) -> bool:
        pred = self.filter.predicate()
        return pred is None or (self._fd is not None and pred(read_line(self._fd, offset)))

    def _append(self, found: array) -> None:
        self.offsets.extend(found)
        self._update_size()
        if self.following:
            self.cursor = len(self.offsets) - 1
            self.scroll_end(animate=False, immediate=True)
        else:
            self.pending += len(found)
        self._post_changed()

    # ------------------------------------------------------------------ reading lines

    def _load_rows(self, index: int) -> None:
        """Format lines `index .. index+PREFETCH` into the row cache (one read when contiguous)."""
        if self._fd is None:
            return
        stop = min(len(self.offsets), index + PREFETCH)
        wanted = [i for i in range(index, stop) if self.offsets[i] not in self._rows]
        if not wanted:
            return
        first, last = wanted[0], wanted[-1]
        contiguous = self.filter.empty
        if contiguous:
            start = self.offsets[first]
            end = self.offsets[last + 1] if last + 1 < len(self.offsets) else self._fwd_end
            block = os.pread(self._fd, end - start, start)
            lines = block.split(b"\n")
            for i in range(first, last + 1):
                offset = self.offsets[i]
                self._rows[offset] = self._format(offset, lines[i - first])
        else:
            for i in wanted:
                offset = self.offsets[i]
                self._rows[offset] = self._format(offset, read_line(self._fd, offset))

    def _format(self, offset: int, line: bytes) -> Text:
        try:
            event = orjson.loads(line)
        except orjson.JSONDecodeError as exc:
            return unreadable_row(offset, str(exc))
        if type(event) is not dict:
            return unreadable_row(offset, "not a JSON object")
        return event_row(
            event,
            show_session=self.session_id is None,
            labels=self.labels,
            narrow=self.size.width < NARROW_BELOW,
        )

    def set_labels(self, labels: dict[str, str]) -> None:
        """Show sessions by these labels (id -> label) instead of their ids."""
        if labels != self.labels:
            self.labels = dict(labels)
            self._rows.clear()
            self._strips.clear()
            self.refresh()

    @property
    def row_count(self) -> int:
        return len(self.offsets)

    def row_key(self, index: int) -> int:
        return self.offsets[index]

    def row_text(self, index: int) -> Text:
        """The formatted row of line `index` (for tests and the detail view)."""
        offset = self.offsets[index]
        row = self._rows.get(offset)
        if row is None:
            self._load_rows(index)
            row = self._rows.get(offset) or Text("")
        return row

    def event_at(self, index: int) -> dict[str, Any] | None:
        if self._fd is None or not 0 <= index < len(self.offsets):
            return None
        try:
            event = orjson.loads(read_line(self._fd, self.offsets[index]))
        except orjson.JSONDecodeError:
            return None
        return event if type(event) is dict else None

    @property
    def selected_event(self) -> dict[str, Any] | None:
        return self.event_at(self.cursor)

    # ------------------------------------------------------------------ rendering and movement

    def resized(self) -> None:
        if (self.size.width < NARROW_BELOW) != (self._formatted_width < NARROW_BELOW):
            self._rows.clear()  # the row layout depends on the width
        self._formatted_width = self.size.width
        if self.following:
            self.scroll_end(animate=False, immediate=True)

    def move_to(self, index: int) -> None:
        """The operator moved: following stops above the last line, resumes on it."""
        super().move_to(index)
        at_end = self.cursor >= len(self.offsets) - 1
        if at_end != self.following:
            self.following = at_end
            if at_end:
                self.pending = 0
            self._post_changed()

    def action_bottom(self) -> None:
        self.pending = 0
        super().action_bottom()
        self.following = True
        self.scroll_end(animate=False, immediate=True)
        self._post_changed()

    def action_open(self) -> None:
        event = self.selected_event
        if event is not None:
            self.post_message(self.EventChosen(event, self.offsets[self.cursor]))

    def _on_mouse_scroll_up(self, event: events.MouseScrollUp) -> None:
        if self.following:
            self.following = False
            self._post_changed()

    def jump_to_seq(self, seq: int) -> bool:
        """Put the cursor on the event with `seq` (waits for the index if it is still building)."""
        if not self.complete:
            self._jump_seq = seq
            return False
        index = self._find_seq(seq)
        if index is None:
            return False
        self.move_to(index)
        height = self.scrollable_content_region.height
        self.scroll_to(y=max(0, index - height // 2), animate=False, immediate=True)
        return True

    def _find_seq(self, seq: int) -> int | None:
        """Index of the line whose event has `seq`: seqs only grow, so bisect; the lines near
        a damaged spot are then searched one by one."""
        lo, hi = 0, len(self.offsets) - 1
        while lo <= hi:
            mid = (lo + hi) // 2
            event = self.event_at(mid)
            value = event.get("seq") if event else None
            if not isinstance(value, int):
                break
            if value == seq:
                return mid
            if value < seq:
                lo = mid + 1
            else:
                hi = mid - 1
        start = max(0, min(lo, len(self.offsets)) - 50)
        for index in range(start, min(len(self.offsets), start + 100)):
            event = self.event_at(index)
            if event and event.get("seq") == seq:
                return index
        return None

    # ------------------------------------------------------------------ status

    def _post_changed(self) -> None:
        self._show_status()
        self.post_message(self.Changed(self))

    def _show_status(self) -> None:
        count = len(self.offsets)
        title = f"{count:,} events" if self.complete else f"{count:,} events (indexing…)"
        if self.missing:
            title = "no audit log yet"
        if not self.filter.empty:
            shown = self.filter if self.session_id is None else self.filter.without_session()
            if not shown.empty:
                title += f" · filter {shown.describe()}"
        self.border_title = Text(title, no_wrap=True, end="")
        if self.following:
            self.border_subtitle = "following"
        elif self.pending:
            self.border_subtitle = f"{self.pending:,} new below · G to follow"
        else:
            self.border_subtitle = "paused · G to follow"
