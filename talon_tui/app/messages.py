"""Textual messages the app posts to its screens."""

from __future__ import annotations

from textual.message import Message

from talon_tui.engine.api import BusMessage


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
