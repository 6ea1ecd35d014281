"""The policy editor: a session's overrides, the advisor's warnings, simulate and save.

Edits change an unsaved copy of the policy. Every change that grants a dangerous power
(shell.exec programs, container network, host mounts, private addresses) is confirmed in plain
words first; `s` re-evaluates the session's recorded intents against the unsaved copy; `ctrl+s`
shows the JSON diff and, on confirmation, hands the document to `engine.set_policy`, which
records `policy.updated`. `--readonly` shows the policy and its warnings with no changing key.
"""

from __future__ import annotations

import copy
from typing import Any, ClassVar

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.widgets import DataTable, OptionList, Static

from talon_tui.engine.api import EngineAPI
from talon_tui.engine.console_api import Advice, lint, merge_fix, plan_fix, worst_level
from talon_tui.engine.errors import TalonError
from talon_tui.engine.policy.models import Policy, parse_policy

from ..messages import EngineEvent
from ..widgets.advisor_panel import LEVEL_STYLES, AdvisorPanel
from ..widgets.badges import ALLOW_STYLE, DENY_STYLE, NEUTRAL_STYLE
from ..widgets.footer import TalonFooter
from ..widgets.override_form import OverrideFormScreen, constraint_summary
from ..widgets.policy_diff import (
    PolicyDiffScreen,
    SimulationScreen,
    danger_consequences,
    describe_changes,
    narrowing_summary,
    newly_allowed_text,
)
from ..widgets.safe_text import safe_text
from .base import TalonScreen, selected_key
from .confirm import ConfirmScreen

__all__ = ["PolicyEditorScreen", "constraint_summary", "merge_fix"]


