"""Reading and steadying a Textual screen in tests (shared by the screen test helpers)."""

from __future__ import annotations

from textual.app import App
from textual.widgets import Input


def no_blink(app: App) -> None:
    """Stop every input's cursor blinking, so a screenshot does not depend on timing."""
    for widget in app.screen.query(Input):
        widget.cursor_blink = False


def screen_text(app: App) -> str:
    """What the terminal shows, as plain text (one line a row)."""
    strips = app.screen._compositor.render_strips()
    return "\n".join("".join(seg.text for seg in strip).rstrip() for strip in strips)
