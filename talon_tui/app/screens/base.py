"""What every Talon screen of the console shares: the engine, the clock, read-only mode,
k9s keys (g/G, esc), reloading its data in a worker when engine events arrive, and the banner
that says the engine is unreachable and the data shown is stale."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any, ClassVar, cast

from textual.binding import Binding, BindingType
from textual.message import Message
from textual.screen import Screen
from textual.widgets import DataTable
from textual.widgets.data_table import CellDoesNotExist

from talon_tui.engine.api import EngineAPI
from talon_tui.engine.console_api import utcnow
from talon_tui.engine.errors import EngineUnreachable, TalonError

from ..messages import EngineEvent, EngineLink
from ..navigation import Navigator
from ..widgets.link_banner import LinkBanner


class TalonScreen(Screen):
    """A screen over `EngineAPI` that reloads itself (throttled) on relevant engine events."""

    # actions that change state: hidden and refused in --readonly
    CHANGING: ClassVar[frozenset[str]] = frozenset()
    # bus kinds that make this screen reload
    RELOAD_ON: ClassVar[frozenset[str]] = frozenset({"run", "approval", "agent", "missed"})

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("g", "top", "top", id="nav.top", show=False, tooltip="First row"),
        Binding("G", "bottom", "bottom", id="nav.bottom", show=False, tooltip="Last row"),
        Binding("escape", "back", "back", id="nav.back", show=False, tooltip="Previous screen"),
    ]

    def __init__(self, engine: EngineAPI, *, name: str | None = None) -> None:
        super().__init__(name=name)
        self.engine = engine
        self._reload_pending = False
        self.loads = 0  # completed loads, for tests and the bench
        self.loaded_ok = 0  # loads that reached the engine (the data shown came from it)

    @property
    def talon(self) -> Navigator:
        """The app, as the navigator screens open each other through (`talon.go(name, …)`)."""
        return cast(Navigator, self.app)

    @property
    def readonly(self) -> bool:
        return bool(getattr(self.app, "readonly", False))

    def now(self) -> datetime:
        clock = getattr(self.app, "clock", None)
        return clock() if clock else utcnow()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action in self.CHANGING and self.readonly:
            return False
        return True

    # ------------------------------------------------------------------ loading

    def on_mount(self) -> None:
        self.show_link()
        self.reload()

    def on_screen_resume(self) -> None:
        self.show_link()
        if self.loads:
            self.reload()

    # ------------------------------------------------------------------ engine link

    def show_link(self) -> None:
        """Show whether the engine is reachable: the banner, and `-stale` on the screen so the
        data shown is never taken for current."""
        down = getattr(self.app, "link_down", None)
        self.set_class(down is not None, "-stale")
        banners = list(self.query(LinkBanner).results())
        if down is not None and not banners:
            # mounted the first time it is needed: a screen whose engine never went away
            # keeps exactly its own layout
            banners = [LinkBanner()]
            self.mount(banners[0], before=0 if self.children else None)
        for banner in banners:
            banner.show(down, has_data=self.loaded_ok > 0)

    def on_engine_link(self, message: EngineLink) -> None:
        self.show_link()
        if message.down is None:
            self.reload()  # reached again: fresh data replaces the stale

    def reload(self) -> None:
        self.run_worker(self._load_guarded, exclusive=True, group="load", exit_on_error=False)

    async def _load_guarded(self) -> None:
        try:
            await self.load()
            self.loaded_ok += 1
        except EngineUnreachable:
            pass  # the engine is gone: the banner says so and the data stays marked stale
        except TalonError as exc:
            self.notify(str(exc), title="Engine", severity="error", markup=False)
        self.loads += 1
        self.show_link()

    async def load(self) -> None:
        """Fetch this screen's data from the engine and show it."""

    def on_engine_event(self, event: EngineEvent) -> None:
        self.live_event(event)
        if event.kind in self.RELOAD_ON:
            self.request_reload()

    def request_reload(self) -> None:
        """Reload soon: at once in tests (interval 0), else at most once per interval."""
        if not self.is_current:
            return  # reloaded on resume instead
        interval = getattr(self.app, "refresh_interval", 0.3)
        if interval <= 0:
            self.reload()
        elif not self._reload_pending:
            self._reload_pending = True
            self.set_timer(interval, self._reload_later)

    def _reload_later(self) -> None:
        self._reload_pending = False
        self.reload()

    def live_event(self, event: EngineEvent) -> None:
        """Hook for screens that update in place from an event instead of reloading."""

    # ------------------------------------------------------------------ k9s movement

    class AfterTypedKeys(Message):
        """Follows the keys typed before it up the same path (focused widget, its parents, the
        screen), so that its callback runs after their bindings did."""

        def __init__(self, callback: Callable[[], object]) -> None:
            super().__init__()
            self.callback = callback

    def after_typed_keys(self, callback: Callable[[], object]) -> None:
        """Run `callback` once the keys typed before this one have been handled. A priority
        binding sees its key at once, while the keys before it still travel from the focused
        widget up to the app, where their bindings run (`down enter` in one burst would open the
        row the cursor is leaving); so every priority action that reads the cursor or the focus
        acts from here."""
        (self.focused or self).post_message(self.AfterTypedKeys(callback))

    def on_talon_screen_after_typed_keys(self, message: AfterTypedKeys) -> None:
        message.stop()
        # the keys ahead of it have passed the screen: they are in the app's queue, bindings next
        self.app.call_later(message.callback)

    async def action_back(self) -> None:
        await self.talon.action_go_back()

    def _table(self) -> DataTable | None:
        focused = self.focused
        if isinstance(focused, DataTable):
            return focused
        tables = list(self.query(DataTable).results())
        return tables[0] if tables else None

    def action_top(self) -> None:
        table = self._table()
        if table is not None and table.row_count:
            table.move_cursor(row=0)

    def action_bottom(self) -> None:
        table = self._table()
        if table is not None and table.row_count:
            table.move_cursor(row=table.row_count - 1)


def selected_key(table: DataTable) -> Any:
    """The row key value under the cursor, or None on an empty table."""
    if not table.row_count:
        return None
    try:
        return table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value
    except CellDoesNotExist:
        return None


def fill_table(table: DataTable, rows: list[tuple[str, tuple]]) -> None:
    """Replace the rows of `table`, keeping the cursor on the same key when it still exists."""
    keep = selected_key(table)
    table.clear()
    for key, cells in rows:
        table.add_row(*cells, key=key)
    if keep is not None:
        for index, (key, _) in enumerate(rows):
            if key == keep:
                table.move_cursor(row=index, animate=False)
                break
