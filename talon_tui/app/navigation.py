"""Opening screens by name: `app.go("run", run_id=…)`.

`app.py` owns the one registry (name → `ScreenSpec`, whose factory builds the screen); screens
and the command palette reach it through `Navigator.go` and never import `app.py` or each
other's screens to navigate (an import-linter contract keeps the console free of cycles).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar

from textual.app import App
from textual.screen import Screen

from talon_tui.engine.api import EngineAPI


@dataclass(frozen=True)
class ScreenSpec:
    """How to open one named screen.

    `factory(app, **args)` builds it. `arg` is the keyword that the one argument of `:name ARG`
    (and of `go(name, ARG)`) fills; when `required` is set (the hint shown when it is missing),
    the current screen's attribute of that name is used, else the operator is sent to
    `fallback`. A `top_level` screen replaces the view stack above the dashboard; the others
    stack on top so `esc` returns. `listed=False` keeps a screen out of `:` and the palette."""

    help: str
    factory: Callable[..., Screen[Any]] | None  # None: "quit"
    arg: str | None = None
    arg_help: str | None = None
    required: str | None = None
    fallback: str | None = None
    top_level: bool = False
    listed: bool = True


class Navigator(App[None]):
    """An app whose screens are opened by name through `registry` (see app.py's TalonApp)."""

    registry: ClassVar[Mapping[str, ScreenSpec]] = {}

    engine: EngineAPI
    readonly: bool
    clock: Callable[[], datetime]
    refresh_interval: float
    withdraw_approval_toasts: Callable[[], None]  # take down "approval needed" toasts

    def jump_menu(self) -> dict[str, tuple[str, str | None]]:
        """name -> (one-line help, argument help) of the screens `:` and the palette offer."""
        return {
            name: (spec.help, spec.arg_help) for name, spec in self.registry.items() if spec.listed
        }

    def palette_targets(self) -> list[tuple[str, str]]:
        """(name, help) of the listed screens that open without an argument."""
        return [
            (name, spec.help)
            for name, spec in self.registry.items()
            if spec.listed and spec.required is None
        ]

    def make_screen(self, name: str, arg: str | None = None, /, **args: Any) -> Screen | None:
        """A new screen for `name`, or None with a notification."""
        spec = self.registry.get(name)
        if spec is None or spec.factory is None:
            listed = ", ".join(self.jump_menu())
            self.notify(f"no screen called {name!r}; try one of: {listed}", markup=False)
            return None
        if spec.arg is not None and arg is not None:
            args[spec.arg] = arg
        if spec.required is not None and spec.arg is not None and not args.get(spec.arg):
            args[spec.arg] = getattr(self.screen, spec.arg, None)
            if not args[spec.arg]:
                noun = spec.arg.removesuffix("_id").replace("_", " ")
                self.notify(spec.required, title=f":{name} needs a {noun}", markup=False)
                return None
        return spec.factory(self, **args)

    async def go(self, name: str, arg: str | None = None, /, **args: Any) -> None:
        """Open the screen called `name` (see `ScreenSpec`) with the factory's `args`."""
        spec = self.registry.get(name)
        if spec is not None and spec.factory is None:
            self.exit()
            return
        screen = self.make_screen(name, arg, **args)
        if screen is None:
            if spec is not None and spec.fallback is not None:
                await self.go(spec.fallback)
            return
        if spec is not None and spec.top_level:
            while len(self.screen_stack) > 2:
                await self.pop_screen()
            if type(self.screen) is type(screen):
                return
        await self.push_screen(screen)

    async def action_go(self, name: str, arg: str | None = None) -> None:
        await self.go(name, arg)

    async def action_go_back(self) -> None:
        if len(self.screen_stack) > 2:
            await self.pop_screen()
