"""The console's footer (TalonFooter) rebuilds its keys only when the keys it shows change, and
mounts them without restyling each one again: Textual's Footer did both on every focus move."""

from __future__ import annotations

from typing import ClassVar

from textual.app import App, ComposeResult
from textual.binding import Binding, BindingType
from textual.dom import DOMNode
from textual.screen import Screen
from textual.widgets import Button
from textual.widgets._footer import FooterKey

from talon_tui.app.widgets.footer import TalonFooter


class TwoButtons(Screen):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("s", "save", "save"),
        Binding("d", "delete", "delete"),
        Binding("h", "hidden", "hidden", show=False),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.can_delete = True

    def compose(self) -> ComposeResult:
        yield Button("one", id="one")
        yield Button("two", id="two")
        yield TalonFooter()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "delete" and not self.can_delete:
            return None  # shown, disabled
        return True


class FooterApp(App[None]):
    def __init__(self) -> None:
        super().__init__()
        self.restyled: list[DOMNode] = []

    def on_mount(self) -> None:
        self.push_screen(TwoButtons())

    def update_styles(self, node: DOMNode, animate: bool = True) -> None:
        self.restyled.append(node)
        super().update_styles(node, animate=animate)


def keys(app: App) -> list[FooterKey]:
    return list(app.screen.query_one(TalonFooter).query(FooterKey))


async def test_a_focus_move_that_shows_the_same_keys_keeps_them():
    app = FooterApp()
    async with app.run_test(size=(80, 10)) as pilot:
        await pilot.pause()
        app.screen.query_one("#one", Button).focus()
        await pilot.pause()
        before = keys(app)
        assert [k.description for k in before] == ["save", "delete", "palette"]
        app.screen.query_one("#two", Button).focus()
        await pilot.pause()
        await pilot.pause()
        after = keys(app)
        # the same widgets: nothing removed, mounted or restyled for the same keys
        assert all(a is b for a, b in zip(after, before, strict=True))


async def test_a_key_that_changes_is_shown_changed():
    app = FooterApp()
    async with app.run_test(size=(80, 10)) as pilot:
        await pilot.pause()
        screen = app.screen
        assert isinstance(screen, TwoButtons)
        delete = next(k for k in keys(app) if k.description == "delete")
        assert not delete.has_class("-disabled")
        screen.can_delete = False
        screen.refresh_bindings()
        await pilot.pause()
        await pilot.pause()
        delete = next(k for k in keys(app) if k.description == "delete")
        assert delete.has_class("-disabled")
        assert [k.description for k in keys(app)] == ["save", "delete", "palette"]


async def test_new_keys_are_not_restyled_one_by_one():
    """A key starts with the `compact` it gets once mounted (a bound key the footer's, the
    palette key its own default): no key is restyled once more when it is set at mount."""
    app = FooterApp()
    async with app.run_test(size=(80, 10)) as pilot:
        await pilot.pause()
        screen = app.screen
        assert isinstance(screen, TwoButtons)
        app.restyled.clear()
        screen.can_delete = False  # a change: the footer rebuilds its keys
        screen.refresh_bindings()
        await pilot.pause()
        await pilot.pause()
        assert next(k for k in keys(app) if k.description == "delete").has_class("-disabled")
        for key in keys(app):
            assert key.has_class("-compact") == key.has_class("-command-palette")
        assert [n for n in app.restyled if isinstance(n, FooterKey)] == []
