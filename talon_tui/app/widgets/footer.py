"""The key footer every screen shows: Textual's `Footer`, without the work it redid for nothing.

Textual's footer removes and mounts all its keys again each time the screen's bindings are
refreshed, which happens on every focus move and after many key presses, even when the keys it
shows stay exactly the same; and each key it mounts starts `compact` (the key's default) before
it is bound to the footer's `compact=False`, so every key was restyled twice.

`TalonFooter` shows the same keys, in the same order and style: it recomposes only when what it
shows (the bindings shown, enabled or not, their tooltips, the palette key) changed, and its keys
start with the `compact` they get once mounted.
"""

from __future__ import annotations

from typing import Any

from textual.app import ComposeResult
from textual.screen import Screen
from textual.widgets import Footer
from textual.widgets._footer import FooterKey

Shown = tuple[tuple[Any, ...], tuple[Any, ...] | None]


class TalonFooter(Footer):
    """`Footer` that rebuilds its keys only when the keys it shows change."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._shown: Shown | None = None  # what the last compose showed; None: no keys yet

    def shown_keys(self) -> Shown:
        """Everything of the screen's bindings that `Footer.compose` draws."""
        bindings = self.screen.active_bindings
        shown = tuple(
            (binding, enabled, tooltip)
            for (_, binding, enabled, tooltip) in bindings.values()
            if binding.show
        )
        palette = None
        if self.show_command_palette and self.app.ENABLE_COMMAND_PALETTE:
            entry = bindings.get(self.app.COMMAND_PALETTE_BINDING)
            palette = None if entry is None else tuple(entry[1:])
        return shown, palette

    def compose(self) -> ComposeResult:
        self._shown = self.shown_keys() if self._bindings_ready else None
        for widget in super().compose():
            if isinstance(widget, FooterKey):
                # start as the key will be once mounted, so that it is not restyled once more:
                # a bound key as the footer (`compact=Footer.compact`), the palette key (not
                # bound) compact, its own default
                compact = True if widget.has_class("-command-palette") else self.compact
                widget.set_reactive(FooterKey.compact, compact)
                widget.set_class(compact, "-compact", update=False)
            yield widget

    def bindings_changed(self, screen: Screen[Any]) -> None:
        self._bindings_ready = True
        if not screen.app.app_focus:
            return
        if self.is_attached and screen is self.screen:
            self.call_after_refresh(self._recompose_if_changed)

    async def _recompose_if_changed(self) -> None:
        if self.is_attached and self.shown_keys() != self._shown:
            await self.recompose()
