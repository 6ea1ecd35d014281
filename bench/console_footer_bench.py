"""The console's footer on focus moves: CPU per move with Textual's `Footer` (the in-run
baseline) and with the console's `TalonFooter`, on the same screen in the same process.

    .venv/bin/python bench/console_footer_bench.py

A screen of 12 buttons and 10 bindings (a console screen's size); `tab` moves the focus, which
refreshes the screen's bindings. Textual's footer then removes and mounts all its keys; the
console's rebuilds them only when the keys shown change (never here). Figures are CPU seconds
(process time), so a loaded machine changes them less than wall time; the load average is
printed beside them.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from typing import ClassVar

from textual.app import App, ComposeResult
from textual.binding import Binding, BindingType
from textual.screen import Screen
from textual.widgets import Button, Footer

from talon_tui.app.widgets.footer import TalonFooter

MOVES = 200


def _screen(footer: type[Footer]) -> Screen:
    class Keys(Screen):
        BINDINGS: ClassVar[list[BindingType]] = [
            Binding(key, f"noop('{key}')", f"action {key}")
            for key in ("a", "b", "c", "d", "e", "f", "g", "h", "i", "j")
        ]

        def compose(self) -> ComposeResult:
            for n in range(12):
                yield Button(f"button {n}")
            yield footer()

        def action_noop(self, key: str) -> None:
            del key

    return Keys()


async def cpu_per_move(footer: type[Footer], moves: int = MOVES) -> float:
    """CPU seconds per `tab` (focus move and the footer's response), averaged over `moves`."""

    class Bench(App[None]):
        def on_mount(self) -> None:
            self.push_screen(_screen(footer))

    app = Bench()
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        for _ in range(10):  # warm up
            await pilot.press("tab")
            await pilot.pause()
        start = time.process_time()
        for _ in range(moves):
            await pilot.press("tab")
            await pilot.pause()
        return (time.process_time() - start) / moves


def main() -> None:
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    textual = asyncio.run(cpu_per_move(Footer))
    talon = asyncio.run(cpu_per_move(TalonFooter))
    print(
        f"focus move with the footer, CPU per move over {MOVES} moves: "
        f"Textual Footer (baseline) {textual * 1000:.2f} ms, TalonFooter {talon * 1000:.2f} ms "
        f"({talon / textual:.2f}x the baseline); load average {load}"
    )
    figures = {"textual_footer_ms": textual * 1000, "talon_footer_ms": talon * 1000}
    print(json.dumps({"console_footer_focus_move": figures, "loadavg": load}))


if __name__ == "__main__":
    main()
