"""One session: tabs Runs, Policy (read-only, `e` edits), Audit (filtered), Agents."""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.widgets import DataTable, Footer, Header, Static, TabbedContent, TabPane

from talon_tui.engine.api import AgentPeer, RunSummary, SessionInfo
from talon_tui.engine.models import Policy

from ..messages import EngineEvent
from ..widgets.badges import ALLOW_STYLE, DENY_STYLE, status_badge
from ..widgets.safe_text import labelled, safe_text
from ..widgets.summaries import age_seconds, human_age, short_ts
from .base import TalonScreen, fill_table, selected_key

TABS = ("runs", "policy", "audit", "agents")


def policy_text(policy: Policy) -> Text:
    """A read-only rendering of a policy; every value may come from an agent's intent."""
    if not policy.overrides:
        return Text(
            "No overrides: everything is denied (deny by default). Press e to add one.",
            style="italic",
        )
    text = Text(end="")
    for i, o in enumerate(policy.overrides):
        badge = Text(" ALLOW ", style=ALLOW_STYLE) if o.allow else Text(" DENY ", style=DENY_STYLE)
        text.append(f"#{i} ", style="bold")
        text.append_text(badge)
        text.append(f" {o.tool}", style="bold")
        text.append(f"  approval: {o.approval}", style="dim")
        if not o.enabled:
            text.append("  (disabled)", style="italic dim")
        text.append("\n")
        if o.note:
            text.append("   ")
            text.append_text(labelled("note", o.note, 200))
            text.append("\n")
        if o.constraints is not None:
            for key, value in o.constraints.model_dump(mode="json").items():
                text.append("   ")
                text.append_text(labelled(key, value, 200))
                text.append("\n")
        text.append("\n")
    return text


class SessionDetailScreen(TalonScreen):
    CSS_PATH = "session_detail.tcss"
    RELOAD_ON = frozenset({"run", "agent", "missed"})
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("enter", "open_run", "open run", id="session.open_run", tooltip="Step timeline"),
        Binding("e", "edit_policy", "edit policy", id="session.edit", tooltip="Policy editor"),
        Binding("r", "replay", "replay", id="session.replay", tooltip="Replay the selected run"),
        Binding("right_square_bracket", "tab(1)", "next tab", id="session.next_tab"),
        Binding("left_square_bracket", "tab(-1)", "prev tab", id="session.prev_tab"),
    ]

    def __init__(self, engine, session_id: str) -> None:
        super().__init__(engine, name="session")
        self.session_id = session_id
        self.session: SessionInfo | None = None
        self.runs: list[RunSummary] = []
        self.agents: list[AgentPeer] = []

    def compose(self) -> ComposeResult:
        from ..widgets.audit_list import AuditList

        yield Header()
        yield Static(id="session-title", classes="hint")
        with TabbedContent(id="session-tabs"):
            with TabPane("Runs", id="runs"):
                yield DataTable(cursor_type="row", zebra_stripes=True, id="runs-table")
            with TabPane("Policy", id="policy"), VerticalScroll():
                yield Static(id="policy-view")
            with TabPane("Audit", id="audit"):
                yield AuditList(self.engine.audit_path, session_id=self.session_id)
            with TabPane("Agents", id="agents"):
                yield DataTable(cursor_type="row", id="agents-table")
        yield Footer()

    def on_mount(self) -> None:
        runs = self.query_one("#runs-table", DataTable)
        for col in ("run", "status", "steps", "allow", "deny", "approval", "started", "content"):
            runs.add_column(col, key=col)
        agents = self.query_one("#agents-table", DataTable)
        for col in ("connection", "subject", "uid", "pid", "connected"):
            agents.add_column(col, key=col)
        runs.focus()
        super().on_mount()

    def live_event(self, event: EngineEvent) -> None:
        payload = event.payload
        if (
            event.kind == "audit"
            and payload.get("session_id") == self.session_id
            and payload.get("type") in ("policy.updated", "session.closed")
        ):
            self.request_reload()

    async def load(self) -> None:
        sessions = await self.engine.list_sessions()
        self.session = next((s for s in sessions if s.id == self.session_id), None)
        self.runs = await self.engine.list_runs(self.session_id)
        self.agents = [
            a for a in await self.engine.list_agents() if a.session_id == self.session_id
        ]
        policy = await self.engine.get_policy(self.session_id)
        self._show_title()
        self._show_runs()
        self._show_agents()
        self.query_one("#policy-view", Static).update(policy_text(policy))

    def _show_title(self) -> None:
        s = self.session
        title = Text("Session ", style="bold", end="")
        if s is None:
            title.append(f"{self.session_id} (not found)")
        else:
            title.append_text(safe_text(s.label, 40, style="bold"))
            title.append(f"  {s.id}  ", style="dim")
            title.append_text(status_badge(s.status))
            title.append("  ")
            title.append_text(safe_text(s.workspace, 50, style="dim"))
        self.query_one("#session-title", Static).update(title)

    def _show_runs(self) -> None:
        now = self.now()
        rows = []
        for r in self.runs:
            rows.append(
                (
                    r.run_id,
                    (
                        Text(r.run_id),
                        status_badge(r.status),
                        Text(str(r.steps), justify="right"),
                        Text(str(r.allowed), justify="right", style="#3fb950"),
                        Text(str(r.denied), justify="right", style="#f85149"),
                        Text(str(r.approvals), justify="right", style="#e3a008"),
                        Text(f"{human_age(age_seconds(r.started, now))} ago"),
                        safe_text(r.content, 40),
                    ),
                )
            )
        fill_table(self.query_one("#runs-table", DataTable), rows)

    def _show_agents(self) -> None:
        rows = []
        for a in self.agents:
            rows.append(
                (
                    a.conn_id,
                    (
                        Text(a.conn_id),
                        safe_text(a.subject, 30),
                        Text("—" if a.uid is None else str(a.uid)),
                        Text("—" if a.pid is None else str(a.pid)),
                        Text(short_ts(a.connected_at)),
                    ),
                )
            )
        fill_table(self.query_one("#agents-table", DataTable), rows)

    # ------------------------------------------------------------------ actions

    def selected_run(self) -> str | None:
        return selected_key(self.query_one("#runs-table", DataTable))

    def action_open_run(self) -> None:
        if self.query_one(TabbedContent).active != "runs":
            return
        run_id = self.selected_run()
        if run_id:
            from .run_timeline import RunTimelineScreen

            self.app.push_screen(RunTimelineScreen(self.engine, run_id, self.session_id))

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        if event.data_table.id == "runs-table":
            event.stop()
            self.action_open_run()

    def action_edit_policy(self) -> None:
        self.run_worker(self.talon.go("policy", self.session_id), group="nav")

    def action_replay(self) -> None:
        run_id = self.selected_run() if self.query_one(TabbedContent).active == "runs" else None
        self.run_worker(self.talon.go("replay", run_id), group="nav")

    def action_tab(self, step: int) -> None:
        tabs = self.query_one(TabbedContent)
        index = TABS.index(tabs.active) if tabs.active in TABS else 0
        tabs.active = TABS[(index + step) % len(TABS)]
        pane = tabs.get_pane(tabs.active)
        focusable = [w for w in pane.query("*") if w.can_focus]
        if focusable:
            focusable[0].focus()
