"""The audit viewer: the whole log live, filters, the event JSON, and chain verification.

The list is `AuditList` (byte-offset index, Line API). `v` checks the whole chain in a thread
with a progress bar (directly from the files when the audit public key is readable, else
through `EngineAPI.verify_audit`), then names the first damage in words and jumps to it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, ClassVar

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Header, Input, ProgressBar, Static

from talon_tui.engine.api import EngineAPI, VerifyReport
from talon_tui.engine.console_api import (
    AuditFilter,
    audit_public_key,
    event_decision,
    parse_filter,
    verify_log,
)
from talon_tui.engine.errors import TalonError

from ..messages import EngineEvent
from ..widgets.audit_list import AuditList
from ..widgets.badges import ALLOW_COLOR, DENY_COLOR
from ..widgets.footer import TalonFooter
from ..widgets.safe_text import DETAIL_MAX, safe_text
from .base import TalonScreen

DECISION_CYCLE = (None, "ALLOW", "DENY", "REQUIRE_APPROVAL")


def describe_damage(report: VerifyReport) -> str:
    """The first damage in plain words, e.g. "seq 41 was modified: its hash does not match"."""
    seq = report.first_bad_seq
    damage = report.damage or "damaged"
    detail = report.message
    if damage == "modified":
        words = f"seq {seq} was modified: its hash does not match"
    elif damage == "broken_link":
        words = f"seq {seq} does not link to seq {seq - 1 if seq else '-'}: its prev_hash differs"
    elif damage == "gap":
        words = f"events are missing from seq {seq} on"
    elif damage == "reordered":
        words = f"seq {seq} is out of order"
    elif damage == "truncated":
        words = f"the log was cut short: it ends before seq {seq}"
    elif damage == "bad_signature":
        words = f"seq {seq}: a checkpoint signature does not verify"
    elif damage == "torn":
        words = "the last line is torn (incomplete write)"
    else:
        words = f"seq {seq}: {damage}"
    return f"{words} ({detail})" if detail and detail not in words else words


class FilterInput(Input):
    """The `/` filter: `type:… decision:deny session:… run:… words`; esc leaves it."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "leave", "back to list", id="audit.filter_leave"),
    ]

    def action_leave(self) -> None:
        self.display = False
        self.screen.query_one(AuditList).focus()


class EventDetailScreen(ModalScreen[None]):
    """One event's full JSON (pretty, literal), its hash and prev_hash first."""

    CSS_PATH = "audit.tcss"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,q,enter", "dismiss", "close", id="event_detail.close"),
    ]

    def __init__(self, event: dict[str, Any], offset: int | None = None) -> None:
        super().__init__()
        self.event = event
        self.byte_offset = offset

    def compose(self) -> ComposeResult:
        ev = self.event
        title = Text.assemble(
            ("Event ", "bold"),
            safe_text(ev.get("seq"), 12, style="bold"),
            "  ",
            safe_text(ev.get("type"), 40, style="cyan"),
        )
        decision = event_decision(ev)
        if decision:
            color = {"ALLOW": ALLOW_COLOR, "DENY": DENY_COLOR}.get(decision, "#e3a008")
            title.append(f"  {decision}", style=f"bold {color}")
        hashes = Text(end="")
        for name in ("hash", "prev_hash", "event_id", "ts"):
            hashes.append(f"{name:>9}: ", style="dim")
            hashes.append_text(safe_text(ev.get(name), 80))
            hashes.append("\n")
        if self.byte_offset is not None:
            hashes.append(f"   offset: byte {self.byte_offset} of audit.jsonl", style="dim")
        raw = json.dumps(ev, indent=2, sort_keys=True, ensure_ascii=False)
        body = safe_text(raw, DETAIL_MAX, multiline=True)
        with VerticalScroll(id="event-detail"):
            yield Static(title, id="event-title")
            yield Static(hashes, id="event-hashes")
            if len(raw) > DETAIL_MAX:
                yield Static(
                    f"showing the first {DETAIL_MAX:,} of {len(raw):,} characters",
                    id="event-cut",
                    markup=False,
                )
            yield Static(body, id="event-json")
            yield Static("esc closes", classes="hint", markup=False)