class PolicyEditorScreen(TalonScreen):
    """Edit one session's policy; see the module docstring for the flow."""

    CSS_PATH = "policy_editor.tcss"
    CHANGING: ClassVar[frozenset[str]] = frozenset(
        {"add", "edit", "delete", "toggle", "tighten", "save", "revert", "simulate"}
    )
    RELOAD_ON: ClassVar[frozenset[str]] = frozenset()
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("a", "add", "add", id="policy.add", tooltip="Add an override"),
        Binding("e", "edit", "edit", id="policy.edit", tooltip="Edit the selected override"),
        Binding("v", "view", "view", id="policy.view", tooltip="Show the selected override"),
        Binding("d", "delete", "del", id="policy.delete", tooltip="Delete (asks first)"),
        Binding(
            "space",
            "toggle",
            "on/off",
            id="policy.toggle",
            tooltip="Enable or disable",
            key_display="␣",
        ),
        Binding(
            "t",
            "tighten",
            "tighten",
            id="policy.tighten",
            tooltip="Apply the next fix the advisor offers for the selected override",
        ),
        Binding("s", "simulate", "simulate", id="policy.simulate", tooltip="What would change"),
        Binding("ctrl+s", "save", "save", id="policy.save", tooltip="Show the diff, then save"),
        Binding("u", "revert", "revert", id="policy.revert", tooltip="Drop unsaved changes"),
        Binding("escape", "back", "back", id="policy.back", tooltip="Leave the editor", show=False),
        *TalonScreen.BINDINGS,
    ]

    def __init__(
        self,
        engine: EngineAPI,
        session_id: str,
        *,
        prefill_override: dict[str, Any] | None = None,
        readonly: bool = False,
    ) -> None:
        super().__init__(engine)
        self.session_id = session_id
        self._prefill = copy.deepcopy(prefill_override) if prefill_override else None
        self._readonly = readonly
        self._session_closed = False  # a closed session's policy can no longer change: read-only
        self._label = session_id
        self._workspace: str | None = None
        self._saved: dict[str, Any] | None = None
        self._overrides: list[dict[str, Any]] = []
        self._advice: list[Advice] = []

    # ------------------------------------------------------------------ state

    @property
    def readonly(self) -> bool:
        return self._readonly or self._session_closed or super().readonly

    @property
    def policy_doc(self) -> dict[str, Any]:
        """The unsaved policy document as edited."""
        return {"version": 1, "overrides": copy.deepcopy(self._overrides)}

    @property
    def dirty(self) -> bool:
        return self._saved is not None and self.policy_doc != self._saved

    @property
    def advice(self) -> list[Advice]:
        return list(self._advice)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "view":
            return self.readonly
        if action == "revert" and not self.readonly:
            return True if self.dirty else None
        return super().check_action(action, parameters)

    # ------------------------------------------------------------------ layout

    def compose(self) -> ComposeResult:
        yield Static("", id="editor-title")
        yield DataTable(id="overrides", cursor_type="row", zebra_stripes=True)
        yield Static("", id="editor-status")
        yield AdvisorPanel(id="advisor")
        yield TalonFooter()

    def on_mount(self) -> None:
        table = self.query_one("#overrides", DataTable)
        table.add_column("#", key="index", width=3)
        table.add_column("tool", key="tool", width=10)
        table.add_column("effect", key="effect", width=7)
        table.add_column("approval", key="approval", width=9)
        table.add_column("on", key="enabled", width=4)
        table.add_column("advice", key="advice", width=10)
        table.add_column("constraints", key="constraints")
        self.query_one("#editor-status", Static).display = False
        if self.readonly:
            self.add_class("-readonly")
        # TalonScreen.on_mount (run by Textual after this one) starts the first load.

    async def load(self) -> None:
        policy = await self.engine.get_policy(self.session_id)
        for session in await self.engine.list_sessions():
            if session.id == self.session_id:
                self._label, self._workspace = session.label, session.workspace
                self._session_closed = session.status == "closed"
        if self._session_closed:
            self.add_class("-readonly")
            self._status(
                "info",
                "Read-only: this session is closed, so its policy can no longer change "
                "(closing is final; create a new session to use a changed policy).",
            )
        first = self._saved is None
        was_dirty = self.dirty
        self._saved = policy.to_doc()
        if not was_dirty or self._session_closed:
            self._overrides = copy.deepcopy(self._saved["overrides"])
        self._refresh()
        if first:
            # Later loads (after each modal, on policy.updated) keep the unsaved copy and focus.
            self.query_one("#overrides", DataTable).focus()
            if self._prefill is not None and not self.readonly:
                self.fix_safely(self._prefill)

    def live_event(self, event: EngineEvent) -> None:
        payload = event.payload
        if (
            event.kind == "audit"
            and payload.get("type") == "session.closed"
            and payload.get("session_id") == self.session_id
        ):
            self.reload()  # it becomes read-only, and says why
            return
        if (
            event.kind == "audit"
            and payload.get("type") == "policy.updated"
            and payload.get("session_id") == self.session_id
            and self._saved is not None
            and (payload.get("data") or {}).get("policy") != self._saved
        ):
            if self.dirty:
                self._status(
                    "warn",
                    "This policy was changed elsewhere (policy.updated). Saving would replace "
                    "that change: revert (u) to see it.",
                )
            self.reload()

    # ------------------------------------------------------------------ drawing

    def _refresh(self) -> None:
        try:
            policy = parse_policy(self.policy_doc)
        except TalonError as exc:
            self._advice = []
            self._status("danger", exc.message)
        else:
            self._advice = lint(policy, self._workspace)
        self._fill_table()
        panel = self.query_one(AdvisorPanel)
        panel.show(self._advice, self._overrides)
        self._draw_title()
        self.refresh_bindings()

    def _fill_table(self) -> None:
        table = self.query_one("#overrides", DataTable)
        keep = selected_key(table)
        table.clear()
        for i, o in enumerate(self._overrides):
            mine = [a for a in self._advice if a.override_index == i]
            worst = worst_level(mine)
            badge = (
                Text(f" {len(mine)} {worst} ", style=LEVEL_STYLES[worst])
                if worst
                else Text("  ok", style="dim")
            )
            allow = o.get("allow", True)
            enabled = o.get("enabled", True)
            row_style = "" if enabled else "dim strike"
            table.add_row(
                Text(str(i), style=row_style),
                Text(str(o.get("tool")), style="bold" if enabled else row_style),
                Text(" ALLOW ", style=ALLOW_STYLE) if allow else Text(" DENY ", style=DENY_STYLE),
                Text(str(o.get("approval", "untrusted")), style=row_style),
                Text("on") if enabled else Text("off", style=NEUTRAL_STYLE),
                badge,
                constraint_summary(o),
                key=str(i),
            )
        if keep is not None and int(keep) < table.row_count:
            table.move_cursor(row=int(keep), animate=False)

    def _draw_title(self) -> None:
        # the state first: at 80 columns the end of the line is cut, never "unsaved changes"
        title = Text("Policy · ", style="bold", end="")
        title.append_text(safe_text(self._label, 24, style="bold"))
        if self.readonly:
            title.append(
                "  READ-ONLY: session closed " if self._session_closed else "  READ-ONLY ",
                style=NEUTRAL_STYLE,
            )
        elif self.dirty:
            title.append("  ● unsaved changes (ctrl+s saves, u reverts) ", style="bold yellow")
        else:
            title.append("  saved", style="dim")
        n = len(self._overrides)
        title.append(f"  ·  {n} override{'s' if n != 1 else ''}")
        title.append(f"  {self.session_id}", style="dim")
        self.query_one("#editor-title", Static).update(title)

    def _status(self, level: str | None, message: str = "") -> None:
        status = self.query_one("#editor-status", Static)
        if level is None:
            status.display = False
            return
        text = Text(f" {level.upper()} ", style=LEVEL_STYLES.get(level, ""), end="")
        text.append(" ")
        text.append_text(Text(safe_text(message, 600).plain))
        status.update(text)
        status.display = True

    # ------------------------------------------------------------------ selection

    def _selected_index(self) -> int | None:
        key = selected_key(self.query_one("#overrides", DataTable))
        return None if key is None else int(key)

    @on(DataTable.RowHighlighted, "#overrides")
    def _row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        if event.row_key is not None and event.row_key.value is not None:
            self.query_one(AdvisorPanel).highlight_override(int(event.row_key.value))

    @on(DataTable.RowSelected, "#overrides")
    def _row_selected(self) -> None:
        if self.readonly:
            self.action_view()
        else:
            self.action_edit()

    # ------------------------------------------------------------------ changes

    async def apply_change(self, overrides: list[dict[str, Any]], what: str) -> bool:
        """Make `overrides` the unsaved policy, after confirming any dangerous power it adds.
        Returns whether the change was made. Must run in a worker (it may wait on a modal)."""
        consequences = danger_consequences(self._overrides, overrides)
        if consequences:
            body = Text("Read this before going on:\n\n", end="")
            for line in consequences:
                body.append("• ")
                body.append_text(Text(safe_text(line, 600).plain))
                body.append("\n")
            body.append(
                "\nNothing is saved yet: the change goes into the unsaved policy; ctrl+s saves."
            )
            ok = await self.app.push_screen_wait(
                ConfirmScreen(
                    f"{what}: this grants a dangerous power",
                    body,
                    confirm_label="Yes, grant it (y)",
                )
            )
            if not ok:
                self._status("info", f"{what}: cancelled, nothing changed.")
                return False
        try:
            parse_policy({"version": 1, "overrides": overrides})
        except TalonError as exc:
            self._status("danger", exc.message)
            return False
        self._overrides = copy.deepcopy(overrides)
        self._status(None)
        self._refresh()
        return True

    @work(exclusive=True, group="dialog", exit_on_error=False)
    async def action_add(self) -> None:
        result = await self.app.push_screen_wait(OverrideFormScreen(title="Add override"))
        if result is not None:
            if await self.apply_change([*self._overrides, result], "Add override"):
                self._select(len(self._overrides) - 1)

    @work(exclusive=True, group="dialog", exit_on_error=False)
    async def action_edit(self) -> None:
        index = self._selected_index()
        if index is None:
            self.notify("No override selected: press a to add one.", severity="warning")
            return
        await self._edit(index, OverrideFormScreen(self._overrides[index], title=f"Edit #{index}"))

    async def _edit(self, index: int, form: OverrideFormScreen) -> None:
        result = await self.app.push_screen_wait(form)
        if result is not None:
            overrides = copy.deepcopy(self._overrides)
            overrides[index] = result
            await self.apply_change(overrides, f"Edit override #{index}")

    def action_view(self) -> None:
        index = self._selected_index()
        if index is not None:
            self.app.push_screen(
                OverrideFormScreen(
                    self._overrides[index], title=f"Override #{index} (read-only)", readonly=True
                )
            )

    @work(exclusive=True, group="dialog", exit_on_error=False)
    async def action_delete(self) -> None:
        index = self._selected_index()
        if index is None:
            return
        o = self._overrides[index]
        body = Text(f"Override #{index} ({o.get('tool')}) ", end="")
        body.append_text(constraint_summary(o))
        body.append(
            "\n\nWithout it, "
            + (
                f"{o.get('tool')} intents it allowed are denied (deny by default)."
                if o.get("allow", True)
                else f"{o.get('tool')} is no longer denied outright."
            )
            + "\nNothing is saved until ctrl+s."
        )
        if await self.app.push_screen_wait(
            ConfirmScreen(f"Delete override #{index}?", body, confirm_label="Delete (y)")
        ):
            overrides = [o for i, o in enumerate(self._overrides) if i != index]
            await self.apply_change(overrides, f"Delete override #{index}")

    @work(exclusive=True, group="dialog", exit_on_error=False)
    async def action_toggle(self) -> None:
        index = self._selected_index()
        if index is None:
            return
        overrides = copy.deepcopy(self._overrides)
        overrides[index]["enabled"] = not overrides[index].get("enabled", True)
        word = "Enable" if overrides[index]["enabled"] else "Disable"
        await self.apply_change(overrides, f"{word} override #{index}")

    @work(exclusive=True, group="dialog", exit_on_error=False)
    async def action_tighten(self) -> None:
        await self.tighten(self._next_tightening())

    @on(AdvisorPanel.TightenRequested)
    def _tighten_requested(self, event: AdvisorPanel.TightenRequested) -> None:
        if not self.readonly:
            self.run_worker(self.tighten(event.advice), group="dialog", exclusive=True)

    def _fixable(self, index: int | None) -> list[Advice]:
        """The advisor entries about override `index` that `t` can apply, in panel order."""
        return [a for a in self._advice if a.override_index == index and a.tightened is not None]

    def _next_tightening(self) -> Advice | None:
        """What `t` applies: the advisor entry the operator is on when the advisor has focus,
        else the highlighted entry if `t` can fix it, else the next fixable warning of the
        override under the cursor (so repeated `t` works through that override's warnings)."""
        panel = self.query_one(AdvisorPanel)
        highlighted = panel.highlighted_advice
        if highlighted is not None and self.focused is panel.query_one(OptionList):
            return highlighted
        index = self._selected_index()
        fixable = self._fixable(index)
        if highlighted is not None and highlighted in fixable:
            return highlighted
        if fixable:
            return fixable[0]
        mine = [a for a in self._advice if a.override_index == index]
        return mine[0] if mine else highlighted

    async def tighten(self, advice: Advice | None) -> None:
        if advice is None:
            self.notify("The advisor has nothing to tighten.", severity="information")
            return
        index = advice.override_index
        if advice.tightened is None or index is None or index >= len(self._overrides):
            where = "the policy" if index is None else f"override #{index}"
            self._status(
                advice.level,
                f"No one-key tightening left for {where} ({advice.field}); "
                f"by hand: {advice.alternative}",
            )
            return
        overrides = copy.deepcopy(self._overrides)
        before = overrides[index]
        overrides[index] = copy.deepcopy(advice.tightened)
        removed = "; ".join(narrowing_summary(before, overrides[index])) or advice.field
        if await self.apply_change(overrides, f"Tighten override #{index}"):
            left = self._fixable(index)
            if left:
                self.query_one(AdvisorPanel).highlight_advice(left[0])
                more = (
                    f"{len(left)} more warning{'s' if len(left) != 1 else ''} on #{index} "
                    "t can fix (t applies the next)"
                )
            else:
                rest = sum(a.override_index == index for a in self._advice)
                more = f"nothing more t can fix on #{index}" + (
                    f" ({rest} warning{'s' if rest != 1 else ''} left to edit by hand: e)"
                    if rest
                    else ""
                )
            self._status("info", f"Tightened override #{index}: {removed}. {more}. ctrl+s saves.")

    @work(exclusive=True, group="dialog", exit_on_error=False)
    async def action_revert(self) -> None:
        if not self.dirty or self._saved is None:
            return
        if await self.app.push_screen_wait(
            ConfirmScreen(
                "Drop the unsaved changes?",
                Text("The editor goes back to the saved policy; the engine is not touched."),
                confirm_label="Drop them (y)",
            )
        ):
            self._overrides = copy.deepcopy(self._saved["overrides"])
            self._status(None)
            self._refresh()

    @work(exclusive=True, group="dialog", exit_on_error=False)
    async def action_back(self) -> None:
        if self.dirty and not await self.app.push_screen_wait(
            ConfirmScreen(
                "Leave with unsaved changes?",
                Text("The changes are dropped; the saved policy stays as it is."),
                confirm_label="Leave (y)",
            )
        ):
            return
        if len(self.app.screen_stack) > 1:
            self.dismiss(None)

    def _select(self, index: int) -> None:
        table = self.query_one("#overrides", DataTable)
        if 0 <= index < table.row_count:
            table.move_cursor(row=index, animate=False)

    # ------------------------------------------------------------------ fix safely

    @work(exclusive=True, group="dialog", exit_on_error=False)
    async def fix_safely(self, fix: dict[str, Any]) -> None:
        """Open the form for a denial's suggested fix (`policy.fix.plan_fix`): its own narrow
        override, or merged where that allows exactly the union; every combination it newly
        allows is listed before anything changes."""
        tool = fix.get("tool")
        plan = plan_fix(self._overrides, fix)
        notice = Text("Suggested by a denial: the narrowest override allowing that intent.\n")
        if plan.denied_by is not None:
            notice.append(
                f"Override #{plan.denied_by} denies every {tool} intent and wins over any "
                "allow: disable or delete it for this fix to take effect.\n",
                style="bold",
            )
        if plan.merged:
            changes = describe_changes(self._overrides[plan.index], plan.override)
            if changes:
                notice.append(f"Merged into override #{plan.index} ({tool}); what changes:\n")
                notice.append_text(Text("\n").join(Text("  ") + line for line in changes))
                notice.append("\n")
            else:
                notice.append(f"Override #{plan.index} ({tool}) already allows it.\n")
        else:
            notice.append(f"Added as its own override #{plan.index}.\n")
        notice.append_text(newly_allowed_text(plan.newly_allowed))
        if plan.merged:
            form = OverrideFormScreen(
                plan.override, title=f"Fix safely: edit #{plan.index}", notice=notice
            )
            await self._edit(plan.index, form)
            return
        form = OverrideFormScreen(plan.override, title="Fix safely: add override", notice=notice)
        result = await self.app.push_screen_wait(form)
        if result is not None and await self.apply_change([*self._overrides, result], "Fix safely"):
            self._select(len(self._overrides) - 1)

    # ------------------------------------------------------------------ simulate, save

    @work(exclusive=True, group="dialog", exit_on_error=False)
    async def action_simulate(self) -> None:
        self._status("info", "Simulating against the session's recorded intents…")
        try:
            changes = await self.engine.simulate(self.session_id, self.policy_doc)
        except TalonError as exc:
            self._status("danger", f"Simulation failed: {exc.message}")
            return
        self._status(None)
        await self.app.push_screen_wait(SimulationScreen(changes))

    @work(exclusive=True, group="dialog", exit_on_error=False)
    async def action_save(self) -> None:
        if self._saved is None:
            return
        if not self.dirty:
            self.notify("No unsaved changes.", severity="information")
            return
        try:
            parse_policy(self.policy_doc)
        except TalonError as exc:
            self._status("danger", f"Not saved: {exc.message}")
            return
        confirmed = await self.app.push_screen_wait(
            PolicyDiffScreen(self._label, self._saved, self.policy_doc)
        )
        if not confirmed:
            return
        try:
            saved: Policy = await self.engine.set_policy(self.session_id, self.policy_doc)
        except TalonError as exc:
            self._status("danger", f"Not saved: {exc.message}")
            return
        self._saved = saved.to_doc()
        self._overrides = copy.deepcopy(self._saved["overrides"])
        self._status("info", "Saved; the change is recorded in the audit log (policy.updated).")
        self._refresh()
