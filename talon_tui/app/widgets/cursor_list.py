"""What the console's Line-API lists share (`AuditList`, `RunsList`): a row cursor, paging,
g/G, mouse clicks, scrolling the cursor into view, and rendering only the visible rows from an
LRU cache of Strips. A subclass says how many rows there are, what a row looks like and what
identifies it in the cache; it keeps its own data, status line and messages."""

from __future__ import annotations

from collections.abc import Hashable
from typing import ClassVar

from rich.segment import Segment
from rich.text import Text
from textual import events
from textual.binding import Binding
from textual.cache import LRUCache
from textual.geometry import Size
from textual.reactive import reactive
from textual.scroll_view import ScrollView
from textual.strip import Strip

STRIP_CACHE = 2000


def cursor_bindings(
    prefix: str,
    *,
    top_tooltip: str,
    bottom: str,
    bottom_tooltip: str,
) -> list[Binding]:
    """The movement keys of a list, with ids `<prefix>.up` … so `?` names the list."""
    return [
        Binding("up,k", "cursor(-1)", "up", id=f"{prefix}.up", show=False),
        Binding("down,j", "cursor(1)", "down", id=f"{prefix}.down", show=False),
        Binding("pageup", "page(-1)", "page up", id=f"{prefix}.page_up", show=False),
        Binding("pagedown", "page(1)", "page down", id=f"{prefix}.page_down", show=False),
        Binding("g,home", "top", "top", id=f"{prefix}.top", tooltip=top_tooltip, show=False),
        Binding(
            "G,end", "bottom", bottom, id=f"{prefix}.bottom", tooltip=bottom_tooltip, show=False
        ),
    ]


class CursorList(ScrollView, can_focus=True):
    """A focusable list of rows with a cursor, drawn line by line (sized for 10^6 rows).

    Subclasses define `row_count`, `row_text(index)` and `row_key(index)` (what makes a cached
    Strip stale: the row's identity and any version of its content); `HEADER_LINES` rows on
    top stay in place and are drawn by `render_header`."""

    HEADER_LINES: ClassVar[int] = 0
    COMPONENT_CLASSES: ClassVar[set[str]] = {"cursor-list--cursor"}
    DEFAULT_CSS = """
    CursorList {
        border: round $primary 50%;
        border-title-color: $text;
        border-subtitle-color: $text-muted;
        height: 1fr;
        scrollbar-gutter: stable;
    }
    CursorList:focus { border: round $primary; }
    CursorList > .cursor-list--cursor { background: $accent 40%; }
    CursorList:focus > .cursor-list--cursor { background: $accent 70%; }
    """

    cursor: reactive[int] = reactive(0, always_update=True, init=False)

    def __init__(
        self, *, name: str | None = None, id: str | None = None, classes: str | None = None
    ) -> None:
        super().__init__(name=name, id=id, classes=classes)
        self._strips: LRUCache[tuple[Hashable, int, bool], Strip] = LRUCache(STRIP_CACHE)

    # ------------------------------------------------------------------ what a subclass says

    @property
    def row_count(self) -> int:
        raise NotImplementedError(f"{type(self).__name__} must define row_count")

    def row_text(self, index: int) -> Text:
        raise NotImplementedError(f"{type(self).__name__} must define row_text")

    def row_key(self, index: int) -> Hashable:
        raise NotImplementedError(f"{type(self).__name__} must define row_key")

    def render_header(self, y: int, width: int) -> Strip:
        """Header line `y` (of `HEADER_LINES`), `width` cells wide before horizontal scroll."""
        return Strip.blank(width, self.rich_style)

    # ------------------------------------------------------------------ rendering

    def text_strip(self, text: Text, width: int, component: str | None = None) -> Strip:
        """`text` cut or padded to `width` cells in the list's style (plus `component`'s)."""
        text.truncate(width, overflow="ellipsis", pad=True)
        style = self.rich_style
        if component is not None:
            style += self.get_component_rich_style(component)
        segments = list(text.render(self.app.console))
        return Strip(Segment.apply_style(segments, style), text.cell_len)

    def render_line(self, y: int) -> Strip:
        scroll_x, scroll_y = self.scroll_offset
        width = self.scrollable_content_region.width
        if y < self.HEADER_LINES:
            return self.render_header(y, width + scroll_x).crop(scroll_x, scroll_x + width)
        index = scroll_y + y - self.HEADER_LINES
        if index >= self.row_count:
            return Strip.blank(width, self.rich_style)
        selected = index == self.cursor
        key = (self.row_key(index), width + scroll_x, selected)
        strip = self._strips.get(key)
        if strip is None:
            component = "cursor-list--cursor" if selected else None
            strip = self.text_strip(self.row_text(index).copy(), width + scroll_x, component)
            self._strips[key] = strip
        return strip.crop(scroll_x, scroll_x + width)

    def _update_size(self) -> None:
        self.virtual_size = Size(
            self.scrollable_content_region.width, self.row_count + self.HEADER_LINES
        )
        self.refresh()

    def on_resize(self, event: events.Resize) -> None:
        # Textual calls every class's handler, so subclasses hook `resized` instead
        self._strips.clear()
        self._update_size()
        self.resized()

    def resized(self) -> None:
        """Hook: the list was resized (its Strips are dropped and its size updated)."""

    def notify_style_update(self) -> None:
        super().notify_style_update()
        self._strips.clear()

    # ------------------------------------------------------------------ movement

    def watch_cursor(self, old: int, new: int) -> None:
        count = self.row_count
        if count and not 0 <= new < count:
            self.cursor = max(0, min(new, count - 1))
            return
        height = self.scrollable_content_region.height - self.HEADER_LINES
        if new < self.scroll_y:
            self.scroll_to(y=new, animate=False, immediate=True)
        elif height > 0 and new >= self.scroll_y + height:
            self.scroll_to(y=new - height + 1, animate=False, immediate=True)
        self.refresh()

    def move_to(self, index: int) -> None:
        """Put the cursor on row `index` (clamped), as the operator's own move."""
        self.cursor = max(0, min(index, self.row_count - 1))

    def action_cursor(self, delta: int) -> None:
        self.move_to(self.cursor + delta)

    def action_page(self, direction: int) -> None:
        step = max(1, self.scrollable_content_region.height - self.HEADER_LINES)
        self.move_to(self.cursor + direction * step)

    def action_top(self) -> None:
        self.move_to(0)

    def action_bottom(self) -> None:
        self.move_to(self.row_count - 1)

    def on_click(self, event: events.Click) -> None:
        offset = event.get_content_offset(self)
        if offset is not None and offset.y >= self.HEADER_LINES:
            self.move_to(self.scroll_offset.y + offset.y - self.HEADER_LINES)