class AuditScreen(TalonScreen):
    """The audit log, live; filters; event JSON; chain verification with progress."""

    CSS_PATH = "audit.tcss"
    RELOAD_ON: ClassVar[frozenset[str]] = frozenset({"missed"})
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("slash", "filter", "filter", id="audit.filter", tooltip="Filter the log"),
        Binding("v", "verify", "verify", id="audit.verify", tooltip="Verify the whole chain"),
        Binding(
            "d", "cycle_decision", "decision", id="audit.decision", tooltip="Filter ALLOW/DENY"
        ),
        Binding(
            "s",
            "same('session_id')",
            "session",
            id="audit.same_session",
            tooltip="Only this session",
        ),
        Binding("n", "same('run_id')", "run", id="audit.same_run", tooltip="Only this run"),
        Binding("t", "same('type')", "type", id="audit.same_type", tooltip="Only this event type"),
        Binding("c", "clear_filter", "clear", id="audit.clear", tooltip="Show everything"),
    ]

    def __init__(
        self, engine: EngineAPI, *, session_id: str | None = None, readonly: bool = False
    ) -> None:
        super().__init__(engine, name="audit")
        self.session_id = session_id
        self.readonly_view = readonly
        self.head_seq: int | None = None
        self.checkpoint: tuple[Any, Any] | None = None
        self.report: VerifyReport | None = None
        self.verifying = False

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static(id="audit-status")
        yield FilterInput(
            placeholder="type:policy.decision decision:deny session:… run:… free text",
            id="audit-filter",
        )
        with Horizontal(id="verify-row"):
            yield ProgressBar(total=100, show_eta=False, id="verify-progress")
            yield Static(id="verify-line")
        yield AuditList(self.engine.audit_path, session_id=self.session_id, id="audit-list")
        yield TalonFooter()

    def on_mount(self) -> None:
        self.query_one(FilterInput).display = False
        self.query_one("#verify-progress").display = False
        self.audit_list.focus()
        self._show_status()
        super().on_mount()

    @property
    def audit_list(self) -> AuditList:
        return self.query_one(AuditList)

    async def load(self) -> None:
        sessions = await self.engine.list_sessions()
        self.audit_list.set_labels({s.id: s.label for s in sessions})
        status = await self.engine.status()
        self.head_seq = status.audit_head_seq
        self.checkpoint = (status.last_checkpoint_seq, status.last_checkpoint_ts)
        self._show_status()

    def live_event(self, event: EngineEvent) -> None:
        if event.kind != "audit":
            return
        payload = event.payload
        self.audit_list.poll()  # show it now rather than at the next poll tick
        if isinstance(payload.get("seq"), int):
            self.head_seq = payload["seq"]
        if payload.get("type") == "audit.checkpoint":
            data = payload.get("data") or {}
            self.checkpoint = (data.get("checkpoint_seq"), payload.get("ts"))
        self._show_status()

    def _show_status(self) -> None:
        text = Text(no_wrap=True, end="")
        text.append("HEAD ", style="bold")
        text.append(f"#{self.head_seq}" if self.head_seq is not None else "—")
        text.append("  ·  last signed checkpoint ", style="dim")
        cseq, cts = self.checkpoint or (None, None)
        if cseq is None:
            text.append("none yet")
        else:
            text.append(f"seq {cseq}")
            text.append_text(safe_text(f" at {str(cts or '?').replace('T', ' ')[:19]}", 30))
        if self.session_id:
            text.append("  ·  session ", style="dim")
            text.append_text(safe_text(self.session_id, 40))
        text.append("  ·  ", style="dim")
        text.append_text(safe_text(self.engine.audit_path.name, 40, style="dim"))
        self.query_one("#audit-status", Static).update(text)

    # ------------------------------------------------------------------ filters

    def action_filter(self) -> None:
        box = self.query_one(FilterInput)
        box.display = True
        box.value = self._filter_query(self.audit_list.filter)
        box.focus()

    def _filter_query(self, flt: AuditFilter) -> str:
        parts = []
        for key, name in (("run", "run_id"), ("type", "type"), ("decision", "decision")):
            if getattr(flt, name):
                parts.append(f"{key}:{getattr(flt, name)}")
        if flt.session_id and flt.session_id != self.session_id:
            parts.append(f"session:{flt.session_id}")
        if flt.text:
            parts.append(flt.text)
        return " ".join(parts)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        if event.input.id != "audit-filter":
            return
        flt = parse_filter(event.value, AuditFilter(session_id=self.session_id))
        event.input.display = False
        self.apply_filter(flt)

    def apply_filter(self, flt: AuditFilter) -> None:
        if self.session_id and flt.session_id != self.session_id:
            flt = AuditFilter(**{**_fields(flt), "session_id": self.session_id})
        self.audit_list.rebuild(flt)
        self.audit_list.focus()

    def action_cycle_decision(self) -> None:
        flt = self.audit_list.filter
        nxt = DECISION_CYCLE[(DECISION_CYCLE.index(flt.decision) + 1) % len(DECISION_CYCLE)]
        self.apply_filter(AuditFilter(**{**_fields(flt), "decision": nxt}))

    def action_same(self, field: str) -> None:
        event = self.audit_list.selected_event
        value = event.get(field) if event else None
        if not isinstance(value, str):
            self.notify(f"the selected event has no {field.removesuffix('_id')}", markup=False)
            return
        self.apply_filter(AuditFilter(**{**_fields(self.audit_list.filter), field: value}))

    def action_clear_filter(self) -> None:
        self.apply_filter(AuditFilter(session_id=self.session_id))

    def on_audit_list_event_chosen(self, message: AuditList.EventChosen) -> None:
        self.app.push_screen(EventDetailScreen(message.event, message.offset))

    # ------------------------------------------------------------------ verification

    def action_verify(self) -> None:
        if self.verifying:
            return
        self.verifying = True
        bar = self.query_one("#verify-progress", ProgressBar)
        bar.display = True
        bar.update(total=100, progress=0)
        self.query_one("#verify-line", Static).update(Text("verifying the chain…", style="dim"))
        key = self._public_key()
        if key is None:
            bar.update(total=None)
            self._verify_by_engine()
        else:
            self._verify_files(key)

    def _public_key(self) -> Any:
        return audit_public_key(self.engine.audit_path)

    @work(thread=True, exclusive=True, group="audit-verify", exit_on_error=False)
    def _verify_files(self, public_key: Any) -> None:
        def progress(done: int, total: int) -> None:
            pct = 100 if total <= 0 else min(100, done * 100 // total)
            self.app.call_from_thread(self._progress, pct)

        try:
            report = verify_log(Path(self.engine.audit_path).parent, public_key, progress=progress)
        except (OSError, TalonError) as exc:
            self.app.call_from_thread(self._verify_failed, str(exc))
            return
        self.app.call_from_thread(self.show_report, report)

    @work(exclusive=True, group="audit-verify", exit_on_error=False)
    async def _verify_by_engine(self) -> None:
        try:
            report = await self.engine.verify_audit()
        except TalonError as exc:
            self._verify_failed(str(exc))
            return
        self.show_report(report)

    def _progress(self, pct: int) -> None:
        self.query_one("#verify-progress", ProgressBar).update(progress=pct)

    def _verify_failed(self, problem: str) -> None:
        self.verifying = False
        self.query_one("#verify-progress").display = False
        line = Text("✗ could not verify: ", style=f"bold {DENY_COLOR}")
        line.append_text(safe_text(problem, 200))
        self.query_one("#verify-line", Static).update(line)

    def show_report(self, report: VerifyReport) -> None:
        """Show the result; on damage, show every event again and put the cursor on the first
        bad one."""
        self.verifying = False
        self.report = report
        bar = self.query_one("#verify-progress", ProgressBar)
        bar.update(total=100, progress=100)
        bar.display = False
        line = self.query_one("#verify-line", Static)
        if report.valid:
            words = f"✓ chain intact: {report.events:,} events"
            if report.signed_head_seq is not None:
                words += f", signed through seq {report.signed_head_seq}"
            line.update(Text(words, style=f"bold {ALLOW_COLOR}"))
            return
        line.update(Text(f"✗ {describe_damage(report)}", style=f"bold {DENY_COLOR}"))
        if report.first_bad_seq is not None:
            audit_list = self.audit_list
            audit_list.rebuild(AuditFilter(session_id=self.session_id))
            audit_list.jump_to_seq(report.first_bad_seq)
            audit_list.focus()


def _fields(flt: AuditFilter) -> dict[str, Any]:
    return {
        "session_id": flt.session_id,
        "run_id": flt.run_id,
        "type": flt.type,
        "decision": flt.decision,
        "text": flt.text,
    }
