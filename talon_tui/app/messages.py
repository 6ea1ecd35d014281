"""Textual messages the app posts to its screens."""

from __future__ import annotations

from textual.message import Message

from talon_tui.engine.api import BusMessage

from .widgets.link_banner import LinkDown


class EngineEvent(Message):
    """One message from the engine's event bus (audit event, approval, run or agent change)."""

    def __init__(self, bus: BusMessage) -> None:
        super().__init__()
        self.bus = bus

    @property
    def kind(self) -> str:
        return self.bus.kind

    @property
    def payload(self) -> dict:
        return self.bus.payload


class EngineLink(Message):
    """The console lost its engine (`down` set) or reached it again (`down` None)."""

    def __init__(self, down: LinkDown | None) -> None:
        super().__init__()
        self.down = down
