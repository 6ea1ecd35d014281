"""Approvals: intents waiting for an operator. `y` approve once, `a` approve and remember
(after showing the override it adds), `n` deny."""

from __future__ import annotations

from datetime import datetime
from typing import ClassVar

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.widgets import DataTable, Footer, Header, Static

from talon_tui.engine.api import ApprovalRequest
from talon_tui.engine.errors import TalonError

from ..widgets.badges import APPROVAL_COLOR, DENY_COLOR, decision_badge
from ..widgets.safe_text import DETAIL_MAX, labelled, safe_text
from ..widgets.summaries import age_seconds, human_age, intent_target
from .base import TalonScreen, fill_table, selected_key
from .confirm import ConfirmScreen

PARAM_MAX = 240  # characters of each param in the detail pane


class ApprovalsScreen(TalonScreen):
    CSS_PATH = "approvals.tcss"
    CHANGING = frozenset({"approve", "remember", "deny"})
    RELOAD_ON = frozenset({"approval", "missed"})
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("y", "approve", "approve once", id="approvals.approve", tooltip="Allow this once"),
        Binding(
            "a",
            "remember",
            "approve+remember",
            id="approvals.remember",
            tooltip="Allow and add the narrowest override to the policy (shown first)",
        ),
        Binding("n", "deny", "deny", id="approvals.deny", tooltip="Refuse the intent"),
    ]

    def __init__(self, engine) -> None:
        super().__init__(engine, name="approvals")
        self.approvals: list[ApprovalRequest] = []
        self.labels: dict[str, str] = {}

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static(id="approvals-hint", classes="hint")
        yield DataTable(cursor_type="row", zebra_stripes=True, id="approvals-table")
        with VerticalScroll(id="approval-detail", classes="detail"):
            yield Static(id="approval-body")
        yield Footer()

    def on_mount(self) -> None:
        table = self.query_one(DataTable)
        # the countdown before the target is cut: at 80 columns agent and origin go off the edge
        for col in ("session", "tool", "params", "left", "age", "agent", "origin"):
            table.add_column(col, key=col)
        table.focus()
        self.set_interval(1.0, self._tick)
        super().on_mount()

    async def load(self) -> None:
        approvals = await self.engine.list_approvals()
        sessions = await self.engine.list_sessions()
        self.labels = {s.id: s.label for s in sessions}
        self.approvals = sorted(approvals, key=lambda a: a.created)
        self._show()

    def _timing(self, approval: ApprovalRequest) -> tuple[Text, Text]:
        now = self.now()
        age = human_age(age_seconds(approval.created, now))
        left = seconds_left(approval.expires, now)
        color = DENY_COLOR if left <= 15 else APPROVAL_COLOR
        return Text(age), Text(f"{left}s", style=f"bold {color}")

    def _show(self) -> None:
        rows = []
        narrow = self.has_class("-narrow")
        for a in self.approvals:
            age, left = self._timing(a)
            rows.append(
                (
                    a.approval_id,
                    (
                        safe_text(
                            self.labels.get(a.session_id, a.session_id), 16 if narrow else 20
                        ),
                        safe_text(a.tool, 12),
                        safe_text(intent_target(a.params) or a.params, 24 if narrow else 40),
                        left,
                        age,
                        safe_text(a.subject, 18),
                        safe_text(a.origin, 8),
                    ),
                )
            )
        fill_table(self.query_one(DataTable), rows)
        hint = self.query_one("#approvals-hint", Static)
        if self.approvals:
            hint.update(
                Text.assemble(
                    decision_badge("APPROVAL"),
                    f" {len(self.approvals)} waiting · denied when the countdown ends",
                )
            )
        else:
            hint.update(
                Text("Nothing is waiting for approval. New requests appear here.", "italic")
            )
        self._show_detail()
        self.refresh_bindings()

    def _tick(self) -> None:
        table = self.query_one(DataTable)
        for a in self.approvals:
            if a.approval_id not in table.rows:
                continue
            age, left = self._timing(a)
            table.update_cell(a.approval_id, "age", age)
            table.update_cell(a.approval_id, "left", left)

    def selected(self) -> ApprovalRequest | None:
        key = selected_key(self.query_one(DataTable))
        return next((a for a in self.approvals if a.approval_id == key), None)

    def _show_detail(self) -> None:
        a = self.selected()
        body = self.query_one("#approval-body", Static)
        if a is None:
            body.update("")
            return
        text = Text.assemble(decision_badge("APPROVAL"), " ")
        text.append_text(labelled("session", self.labels.get(a.session_id, a.session_id), 40))
        text.append(f"  {a.session_id}\n", style="dim")
        text.append_text(labelled("tool", a.tool, 40))
        text.append("   ")
        text.append_text(labelled("agent", a.subject, 60))
        text.append("   ")
        text.append_text(labelled("origin", a.origin, 20))
        text.append("\n")
        if a.tool == "mcp.call" and isinstance(a.params.get("server"), str):
            mcp_tool = f"{a.params['server']}__{a.params.get('tool')}"
            text.append_text(labelled("mcp tool", mcp_tool, 80))
            text.append("\n")
        if a.run_content:
            text.append_text(labelled("run", a.run_content, 120))
            text.append("\n")
        if a.reason:
            text.append_text(labelled("why", a.reason, 400))
            text.append("\n")
        text.append("params:", style="dim")
        for key, value in sorted(a.params.items()):
            text.append("\n  ")
            text.append_text(labelled(safe_text(key, 40).plain, value, PARAM_MAX))
        note = cut_note(a)
        if note:
            text.append(f"\n{note}", style="bold")
        text.append(f"\nid {a.approval_id}", style="dim")
        body.update(text)

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        self._show_detail()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        allowed = super().check_action(action, parameters)
        if allowed and action in self.CHANGING and not self.approvals:
            return None  # shown dimmed: nothing to decide on
        return allowed

    # ------------------------------------------------------------------ decisions

    def action_approve(self) -> None:
        a = self.selected()
        if a is not None:
            self.decide(a.approval_id, allow=True, remember=False)

    def action_deny(self) -> None:
        a = self.selected()
        if a is not None:
            self.decide(a.approval_id, allow=False, remember=False)

    def action_remember(self) -> None:
        a = self.selected()
        if a is None:
            return
        if a.remember_override is None:
            self.notify(
                "this intent has no narrow override to remember; approve once with y",
                severity="warning",
            )
            return
        mode = safe_text(a.remember_override.get("approval"), 12).plain
        body = Text(
            "Allow this intent now and add this override to the session's policy: the rule "
            "that matched, narrowed to exactly this intent.\n"
        )
        body.append(
            f"It keeps that rule's limits and approval ({mode}): it never allows more than "
            "that rule, and later intents still ask when it says so.\n\n",
            style="bold",
        )
        body.append_text(safe_text(a.remember_override, DETAIL_MAX, multiline=True))
        if a.cut and "remember_override" in a.cut:
            body.append(f"\n{cut_note(a)}", style="bold")

        def answered(yes: bool | None) -> None:
            if yes:
                self.decide(a.approval_id, allow=True, remember=True)

        self.app.push_screen(
            ConfirmScreen("Approve and remember", body, confirm_label="Approve + add (y)"), answered
        )

    @work(group="decide")
    async def decide(self, approval_id: str, *, allow: bool, remember: bool) -> None:
        try:
            await self.engine.decide_approval(approval_id, allow, remember)
        except TalonError as exc:
            self.notify(str(exc), title="Approval", severity="error", markup=False)
        else:
            verb = "approved and remembered" if remember else "approved" if allow else "denied"
            self.notify(f"{approval_id} {verb}", markup=False)
        await self.load()


def cut_note(approval: ApprovalRequest) -> str:
    """Says that what is shown is a preview (an attached console gets large agent data cut,
    see engine/core/frames.py), how large the whole is, and where to read it."""
    if not approval.cut:
        return ""
    sizes = ", ".join(f"{name} {cut.bytes:,} bytes" for name, cut in approval.cut.items())
    return (
        f"⚠ preview only: {sizes} in full — read all of it with "
        f"`talon approvals show {approval.approval_id}`"
    )


def seconds_left(expires: str, now: datetime) -> int:
    """Whole seconds until `expires` (0 once passed)."""
    try:
        end = datetime.fromisoformat(expires.replace("Z", "+00:00"))
    except ValueError:
        return 0
    return max(0, int((end - now).total_seconds()))
