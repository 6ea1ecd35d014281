"""Sessions: the table of sessions, `/` filter, create, close, agent keys."""

from __future__ import annotations

from typing import Any, ClassVar

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.widgets import DataTable, Header, Input, Static

from talon_tui.engine.api import SessionInfo
from talon_tui.engine.errors import TalonError

from ..widgets.badges import status_badge
from ..widgets.footer import TalonFooter
from ..widgets.safe_text import labelled, safe_text
from ..widgets.summaries import age_seconds, human_age
from .base import TalonScreen, fill_table, selected_key
from .confirm import ConfirmScreen
from .session_forms import AgentKeyScreen, NewSessionScreen


class SessionsScreen(TalonScreen):
    CSS_PATH = "sessions.tcss"
    CHANGING = frozenset({"new_session", "close_session", "reissue_key"})
    RELOAD_ON = frozenset({"run", "agent", "missed"})
    BINDINGS: ClassVar[list[BindingType]] = [
        # priority: the DataTable's own (hidden) enter would hide this one from the footer
        Binding(
            "enter",
            "open",
            "open",
            id="sessions.open",
            priority=True,
            tooltip="Runs, policy, audit, agents",
        ),
        Binding("n", "new_session", "new", id="sessions.new", tooltip="Create a session"),
        Binding("e", "edit_policy", "policy", id="sessions.policy", tooltip="Edit its policy"),
        Binding("c", "close_session", "close", id="sessions.close", tooltip="Close (confirms)"),
        Binding(
            "k",
            "reissue_key",
            "new key",
            id="sessions.key",
            tooltip="Issue a new agent key (the old one stops working)",
        ),
        Binding("slash", "filter", "filter", id="sessions.filter", tooltip="Filter the table"),
    ]

    def __init__(self, engine) -> None:
        super().__init__(engine, name="sessions")
        self.sessions: list[SessionInfo] = []

    def compose(self) -> ComposeResult:
        yield Header()
        yield Input(placeholder="/ filter by id, label, workspace, status", classes="filter")
        yield DataTable(cursor_type="row", zebra_stripes=True, id="sessions-table")
        yield Static(id="session-detail", classes="detail")
        yield TalonFooter()

    def on_mount(self) -> None:
        table = self.query_one(DataTable)
        # what tells sessions apart first; the workspace last (in full in the detail); at 80
        # columns the id is shortened, never cut off
        table.add_column("label", key="label")
        table.add_column("status", key="status")
        table.add_column("runs", key="runs")
        table.add_column("agents", key="agents")
        table.add_column("active", key="last")
        table.add_column("id", key="id")
        table.add_column("workspace", key="workspace")
        table.focus()
        super().on_mount()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "open":
            return self.focused is self.query_one(DataTable) and self.selected() is not None
        return super().check_action(action, parameters)

    def on_descendant_focus(self) -> None:
        self.refresh_bindings()  # enter opens a session only from the table

    async def load(self) -> None:
        self.sessions = await self.engine.list_sessions()
        self._show()

    def _show(self) -> None:
        needle = self.query_one(Input).value.strip().lower()
        now = self.now()
        narrow = self.has_class("-narrow")
        rows = []
        for s in self.sessions:
            if needle and not any(
                needle in str(v).lower() for v in (s.id, s.label, s.workspace, s.status)
            ):
                continue
            last = s.last_activity
            rows.append(
                (
                    s.id,
                    (
                        safe_text(s.label, 16 if narrow else 28),
                        status_badge(s.status),
                        Text(str(s.runs), justify="right"),
                        Text(str(s.agents_connected), justify="right"),
                        Text(f"{human_age(age_seconds(last, now))} ago" if last else "—"),
                        Text(s.id.removeprefix("sess_"), style="dim"),
                        safe_text(s.workspace, 12 if narrow else 36),
                    ),
                )
            )
        fill_table(self.query_one(DataTable), rows)
        self._show_detail()
        self.refresh_bindings()

    def _show_detail(self) -> None:
        session = self.selected()
        detail = self.query_one("#session-detail", Static)
        if session is None:
            if self.sessions:
                detail.update(Text("No session matches the filter (esc clears it).", "italic"))
            else:
                detail.update(Text("No sessions yet. Press n to create one.", style="italic"))
            return
        text = labelled("label", session.label, 300)
        text.append(f"  {session.id}", style="dim")
        text.append("\n")
        text.append_text(labelled("workspace", session.workspace, 300))
        text.append(f"\ncreated {session.created}", style="dim")
        if session.closed:
            text.append(f" · closed {session.closed}", style="dim")
        detail.update(text)

    def selected(self) -> SessionInfo | None:
        key = selected_key(self.query_one(DataTable))
        return next((s for s in self.sessions if s.id == key), None)

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        self._show_detail()

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        self._open_selected()

    # ------------------------------------------------------------------ filter

    def action_filter(self) -> None:
        box = self.query_one(Input)
        box.add_class("-active")
        box.focus()

    def on_input_changed(self, event: Input.Changed) -> None:
        self._show()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self.query_one(DataTable).focus()

    async def action_back(self) -> None:
        box = self.query_one(Input)
        if box.has_class("-active"):
            box.value = ""
            box.remove_class("-active")
            self.query_one(DataTable).focus()
            return
        await self.talon.action_go_back()

    # ------------------------------------------------------------------ actions

    def action_open(self) -> None:
        self.after_typed_keys(self._open_selected)  # enter is a priority binding

    def _open_selected(self) -> None:
        if self.focused is not self.query_one(DataTable):
            return
        session = self.selected()
        if session is not None:
            self.run_worker(self.talon.go("session", session.id), group="nav")

    def action_edit_policy(self) -> None:
        session = self.selected()
        if session is not None:
            self.run_worker(self.talon.go("policy", session.id), group="nav")

    def action_new_session(self) -> None:
        def created(form: dict[str, Any] | None) -> None:
            if form:
                self.create_session(form)

        self.app.push_screen(NewSessionScreen(), created)

    @work(group="change")
    async def create_session(self, form: dict[str, Any]) -> None:
        try:
            session, key = await self.engine.create_session(
                form["label"], form.get("workspace"), form.get("policy")
            )
        except TalonError as exc:
            self.notify(str(exc), title="Create session", severity="error", markup=False)
            return
        await self.load()
        table = self.query_one(DataTable)
        if session.id in table.rows:
            table.move_cursor(row=table.get_row_index(session.id), animate=False)
        self.app.push_screen(AgentKeyScreen(session.label, session.id, key))

    def action_close_session(self) -> None:
        session = self.selected()
        if session is None or session.status == "closed":
            return
        body = Text("Close session ", end="")
        body.append_text(safe_text(session.label, 60, style="bold"))
        body.append(
            f" ({session.id})?\n\nIts agent keys stop working, waiting approvals are denied and "
            "no new runs can start. The audit log keeps everything. This cannot be undone."
        )

        def answered(yes: bool | None) -> None:
            if yes:
                self._close(session.id)

        self.app.push_screen(
            ConfirmScreen("Close session", body, confirm_label="Close (y)"), answered
        )

    @work(group="change")
    async def _close(self, session_id: str) -> None:
        try:
            await self.engine.close_session(session_id)
        except TalonError as exc:
            self.notify(str(exc), title="Close session", severity="error", markup=False)
            return
        self.notify(f"session {session_id} closed", markup=False)
        await self.load()

    def action_reissue_key(self) -> None:
        session = self.selected()
        if session is None or session.status == "closed":
            return
        body = Text("Issue a new agent key for ", end="")
        body.append_text(safe_text(session.label, 60, style="bold"))
        body.append("?\n\nThe current key is revoked at once: a connected agent using it must ")
        body.append("reconnect with the new key.")

        def answered(yes: bool | None) -> None:
            if yes:
                self._reissue(session)

        self.app.push_screen(ConfirmScreen("New agent key", body), answered)

    @work(group="change")
    async def _reissue(self, session: SessionInfo) -> None:
        try:
            key = await self.engine.issue_agent_key(session.id)
        except TalonError as exc:
            self.notify(str(exc), title="Agent key", severity="error", markup=False)
            return
        self.app.push_screen(AgentKeyScreen(session.label, session.id, key, reissued=True))
