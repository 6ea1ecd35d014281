"""One session: tabs Runs, Policy (read-only, `e` edits), Audit (filtered), Agents."""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.widgets import DataTable, Header, Input, Static, TabbedContent, TabPane

from talon_tui.engine.api import AgentPeer, SessionInfo
from talon_tui.engine.policy.models import Policy

from ..messages import EngineEvent
from ..widgets.audit_list import AuditList
from ..widgets.badges import ALLOW_STYLE, DENY_STYLE, status_badge
from ..widgets.footer import TalonFooter
from ..widgets.runs_list import RunsList
from ..widgets.safe_text import labelled, safe_text
from ..widgets.summaries import short_ts
from .audit import EventDetailScreen
from .base import TalonScreen, fill_table
from .run_compare import RunCompareScreen

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


class RunFilterInput(Input):
    """The runs `/` filter; esc goes back to the list (the filter stays)."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "leave", "back to runs", id="session.filter_leave"),
    ]

    def action_leave(self) -> None:
        if not self.value:
            self.display = False
        self.screen.query_one(RunsList).focus()


class SessionDetailScreen(TalonScreen):
    CSS_PATH = "session_detail.tcss"
    RELOAD_ON = frozenset({"agent", "missed"})  # runs are updated in place from the bus
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("slash", "filter_runs", "filter", id="session.filter", tooltip="Filter runs"),
        Binding("e", "edit_policy", "edit policy", id="session.edit", tooltip="Policy editor"),
        Binding("r", "replay", "replay", id="session.replay", tooltip="Replay the selected run"),
        Binding(
            "R",
            "replay_session",
            "replay session",
            id="session.replay_session",
            show=False,
            tooltip="Every run of this session on one time axis",
        ),
        Binding(
            "c",
            "compare",
            "compare",
            id="session.compare",
            show=False,
            tooltip="Compare two runs: c on the first, then c on the second",
        ),
        Binding("right_square_bracket", "tab(1)", "next tab", id="session.next_tab"),
        Binding("left_square_bracket", "tab(-1)", "prev tab", id="session.prev_tab"),
    ]

    def __init__(self, engine, session_id: str) -> None:
        super().__init__(engine, name="session")
        self.session_id = session_id
        self.session: SessionInfo | None = None
        self._runs_loaded = False
        self.agents: list[AgentPeer] = []
        self.compare_from: str | None = None

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static(id="session-title", classes="hint")
        with TabbedContent(id="session-tabs"):
            with TabPane("Runs", id="runs"):
                yield RunFilterInput(
                    placeholder="filter runs: status:error,denied words…", id="runs-filter"
                )
                yield RunsList(self.engine, self.session_id, id="runs-list")
            with TabPane("Policy", id="policy"), VerticalScroll():
                yield Static(id="policy-view")
            with TabPane("Audit", id="audit"):
                yield AuditList(self.engine.audit_path, session_id=self.session_id)
            with TabPane("Agents", id="agents"):
                yield DataTable(cursor_type="row", id="agents-table")
        yield TalonFooter()

    def on_mount(self) -> None:
        self.query_one("#runs-filter", Input).display = False
        agents = self.query_one("#agents-table", DataTable)
        for col in ("connection", "subject", "uid", "pid", "connected"):
            agents.add_column(col, key=col)
        self.query_one(RunsList).focus()
        super().on_mount()

    def live_event(self, event: EngineEvent) -> None:
        payload = event.payload
        if event.kind == "run" and isinstance(payload.get("run"), dict):
            self.query_one(RunsList).run_changed(str(payload.get("action")), payload["run"])
            return
        if event.kind == "missed":
            self._runs_loaded = False  # the bus dropped messages: fetch the runs again
        if (
            event.kind == "audit"
            and payload.get("session_id") == self.session_id
            and payload.get("type") in ("policy.updated", "session.closed")
        ):
            self.request_reload()

    async def load(self) -> None:
        sessions = await self.engine.list_sessions()
        self.session = next((s for s in sessions if s.id == self.session_id), None)
        self.agents = [
            a for a in await self.engine.list_agents() if a.session_id == self.session_id
        ]
        policy = await self.engine.get_policy(self.session_id)
        self._show_title()
        if not self._runs_loaded:
            self._runs_loaded = True
            await self.query_one(RunsList).load()
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
        run = self.query_one(RunsList).selected
        return run.run_id if run is not None else None

    def on_runs_list_run_chosen(self, event: RunsList.RunChosen) -> None:
        event.stop()
        go = self.talon.go("run", run_id=event.run.run_id, session_id=self.session_id)
        self.run_worker(go, group="nav")

    def on_audit_list_event_chosen(self, event: AuditList.EventChosen) -> None:
        event.stop()
        self.app.push_screen(EventDetailScreen(event.event, event.offset))

    def action_filter_runs(self) -> None:
        tabs = self.query_one(TabbedContent)
        if tabs.active != "runs":
            tabs.active = "runs"
        box = self.query_one("#runs-filter", Input)
        box.display = True
        box.focus()

    def on_input_changed(self, event: Input.Changed) -> None:
        if event.input.id == "runs-filter":
            event.stop()
            self.query_one(RunsList).set_filter(event.value)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        if event.input.id == "runs-filter":
            event.stop()
            self.query_one(RunsList).focus()

    def action_edit_policy(self) -> None:
        self.run_worker(self.talon.go("policy", self.session_id), group="nav")

    def action_replay(self) -> None:
        run_id = self.selected_run() if self.query_one(TabbedContent).active == "runs" else None
        self.run_worker(self.talon.go("replay", run_id), group="nav")

    def action_replay_session(self) -> None:
        self.run_worker(self.talon.go("session-replay", self.session_id), group="nav")

    def action_compare(self) -> None:
        """`c` marks the selected run; `c` on another run compares the two."""
        run_id = self.selected_run() if self.query_one(TabbedContent).active == "runs" else None
        if run_id is None:
            return
        if self.compare_from is None or self.compare_from == run_id:
            self.compare_from = run_id
            self.notify(f"compare {run_id} with…: select another run and press c", markup=False)
            return
        first, self.compare_from = self.compare_from, None
        self.app.push_screen(RunCompareScreen(self.engine, first, run_id))

    def action_tab(self, step: int) -> None:
        tabs = self.query_one(TabbedContent)
        index = TABS.index(tabs.active) if tabs.active in TABS else 0
        tabs.active = TABS[(index + step) % len(TABS)]
        pane = tabs.get_pane(tabs.active)
        focusable = [w for w in pane.query("*") if w.can_focus]
        if focusable:
            focusable[0].focus()
