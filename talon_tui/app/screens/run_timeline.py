"""One run's step timeline from the audit log: decision badges, reasons, tool result
summaries, and "fix safely" on a denial (opens the policy editor with the suggested override)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import DataTable, Header, Static, TextArea

from ..messages import EngineEvent
from ..widgets.badges import decision_badge, status_badge
from ..widgets.footer import TalonFooter
from ..widgets.safe_text import DETAIL_MAX, as_string, labelled, safe_text, visible
from ..widgets.summaries import counted, intent_target, result_summary, short_ts
from .base import TalonScreen, fill_table, selected_key

RUN_EVENT_LIMIT = 5000
PARAM_MAX = 240  # characters of each param in the detail pane (enter shows them in full)
FULL_MAX = 200_000  # characters of one value in the step detail view; the rest is exported
LINE_CHUNK = 100  # long lines are broken here so the read-only TextArea never wraps 1 MB


@dataclass
class Step:
    """One intent of a run, folded from its audit events."""

    intent_id: str
    seq: int
    ts: str
    tool: str = ""
    params: Any = None
    origin: str = "agent"
    decision: str | None = None
    first_decision: str | None = None
    reason: str = ""
    by: str = ""
    suggested_fix: dict[str, Any] | None = None
    approval: str | None = None  # waiting | approved | denied | timed out
    status: str | None = None
    output: Any = None
    override_index: int | None = None  # the override that decided, None: none was consulted
    output_bytes: int | None = None  # the whole result the tool returned, as JSON
    output_truncated: bool = False  # the log recorded a shortened output
    output_redacted: bool = False  # secret values in it were replaced before recording
    message: str = ""
    events: list[int] = field(default_factory=list)

    def result(self) -> str:
        if self.status is None:
            return "waiting for approval" if self.approval == "waiting" else ""
        if self.status != "ok":
            return f"{self.status}: {self.message}" if self.message else self.status
        return result_summary(self.tool, self.params, self.output, self.status)


def fold_steps(events: list[dict[str, Any]]) -> tuple[list[Step], dict[str, Any]]:
    """Steps in order plus run facts (`content`, `status`, `session_id`, `subject`)."""
    steps: dict[str, Step] = {}
    run: dict[str, Any] = {"status": "running"}
    for e in events:
        data = e.get("data") or {}
        etype = e.get("type")
        run.setdefault("session_id", e.get("session_id"))
        if etype == "run.started":
            run.update(
                content=data.get("content", ""), subject=data.get("subject"), started=e["ts"]
            )
            continue
        if etype == "run.finished":
            run.update(status=data.get("status"), finished=e.get("ts"))
            continue
        iid = data.get("intent_id")
        if not iid:
            continue
        step = steps.get(iid)
        if step is None:
            step = steps[iid] = Step(intent_id=iid, seq=e["seq"], ts=e["ts"])
        step.events.append(e["seq"])
        if etype == "policy.intent.received":
            step.tool, step.params = data.get("tool", ""), data.get("params")
            step.origin = data.get("origin", "agent")
        elif etype == "policy.decision":
            step.tool = step.tool or data.get("tool", "")
            step.first_decision = step.first_decision or data.get("decision")
            step.decision = data.get("decision")
            step.reason = data.get("reason") or ""
            step.by = data.get("by") or ""
            step.override_index = data.get("override_index")
            if data.get("suggested_fix"):
                step.suggested_fix = data["suggested_fix"]
        elif etype == "approval.requested":
            step.approval = "waiting"
        elif etype == "approval.decided":
            step.approval = (
                "timed out"
                if data.get("timed_out")
                else "approved"
                if data.get("allow")
                else "withdrawn (policy)"
                if data.get("by") == "policy"
                else "denied"
            )
            if not data.get("allow"):
                step.decision = "DENY"
        elif etype == "tool.executed":
            step.status = data.get("status")
            step.output = data.get("output")
            step.output_bytes = data.get("bytes")
            step.output_truncated = bool(data.get("truncated"))
            step.output_redacted = bool(data.get("redacted"))
            step.message = data.get("message") or ""
            if step.status == "ok" and step.decision == "REQUIRE_APPROVAL":
                step.decision = "ALLOW"
    return sorted(steps.values(), key=lambda s: s.seq), run


def decision_cell(step: Step) -> Text:
    if step.first_decision == "REQUIRE_APPROVAL" and step.decision != "REQUIRE_APPROVAL":
        return Text.assemble(decision_badge("APPROVAL"), "→", decision_badge(step.decision))
    return decision_badge(step.decision)


class RunTimelineScreen(TalonScreen):
    CSS_PATH = "run_timeline.tcss"
    CHANGING = frozenset({"fix_safely"})
    RELOAD_ON = frozenset({"missed"})
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding(
            "f",
            "fix_safely",
            "fix safely",
            id="run.fix",
            tooltip="Open the policy editor with the narrowest override allowing this denied step",
        ),
        Binding("r", "replay", "replay", id="run.replay", tooltip="Replay this run step by step"),
        Binding(
            "enter",
            "step_detail",
            "step detail",
            id="run.step_detail",
            tooltip="Every value of the selected step in full",
        ),
    ]

    def __init__(self, engine, run_id: str, session_id: str | None = None) -> None:
        super().__init__(engine, name="run")
        self.run_id = run_id
        self.session_id = session_id
        self.steps: list[Step] = []
        self.run_facts: dict[str, Any] = {}

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static(id="run-title", classes="hint")
        yield DataTable(cursor_type="row", zebra_stripes=True, id="steps")
        with VerticalScroll(id="step-detail", classes="detail"):
            yield Static(id="step-body")
        yield TalonFooter()

    def on_mount(self) -> None:
        table = self.query_one(DataTable)
        for col in ("#", "time", "tool", "target", "decision", "reason", "result"):
            table.add_column(col, key=col)
        table.focus()
        super().on_mount()

    def live_event(self, event: EngineEvent) -> None:
        if event.kind == "audit" and event.payload.get("run_id") == self.run_id:
            self.request_reload()

    async def load(self) -> None:
        events = await self.engine.query_audit(run_id=self.run_id, limit=RUN_EVENT_LIMIT)
        self.steps, self.run_facts = fold_steps(events)
        self.session_id = self.session_id or self.run_facts.get("session_id")
        title = Text.assemble(("Run ", "bold"), (self.run_id, "bold"), "  ")
        title.append_text(status_badge(self.run_facts.get("status")))
        title.append(f"  {counted(len(self.steps), 'step')}  ", style="dim")
        if self.run_facts.get("content"):
            title.append_text(safe_text(self.run_facts["content"], 80, style="italic"))
        self.query_one("#run-title", Static).update(title)
        rows = []
        for i, step in enumerate(self.steps, 1):
            rows.append(
                (
                    step.intent_id,
                    (
                        Text(str(i), justify="right"),
                        Text(short_ts(step.ts)[11:]),
                        safe_text(step.tool, 12),
                        safe_text(intent_target(step.params), 32),
                        decision_cell(step),
                        safe_text(step.reason, 48),
                        safe_text(step.result(), 40),
                    ),
                )
            )
        fill_table(self.query_one(DataTable), rows)
        self._show_detail()

    def selected(self) -> Step | None:
        key = selected_key(self.query_one(DataTable))
        return next((s for s in self.steps if s.intent_id == key), None)

    def _show_detail(self) -> None:
        step = self.selected()
        body = self.query_one("#step-body", Static)
        if step is None:
            body.update(Text("No steps recorded for this run yet.", style="italic"))
            return
        text = Text.assemble(decision_cell(step), " ", (step.intent_id, "dim"), "\n")
        text.append_text(labelled("tool", step.tool, 40))
        text.append_text(labelled("   origin", step.origin, 20))
        if step.by:
            text.append_text(labelled("   decided by", step.by, 20))
        text.append("\n")
        text.append_text(labelled("reason", step.reason, 2000))
        text.append("\n")
        if step.approval:
            text.append_text(labelled("approval", step.approval, 20))
            text.append("\n")
        if step.suggested_fix and step.decision == "DENY":
            text.append("fix safely (f) would add:\n", style="bold")
            text.append_text(safe_text(step.suggested_fix, DETAIL_MAX, multiline=True))
            text.append("\n")
        elif step.decision == "DENY":
            text.append("fix safely (f): none. ", style="bold")
            text.append(no_fix_reason(step) or "", style="dim")
            text.append("\n")
        text.append("params:", style="dim")
        params = step.params if isinstance(step.params, dict) else {"": step.params}
        for key, value in sorted(params.items()):
            text.append("\n  ")
            text.append_text(labelled(safe_text(key, 40).plain, value, PARAM_MAX))
        if step.status is not None:
            text.append("\n")
            text.append_text(labelled("result", step.result(), 400))
            if step.output is not None:
                text.append("\noutput (as recorded):\n", style="dim")
                text.append_text(safe_text(step.output, DETAIL_MAX, multiline=True))
        body.update(text)

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        self._show_detail()

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        self.action_step_detail()

    def action_step_detail(self) -> None:
        step = self.selected()
        if step is not None:
            self.app.push_screen(StepDetailScreen(step, self.run_id))

    def action_fix_safely(self) -> None:
        step = self.selected()
        why = no_fix_reason(step)
        if why is not None or step is None or step.suggested_fix is None:
            self.notify(why or "select a step", title="No safe fix", severity="warning")
            return
        if not self.session_id:
            return
        go = self.talon.go(
            "policy", session_id=self.session_id, prefill_override=dict(step.suggested_fix)
        )
        self.run_worker(go, group="nav")

    def action_replay(self) -> None:
        self.run_worker(self.talon.go("replay", self.run_id), group="nav")


def no_fix_reason(step: Step | None) -> str | None:
    """Why `f` offers no fix for `step`, in words; None when it has one."""
    if step is None:
        return "Select a denied step first."
    if step.decision != "DENY":
        word = {"ALLOW": "allowed", "REQUIRE_APPROVAL": "waiting for approval"}.get(
            step.decision or "", "not decided"
        )
        return f"This step was {word}: there is nothing to fix."
    if step.by and step.by != "policy":
        return f"This step was refused by {step.by}, not by the policy: no override changes that."
    if step.suggested_fix:
        return None
    if step.override_index is None and not step.reason.startswith("no override allows"):
        return (
            "Talon refused this step's input itself (see the reason), before any override: "
            "no policy change can allow it, so there is no fix."
        )
    return (
        "The advisor found no narrow override that allows exactly this step (see the reason); "
        "edit the policy by hand (e on the session)."
    )


def full_value(value: Any, run_id: str, max_len: int = FULL_MAX) -> str:
    """`value` in full as literal text for the step detail view: JSON pretty-printed, control
    characters written out, lines broken every `LINE_CHUNK` characters, and anything past
    `max_len` characters replaced by a note saying how much was left out and where to get it."""
    raw = as_string(value, indent=2)
    note = ""
    if len(raw) > max_len:
        note = (
            f"\n… {len(raw) - max_len:,} more characters not shown; "
            f"see `talon audit export --run {run_id}`"
        )
        raw = raw[:max_len]
    lines = []
    for line in visible(raw, multiline=True).split("\n"):
        if len(line) <= LINE_CHUNK:
            lines.append(line)
        else:
            lines.extend(line[i : i + LINE_CHUNK] for i in range(0, len(line), LINE_CHUNK))
    return "\n".join(lines) + note


def recorded_note(step: Step) -> str:
    """What the output below is: the tool's whole result, or the part the log kept."""
    size = "" if step.output_bytes is None else f" of {step.output_bytes:,} bytes (as JSON)"
    if step.output_truncated:
        note = f"The tool returned a result{size}; the log recorded it shortened, shown below."
    else:
        note = f"The tool returned a result{size}; the log recorded all of it, shown below."
    if step.output_redacted:
        note += " Secret values were replaced by «secret:name» before recording."
    return note


