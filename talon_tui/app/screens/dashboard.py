"""Dashboard: what is happening right now, at a glance."""

from __future__ import annotations

from typing import Any, ClassVar

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.widgets import DataTable, Header, Static

from talon_tui.engine.api import EngineStatus, RunSummary, SessionInfo
from talon_tui.engine.errors import TalonError

from ..messages import EngineEvent
from ..widgets.badges import APPROVAL_COLOR, DENY_COLOR, decision_badge, status_badge
from ..widgets.footer import TalonFooter
from ..widgets.safe_text import safe_text
from ..widgets.sparkline import DecisionSparkline
from ..widgets.summaries import age_seconds, human_age, intent_target, short_ts
from .base import TalonScreen, selected_key

DENIALS_SHOWN = 12
SPARK_EVENTS = 5000  # decisions read from the log at start to draw the last hour


class DashboardScreen(TalonScreen):
    CSS_PATH = "dashboard.tcss"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("s", "app.go('sessions')", "sessions", id="dashboard.sessions"),
        Binding("a", "app.go('approvals')", "approvals", id="dashboard.approvals"),
        Binding("u", "app.go('audit')", "audit", id="dashboard.audit"),
        # hidden to keep the footer within 80 columns: also on 5 and :skills, listed by `?`
        Binding("k", "app.go('skills')", "skills", id="dashboard.skills", show=False),
        Binding("v", "verify", "verify", id="dashboard.verify", tooltip="Verify the audit chain"),
        Binding("r", "app.go('replay')", "replay", id="dashboard.replay", tooltip="Replay a run"),
        # priority: the DataTable's own (hidden) enter would hide this one from the footer
        Binding(
            "enter",
            "open_run",
            "open run",
            id="dashboard.open_run",
            priority=True,
            tooltip="The steps of the selected run or of the run a denial belongs to",
        ),
    ]

    def __init__(self, engine) -> None:
        super().__init__(engine, name="dashboard")
        self.sessions: dict[str, SessionInfo] = {}
        self.status: EngineStatus | None = None
        self.denials: list[dict[str, Any]] = []
        self.verify_line: Text | None = None
        self._spark_loaded = False
        self._targets: dict[str, str] = {}  # intent_id -> what it touched (recent intents)
        self._head_seq = -1

    def compose(self) -> ComposeResult:
        yield Header()
        with Horizontal(id="tiles"):
            for tile in ("sessions", "runs", "approvals", "agents", "chain"):
                yield Static(id=f"tile-{tile}", classes="tile")
        with Vertical(id="spark-box"):
            yield DecisionSparkline(self.now, id="spark")
        with Horizontal(id="tables"):
            with Vertical(id="runs-box"):
                yield DataTable(cursor_type="row", id="running")
            with Vertical(id="denials-box"):
                yield DataTable(cursor_type="row", id="denials")
        yield TalonFooter()

    def on_mount(self) -> None:
        self.query_one("#spark-box").border_title = "Decisions per minute"
        self.query_one("#runs-box").border_title = "Running runs"
        self.query_one("#denials-box").border_title = "Latest denials"
        self.set_interval(1.0, self._show_chain)  # the age of the last signature
        self.query_one("#running", DataTable).add_columns("session", "steps", "age", "run")
        self.query_one("#denials", DataTable).add_columns("time", "tool", "target", "reason")
        for tile in self.query(".tile"):
            tile.update(Text("…", style="dim"))
        super().on_mount()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "open_run":
            table = self.focused
            return (
                isinstance(table, DataTable)
                and table.id in ("running", "denials")
                and bool(table.row_count)
            )
        return super().check_action(action, parameters)

    def on_descendant_focus(self) -> None:
        self._refresh_open_run()  # "open run" follows the focused table

    def _refresh_open_run(self) -> None:
        """Refresh the bindings only when "open run" becomes available or goes away: live
        traffic refreshes the tables several times a second, and each refresh makes the footer
        compare every key it shows (it rebuilds them only when they change)."""
        state = self.check_action("open_run", ())
        if state != getattr(self, "_open_run_state", None):
            self._open_run_state = state
            self.refresh_bindings()

    # ------------------------------------------------------------------ data

    async def load(self) -> None:
        status = await self.engine.status()
        sessions = await self.engine.list_sessions()
        runs = await self.engine.list_runs(limit=200)
        self.status = status
        self.sessions = {s.id: s for s in sessions}
        self._head_seq = max(self._head_seq, status.audit_head_seq)
        if not self._spark_loaded:
            await self._load_decisions(status.audit_head_seq)
        self._show_tiles()
        self._show_running([r for r in runs if r.status == "running"])
        self._show_denials()

    async def _load_decisions(self, head_seq: int) -> None:
        events = await self.engine.query_audit(
            types=["policy.intent.received", "policy.decision"],
            from_seq=max(0, head_seq - 2 * SPARK_EVENTS),
            limit=2 * SPARK_EVENTS,
        )
        spark = self.query_one(DecisionSparkline)
        spark.clear()
        for event in events:
            self._count_decision(event, spark)
        self._spark_loaded = True

    def _count_decision(self, event: dict[str, Any], spark: DecisionSparkline) -> None:
        data = event.get("data") or {}
        if event.get("type") == "policy.intent.received":
            self._targets[str(data.get("intent_id"))] = intent_target(data.get("params"))
            if len(self._targets) > 2 * DENIALS_SHOWN + 200:
                for old in list(self._targets)[:200]:
                    del self._targets[old]
            return
        spark.add(data.get("decision"), event.get("ts"))
        if data.get("decision") == "DENY":
            self.denials.append(event)
            del self.denials[:-DENIALS_SHOWN]

    def live_event(self, event: EngineEvent) -> None:
        if event.kind != "audit" or not self._spark_loaded:
            return
        audit = event.payload
        seq = audit.get("seq")
        if isinstance(seq, int) and seq <= self._head_seq:
            return
        if isinstance(seq, int):
            self._head_seq = seq
        if audit.get("type") == "policy.intent.received":
            self._count_decision(audit, self.query_one(DecisionSparkline))
        elif audit.get("type") == "policy.decision":
            self._count_decision(audit, self.query_one(DecisionSparkline))
            if (audit.get("data") or {}).get("decision") == "DENY" and self.is_current:
                self._show_denials()
        elif audit.get("type") == "audit.checkpoint" and self.status is not None:
            data = audit.get("data") or {}
            self.status.last_checkpoint_seq = data.get("checkpoint_seq")
            self.status.last_checkpoint_ts = audit.get("ts")
        if self.status is not None and isinstance(seq, int):
            self.status.audit_head_seq = seq
            self._show_chain()

    # ------------------------------------------------------------------ rendering

    def _show_tiles(self) -> None:
        st = self.status
        if st is None:
            return
        self._tile("sessions", "Sessions", st.sessions_open, "open", f"{len(self.sessions)} in all")
        oldest = st.oldest_approval_age_s
        self._tile(
            "approvals",
            "Approvals",
            st.pending_approvals,
            "waiting",
            f"oldest {human_age(oldest)}" if st.pending_approvals else "press 3 to see",
            color=APPROVAL_COLOR if st.pending_approvals else None,
        )
        self._tile("agents", "Agents", st.agents_connected, "connected", self._tools_line(st))
        self._show_chain()

    @staticmethod
    def _tools_line(st: EngineStatus) -> str:
        """Blocking tool calls running / threads (the pool no session can fill alone); `+N`
        when calls wait for a slot."""
        lim = st.limits
        if "tool_threads" not in lim:
            return "on the pipe"
        line = f"tools {lim.get('tools_running', 0):g}/{lim['tool_threads']:g}"
        queued = lim.get("tools_queued", 0)
        return f"{line}+{queued:g}" if queued else line

    def _show_chain(self) -> None:
        st = self.status
        if st is None:
            return
        text = Text("Audit chain\n", style="bold", no_wrap=True, overflow="ellipsis", end="")
        text.append(f"head #{st.audit_head_seq}", style="bold")
        if st.last_checkpoint_seq is not None:
            text.append(f" · signed #{st.last_checkpoint_seq}", style="dim")
        self._append_export_lag(text, st)
        text.append("\n")
        if self.verify_line is not None:
            text.append_text(self.verify_line)
        elif st.last_checkpoint_seq is not None:
            # checkpoints are signed every few seconds: the age says the signer is alive
            age = human_age(age_seconds(st.last_checkpoint_ts, self.now()))
            text.append(f"signed {age} ago", style="dim")
            text.append(f" ({short_ts(st.last_checkpoint_ts)[11:]})", style="dim")
        else:
            text.append("not signed yet (≤10 s)", style="dim")
        self.query_one("#tile-chain", Static).update(text)

    @staticmethod
    def _append_export_lag(text: Text, st: EngineStatus) -> None:
        """`talon serve --export`: the largest lag (events not yet sent), red while an exporter
        backs off or has halted."""
        if not st.exports:
            return
        lag = max(st.audit_head_seq - int(e.get("sent_seq", -1)) for e in st.exports)
        stuck = any(e.get("state") not in ("ok", "starting") for e in st.exports)
        text.append(f" · export lag {max(0, lag)}", style=DENY_COLOR if stuck else "dim")

    def _tile(
        self, name: str, title: str, big: int, unit: str, small: str, color: str | None = None
    ) -> None:
        """Three lines that fit 11 columns (80x24): title, the number and its unit, a hint."""
        text = Text(f"{title}\n", style="bold", no_wrap=True, overflow="ellipsis", end="")
        text.append(str(big), style=f"bold {color}" if color else "bold")
        text.append(f" {unit}\n")
        text.append(small, style="dim")
        self.query_one(f"#tile-{name}", Static).update(text)

    def _show_running(self, runs: list[RunSummary]) -> None:
        self._tile("runs", "Runs", len(runs), "running", "in progress")
        table = self.query_one("#running", DataTable)
        keep = selected_key(table)
        table.clear()
        now = self.now()
        for run in runs[:50]:
            label = self.sessions.get(run.session_id or "")
            table.add_row(
                safe_text(label.label if label else run.session_id or "—", 18),
                Text(str(run.steps), justify="right"),
                Text(human_age(age_seconds(run.started, now))),
                Text(run.run_id, style="dim"),
                key=run.run_id,
            )
        if keep is not None and keep in {r.run_id for r in runs[:50]}:
            table.move_cursor(row=table.get_row_index(keep), animate=False)
        self._refresh_open_run()

    def _show_denials(self) -> None:
        table = self.query_one("#denials", DataTable)
        keep = selected_key(table)
        table.clear()
        narrow = self.has_class("-narrow")
        for event in reversed(self.denials):
            data = event.get("data") or {}
            table.add_row(
                Text(short_ts(event.get("ts"))[11:], style=DENY_COLOR),
                safe_text(data.get("tool"), 14),
                safe_text(self._targets.get(str(data.get("intent_id")), ""), 20 if narrow else 28),
                safe_text(data.get("reason"), 200),
                key=str(event.get("seq")),
            )
        if keep is not None and keep in table.rows:
            table.move_cursor(row=table.get_row_index(keep), animate=False)
        self._refresh_open_run()

    # ------------------------------------------------------------------ actions

    def action_open_run(self) -> None:
        self.after_typed_keys(self._open_selected_run)  # enter is a priority binding

    def _open_selected_run(self) -> None:
        table = self.focused
        if not isinstance(table, DataTable):
            return
        key = selected_key(table)
        run_id = key if table.id == "running" else self._denial_run(key)
        if not run_id:
            self.notify("that denial belongs to no run", severity="warning")
            return
        self.run_worker(self.talon.go("run", run_id=run_id), group="nav")

    def _denial_run(self, seq: Any) -> str | None:
        for event in self.denials:
            if str(event.get("seq")) == seq:
                return event.get("run_id")
        return None

    @work(exclusive=True, group="verify")
    async def action_verify(self) -> None:
        self.verify_line = Text("verifying…", style="dim")
        self._show_chain()
        try:
            report = await self.engine.verify_audit()
        except TalonError as exc:
            self.verify_line = Text(f"verify failed: {exc}", style=DENY_COLOR)
        else:
            if report.valid:
                self.verify_line = Text.assemble(
                    status_badge("ok"), f" {report.events} events valid"
                )
            else:
                self.verify_line = Text.assemble(
                    decision_badge("DENY"),
                    f" broken at #{report.first_bad_seq}: {report.damage or report.message}",
                )
        self._show_chain()
