"""Servers: registered third-party MCP servers, their process state (running, crashed,
restarts), each tool's pin, and the one-key re-approval of a changed (quarantined) tool after
its diff. Everything an upstream server says is shown literally (safe_text)."""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.widgets import DataTable, Header, Static

from talon_tui.engine.api import McpServerInfo, McpToolPin
from talon_tui.engine.errors import TalonError

from ..widgets.badges import ALLOW_STYLE, APPROVAL_STYLE, DENY_STYLE, NEUTRAL_STYLE
from ..widgets.footer import TalonFooter
from ..widgets.safe_text import labelled, safe_plain, safe_text
from .base import TalonScreen, fill_table, selected_key

STATUS_STYLES = {
    "running": ALLOW_STYLE,
    "crashed": DENY_STYLE,
    "failed": DENY_STYLE,
    "starting": APPROVAL_STYLE,
    "stopped": NEUTRAL_STYLE,
}


def status_badge(status: str) -> Text:
    return Text(f" {status} ", style=STATUS_STYLES.get(status, NEUTRAL_STYLE))


def pin_badge(pin: McpToolPin | None) -> Text:
    if pin is None:
        return Text("not listed yet", style="dim")
    if pin.status == "quarantined":
        return Text(" changed ", style=DENY_STYLE)
    return Text(" pinned ", style=ALLOW_STYLE)


class ServersScreen(TalonScreen):
    CSS_PATH = "servers.tcss"
    CHANGING = frozenset({"approve"})
    RELOAD_ON = frozenset({"missed"})
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding(
            "a",
            "approve",
            "approve change",
            id="servers.approve",
            tooltip="Pin the changed tool's new description and schema (shown as a diff)",
        ),
        Binding("ctrl+r", "reload", "reload", id="servers.reload", show=False),
    ]

    def __init__(self, engine) -> None:
        super().__init__(engine, name="servers")
        self.servers: list[McpServerInfo] = []

    def compose(self) -> ComposeResult:
        yield Header()
        yield DataTable(cursor_type="row", zebra_stripes=True, id="servers-table")
        with VerticalScroll(id="server-detail", classes="detail"):
            yield Static(id="server-body")
        yield TalonFooter()

    def on_mount(self) -> None:
        table = self.query_one(DataTable)
        for col in ("server", "status", "restarts", "tool", "pin"):
            table.add_column(col, key=col)
        table.focus()
        super().on_mount()

    def live_event(self, event) -> None:
        if event.kind == "audit" and event.payload.get("type", "").startswith("mcp."):
            self.request_reload()

    async def load(self) -> None:
        self.servers = await self.engine.list_mcp_servers()
        rows = []
        for s in self.servers:
            head = (
                safe_text(s.name, 20),
                status_badge(s.status),
                Text(str(s.restarts)),
            )
            if not s.tools:
                rows.append((f"{s.name}/", (*head, Text("—", style="dim"), pin_badge(None))))
            for t in s.tools:
                rows.append((f"{s.name}/{t.tool}", (*head, safe_text(t.tool, 32), pin_badge(t))))
        fill_table(self.query_one(DataTable), rows)
        self._show_detail()

    def action_reload(self) -> None:
        self.reload()

    def selected(self) -> tuple[McpServerInfo | None, McpToolPin | None]:
        key = selected_key(self.query_one(DataTable))
        if not isinstance(key, str):
            return None, None
        name, _, tool = key.partition("/")
        server = next((s for s in self.servers if s.name == name), None)
        pin = next((t for t in server.tools if t.tool == tool), None) if server else None
        return server, pin

    def _show_detail(self) -> None:
        server, pin = self.selected()
        body = self.query_one("#server-body", Static)
        if server is None:
            body.update(
                Text(
                    "No MCP servers registered. Register one with "
                    "`talon mcp add NAME -- CMD ARGS…`.",
                    style="italic",
                )
            )
            return
        text = Text.assemble(status_badge(server.status), " ")
        text.append_text(safe_text(server.name, 40, style="bold"))
        text.append(f"  restarts {server.restarts}\n", style="dim")
        text.append_text(labelled("command", " ".join(server.command), 300))
        env = ", ".join(f"{k} ({v})" for k, v in server.env.items()) or "—"
        text.append("\n")
        text.append_text(labelled("env", env, 300))
        if server.last_error:
            text.append("\n")
            text.append_text(labelled("last error", server.last_error, 300))
        if pin is not None:
            text.append("\n\n")
            text.append_text(pin_badge(pin))
            text.append(" ")
            text.append_text(safe_text(pin.tool, 60, style="bold"))
            text.append(f"  {pin.sha256}\n", style="dim")
            if pin.status == "quarantined":
                text.append(
                    "changed since it was pinned: calls are refused until approved (a)\n",
                    style="bold",
                )
                for d in pin.diff():
                    style = "green" if d.startswith("+") else "red" if d.startswith("-") else ""
                    text.append_text(safe_text(d, 400, style=style))
                    text.append("\n")
            else:
                text.append_text(labelled("description", pin.description, 2000))
        body.update(text)

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        self._show_detail()

    def action_approve(self) -> None:
        server, pin = self.selected()
        if server is None or pin is None or pin.status != "quarantined":
            self.notify("pick a changed tool (marked changed) to approve", markup=False)
            return
        self.approve(server.name, pin.tool)

    @work(group="change")
    async def approve(self, server: str, tool: str) -> None:
        try:
            pin = await self.engine.approve_mcp_tool(server, tool)
        except TalonError as exc:
            self.notify(safe_plain(str(exc)), title="Approve", severity="error", markup=False)
            return
        self.notify(safe_plain(f"approved {server} {tool}: pinned {pin.sha256[:19]}"), markup=False)
        await self.load()
