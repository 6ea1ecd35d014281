"""Approvals: intents waiting for an operator. `y` approve once, `a` approve and remember
(after showing the override it adds), `n` deny."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import ClassVar

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import DataTable, Header, Static, TextArea

from talon_tui.engine.api import ApprovalPreview, ApprovalRequest, EngineAPI
from talon_tui.engine.errors import TalonError

from ..messages import EngineEvent
from ..widgets.badges import APPROVAL_COLOR, DENY_COLOR, decision_badge
from ..widgets.footer import TalonFooter
from ..widgets.policy_diff import diff_line_style
from ..widgets.safe_text import DETAIL_MAX, as_string, labelled, safe_text, visible
from ..widgets.summaries import age_seconds, human_age, intent_target
from .base import TalonScreen, fill_table, selected_key
from .confirm import ConfirmScreen

PARAM_MAX = 240  # characters of each param in the detail pane
PREVIEW_PAGE = 60  # lines of an approval's preview on one page


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
        Binding(
            "v",
            "view_all",
            "all",
            id="approvals.view_all",
            tooltip="Page through the whole request, every param in full, before deciding",
        ),
        Binding("]", "page(1)", "page", id="approvals.page_next", tooltip="Next preview page"),
        Binding(
            "[", "page(-1)", "page", id="approvals.page_prev", show=False, tooltip="Previous page"
        ),
    ]

    def __init__(self, engine) -> None:
        super().__init__(engine, name="approvals")
        self.approvals: list[ApprovalRequest] = []
        self.labels: dict[str, str] = {}
        self.preview: ApprovalPreview | None = None
        self.page = 0
        self._remembering: RememberScreen | None = None  # the open approve-and-remember dialog

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static(id="approvals-hint", classes="hint")
        yield DataTable(cursor_type="row", zebra_stripes=True, id="approvals-table")
        with VerticalScroll(id="approval-detail", classes="detail"):
            yield Static(id="approval-body")
        yield TalonFooter()

    def on_mount(self) -> None:
        table = self.query_one(DataTable)
        # at 80 columns every column stays on screen, narrower (the detail has them in full)
        for col in ("session", "tool", "params", "left", "age", "origin", "agent"):
            table.add_column(col, key=col)
        table.focus()
        self.set_interval(1.0, self._tick)
        super().on_mount()

    def on_screen_resume(self) -> None:
        # the queue is on screen: a toast saying "press 3 to decide" would be stale
        self.talon.withdraw_approval_toasts()
        super().on_screen_resume()

    async def load(self) -> None:
        approvals = await self.engine.list_approvals()
        sessions = await self.engine.list_sessions()
        self.labels = {s.id: s.label for s in sessions}
        self.approvals = sorted(approvals, key=lambda a: a.created)
        dialog = self._remembering
        if dialog is not None and all(a.approval_id != dialog.approval_id for a in approvals):
            dialog.gone()  # timed out, or decided elsewhere: nothing left to approve
        self._show()

    def live_event(self, event: EngineEvent) -> None:
        """The open approve-and-remember dialog closes when its approval stops waiting (this
        screen does not reload under a modal, so it watches the event itself)."""
        dialog = self._remembering
        payload = event.payload
        if (
            dialog is not None
            and event.kind == "approval"
            and payload.get("action") in ("decided", "expired")
            and (payload.get("approval") or {}).get("approval_id") == dialog.approval_id
        ):
            dialog.gone()

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
                            self.labels.get(a.session_id, a.session_id), 12 if narrow else 20
                        ),
                        safe_text(a.tool, 10 if narrow else 12),
                        safe_text(intent_target(a.params) or a.params, 16 if narrow else 40),
                        left,
                        age,
                        safe_text(a.origin, 8),
                        safe_text(a.subject, 10 if narrow else 18),
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
        p = self.preview if self.preview and self.preview.approval_id == a.approval_id else None
        text.append("\n\n")
        if p is None:
            text.append("effect: taking a preview…", style="italic")
            self.take_preview(a.approval_id)
        else:
            text.append_text(preview_text(p, self.page))
        body.update(text)

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        self.page = 0
        self._show_detail()

    @work(group="preview", exclusive=True)
    async def take_preview(self, approval_id: str) -> None:
        try:
            preview = await self.engine.approval_preview(approval_id)
        except TalonError as exc:
            preview = ApprovalPreview(
                approval_id=approval_id, tool="", taken="", note=f"no preview: {exc.message}"
            )
        self.preview = preview
        self._show_detail()

    def action_page(self, delta: int) -> None:
        p = self.preview
        if p is None:
            return
        pages = max(1, -(-len(p.lines) // PREVIEW_PAGE))
        self.page = max(0, min(pages - 1, self.page + delta))
        self._show_detail()

    def action_view_all(self) -> None:
        a = self.selected()
        if a is not None:
            self.app.push_screen(ApprovalContentScreen(self.engine, a.approval_id))

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "view_all" and not self.approvals:
            return None
        allowed = super().check_action(action, parameters)
        if allowed and action in self.CHANGING and not self.approvals:
            return None  # shown dimmed: nothing to decide on
        return allowed

    # ------------------------------------------------------------------ decisions

    def action_approve(self) -> None:
        a = self.selected()
        if a is not None:
            self.approve_checked(a.approval_id)

    @work(group="decide")
    async def approve_checked(self, approval_id: str) -> None:
        """Take the preview again at decision time: if the effect changed since it was shown
        (the file was edited meanwhile), show the new one and ask before allowing."""
        shown = self.preview if self.preview and self.preview.approval_id == approval_id else None
        try:
            now = await self.engine.approval_preview(approval_id)
        except TalonError:
            now = None
        if shown is None or now is None or effect(now) == effect(shown):
            self.decide(approval_id, allow=True, remember=False)
            return
        self.preview, self.page = now, 0
        self._show_detail()
        body = Text("The effect changed since the preview was shown. It is now:\n\n", "bold")
        body.append_text(preview_text(now, 0))

        def answered(yes: bool | None) -> None:
            if yes:
                self.decide(approval_id, allow=True, remember=False)

        self.app.push_screen(
            ConfirmScreen("Effect changed", body, confirm_label="Approve (y)"), answered
        )

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
            self._remembering = None
            if yes:
                self.decide(a.approval_id, allow=True, remember=True)

        self._remembering = RememberScreen(a, body, self.now)
        self.app.push_screen(self._remembering, answered)

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
        f"⚠ preview only: {sizes} in full — v pages through all of it "
        f"(or `talon approvals show {approval.approval_id}`)"
    )


CONTENT_LINE = 200  # characters per line of the whole-request view (long lines are broken)


def request_document(approval: ApprovalRequest) -> tuple[str, str]:
    """The whole request as literal text (control characters written out, long lines broken)
    and a one-line summary of its size."""
    parts: list[str] = []
    sizes: list[str] = []
    for key, value in sorted(approval.params.items(), key=lambda kv: str(kv[0])):
        raw = as_string(value, indent=2)
        size = len(raw.encode("utf-8", "surrogatepass"))
        lines = raw.count("\n") + 1
        sizes.append(f"{visible(str(key))} {size:,} bytes")
        parts.append(
            f"── params.{visible(str(key))}: {size:,} bytes, {len(raw):,} characters, "
            f"{lines:,} line{'s' if lines != 1 else ''}"
        )
        for line in visible(raw, multiline=True).split("\n"):
            parts.extend(line[i : i + CONTENT_LINE] for i in range(0, len(line), CONTENT_LINE))
            if not line:
                parts.append("")
        parts.append("")
    return "\n".join(parts), " · ".join(sizes) or "no params"


class ApprovalContentScreen(ModalScreen[None]):
    """The whole waiting request, read from the engine in full (an attached console gets it in
    pages), in a read-only view the operator pages through before deciding."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,q,v", "close", "close", id="approval_content.close"),
        Binding("ctrl+home", "start", "start", id="approval_content.start", show=False),
        Binding("ctrl+end", "end", "end", id="approval_content.end", show=False),
    ]
    DEFAULT_CSS = """
    ApprovalContentScreen { align: center middle; }
    ApprovalContentScreen > Vertical {
        width: 95%; height: 95%; border: thick $primary; background: $surface; padding: 0 1;
    }
    ApprovalContentScreen #content-title { height: auto; }
    ApprovalContentScreen TextArea { height: 1fr; border: round $panel-lighten-2; }
    ApprovalContentScreen TextArea:focus { border: heavy $accent; }
    ApprovalContentScreen.-narrow > Vertical, ApprovalContentScreen.-short > Vertical {
        width: 100%; height: 100%;
    }
    """

    def __init__(self, engine: EngineAPI, approval_id: str) -> None:
        super().__init__()
        self.engine = engine
        self.approval_id = approval_id
        self.document = ""
        self.sizes = ""

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Static(Text("Reading the whole request…", style="italic"), id="content-title")
            yield TextArea("", read_only=True, soft_wrap=True, show_line_numbers=False)
            yield Static(
                Text("pgup/pgdn page · ctrl+home/ctrl+end start/end · esc close", style="dim")
            )

    def on_mount(self) -> None:
        self.query_one(TextArea).focus()
        self.fetch()

    @work(group="preview", exclusive=True)
    async def fetch(self) -> None:
        title = self.query_one("#content-title", Static)
        try:
            approval = await self.engine.get_approval(self.approval_id)
        except TalonError as exc:
            title.update(safe_text(f"cannot read the request: {exc.message}", 300, style="red"))
            return
        self.document, self.sizes = request_document(approval)
        head = Text.assemble(("Whole request ", "bold"), decision_badge("APPROVAL"), " ")
        head.append_text(safe_text(approval.tool, 40, style="bold"))
        head.append(" · ")
        head.append_text(safe_text(intent_target(approval.params), 60))
        head.append(f"\ntotal size: {self.sizes} · nothing is cut here", style="dim")
        title.update(head)
        self.query_one(TextArea).load_text(self.document)

    def action_start(self) -> None:
        area = self.query_one(TextArea)
        area.move_cursor((0, 0))
        area.scroll_home(animate=False)

    def action_end(self) -> None:
        area = self.query_one(TextArea)
        area.move_cursor(area.document.end)
        area.scroll_end(animate=False)

    def action_close(self) -> None:
        self.dismiss(None)


