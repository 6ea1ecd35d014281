"""The last notifications in full: a toast shows two lines at most (it never covers table
rows), so every toast is also kept here, newest first (palette: "messages")."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from datetime import datetime
from typing import ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.content import Content
from textual.screen import ModalScreen
from textual.widgets import Static, TextArea

from ..widgets.safe_text import visible

MESSAGES_KEPT = 100


@dataclass(frozen=True)
class Message:
    at: datetime
    severity: str
    title: str
    text: str  # plain: markup already applied, control characters written out


class MessageLog:
    """The console's last `MESSAGES_KEPT` notifications."""

    def __init__(self) -> None:
        self.items: deque[Message] = deque(maxlen=MESSAGES_KEPT)

    def add(self, at: datetime, severity: str, title: str, message: str, markup: bool) -> None:
        plain = Content.from_markup(message).plain if markup else message
        self.items.append(Message(at, severity, visible(title), visible(plain, multiline=True)))

    def document(self) -> str:
        if not self.items:
            return "No notifications yet."
        lines = []
        for m in reversed(self.items):
            head = f"{m.at:%H:%M:%S}  {m.severity}"
            lines.append(f"{head}  {m.title}" if m.title else head)
            lines.extend(f"    {line}" for line in m.text.split("\n"))
            lines.append("")
        return "\n".join(lines)


class MessagesScreen(ModalScreen[None]):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,q", "close", "close", id="messages.close"),
    ]
    DEFAULT_CSS = """
    MessagesScreen { align: center middle; }
    MessagesScreen > Vertical {
        width: 90%; max-width: 120; height: 90%;
        border: thick $primary; background: $surface; padding: 0 1;
    }
    MessagesScreen TextArea { height: 1fr; }
    MessagesScreen.-narrow > Vertical, MessagesScreen.-short > Vertical {
        width: 100%; height: 100%;
    }
    """

    def __init__(self, log: MessageLog) -> None:
        super().__init__()
        self.log_ = log

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Static(
                Text.assemble(
                    ("Messages", "bold"), ("  the last notifications in full, newest first", "dim")
                )
            )
            yield TextArea(self.log_.document(), read_only=True, soft_wrap=True)
            yield Static(Text("esc close", style="dim"))

    def on_mount(self) -> None:
        self.query_one(TextArea).focus()

    def action_close(self) -> None:
        self.dismiss(None)