def step_document(step: Step, run_id: str) -> str:
    """Every value of one step, in full, as one plain document (never markup)."""
    parts = [
        f"intent:   {step.intent_id}",
        f"time:     {step.ts}",
        f"tool:     {full_value(step.tool, run_id, 200)}",
        f"origin:   {full_value(step.origin, run_id, 200)}",
        f"decision: {step.decision or '—'}"
        + (f" (first {step.first_decision})" if step.first_decision != step.decision else "")
        + (f", by {step.by}" if step.by else ""),
    ]
    if step.approval:
        parts.append(f"approval: {step.approval}")
    parts += ["", "── reason", full_value(step.reason or "—", run_id)]
    params = step.params if isinstance(step.params, dict) else {"": step.params}
    for key, value in sorted(params.items(), key=lambda kv: str(kv[0])):
        label = full_value(str(key), run_id, 200)
        parts += ["", f"── params.{label}" if label else "── params", full_value(value, run_id)]
    if step.suggested_fix:
        parts += ["", "── suggested fix", full_value(step.suggested_fix, run_id)]
    if step.status is not None:
        parts += ["", "── result", full_value(step.result(), run_id)]
        parts += [
            "",
            "── output (as recorded)",
            recorded_note(step),
            full_value(step.output, run_id),
        ]
    return "\n".join(parts) + "\n"


class StepDetailScreen(ModalScreen[None]):
    """One step's full literal values in a read-only, scrollable text view."""

    CSS_PATH = "run_timeline.tcss"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,q", "dismiss", "close", id="step_detail.close"),
    ]

    def __init__(self, step: Step, run_id: str) -> None:
        super().__init__()
        self.step = step
        self.run_id = run_id

    def compose(self) -> ComposeResult:
        step = self.step
        title = Text.assemble(("Step ", "bold"), decision_cell(step), " ")
        title.append_text(safe_text(step.tool, 30, style="bold"))
        title.append(f"  {step.intent_id}  run {self.run_id}", style="dim")
        with Vertical(id="step-full"):
            yield Static(title, id="step-full-title")
            yield TextArea(
                step_document(step, self.run_id),
                read_only=True,
                soft_wrap=False,
                show_line_numbers=False,
                id="step-full-text",
            )
            yield Static(
                "esc closes · arrows/pgup/pgdn scroll · select text to copy",
                classes="hint",
                markup=False,
            )

    def on_mount(self) -> None:
        self.query_one(TextArea).focus()