def effect(p: ApprovalPreview) -> tuple[object, ...]:
    """What a preview says would happen (not when it was taken)."""
    return (p.fields, p.lines, p.lines_total, p.bytes, p.note)


def preview_text(p: ApprovalPreview, page: int) -> Text:
    """The preview, one page of its lines, with the total size always shown."""
    text = Text("effect", style="bold")
    text.append(f"  (taken {p.taken[11:19]})\n" if p.taken else "\n", style="dim")
    for label, value in p.fields:
        text.append_text(labelled(label, value, 400))
        text.append("\n")
    if p.note:
        text.append_text(labelled("note", p.note, 400))
        text.append("\n")
    pages = max(1, -(-len(p.lines) // PREVIEW_PAGE))
    page = max(0, min(page, pages - 1))
    start = page * PREVIEW_PAGE
    for line in p.lines[start : start + PREVIEW_PAGE]:
        text.append_text(safe_text(line, 400, style=diff_line_style(line)))
        text.append("\n")
    size = f"{p.bytes} bytes" if p.bytes else "no content"
    shown = f"lines {start + 1}–{min(start + PREVIEW_PAGE, len(p.lines))} of {p.lines_total}"
    cut = f" (first {len(p.lines)} kept)" if p.lines_total > len(p.lines) else ""
    more = " · ] next page, [ previous" if pages > 1 else ""
    text.append(f"{shown}{cut} · page {page + 1}/{pages} · total size {size}{more}", "dim")
    return text


class RememberScreen(ConfirmScreen):
    """The approve-and-remember question with the approval's countdown in its title. It closes
    by itself, saying so, when the approval expires or is decided elsewhere: a `y` after that
    could only fail."""

    def __init__(self, approval: ApprovalRequest, body: Text, now: Callable[[], datetime]):
        super().__init__("Approve and remember", body, confirm_label="Approve + add (y)")
        self.approval_id = approval.approval_id
        self.expires = approval.expires
        self._now = now
        self._closed_by_itself = False

    def on_mount(self) -> None:
        super().on_mount()
        self._tick()
        self.set_interval(1.0, self._tick)

    def _tick(self) -> None:
        left = seconds_left(self.expires, self._now())
        if left <= 0:
            self.gone()
            return
        title = Text("Approve and remember", style="bold", end="")
        color = DENY_COLOR if left <= 15 else APPROVAL_COLOR
        title.append(f"   {left}s left", style=f"bold {color}")
        title.append(" · denied when the countdown ends", style="dim")
        self.query_one("#confirm-title", Static).update(title)

    def gone(self) -> None:
        """The approval is no longer waiting: close, and say why nothing happened."""
        if self._closed_by_itself or not self.is_attached:
            return
        self._closed_by_itself = True
        if seconds_left(self.expires, self._now()) <= 0:
            why = "expired: the intent was denied when its countdown ended"
        else:
            why = "is no longer waiting: it was decided elsewhere"
        self.app.notify(
            f"Approval {self.approval_id} {why}. Nothing was approved or added to the policy.",
            title="Approve and remember",
            severity="warning",
            markup=False,
        )
        self.dismiss(None)


def seconds_left(expires: str, now: datetime) -> int:
    """Whole seconds until `expires` (0 once passed)."""
    try:
        end = datetime.fromisoformat(expires.replace("Z", "+00:00"))
    except ValueError:
        return 0
    return max(0, int((end - now).total_seconds()))
