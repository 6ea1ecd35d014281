"""Replay: step through a recorded run from the audit log; nothing is executed.

Without a run id the screen first lists `engine.list_runs()` to choose from. Each step shows
the decision, the reason, the token hash, the recorded output and whether it still matches its
recorded sha256; the title says whether the whole chain verifies. "What if" (`w`) replays the
run against another policy (a file, or the session's current one) and marks the steps whose
decision would change.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import DataTable, Header, Input, OptionList, Static
from textual.widgets.option_list import Option

from talon_tui.engine.api import EngineAPI, ReplayResult, ReplayStep, RunSummary
from talon_tui.engine.errors import PolicyInvalid, TalonError
from talon_tui.engine.policy.models import read_policy_json

from ..widgets.badges import ALLOW_COLOR, DENY_COLOR, decision_badge, status_badge
from ..widgets.footer import TalonFooter
from ..widgets.safe_text import DETAIL_MAX, labelled, safe_text
from ..widgets.summaries import counted, short_ts
from .base import TalonScreen, fill_table, selected_key

BANNER = "Replay reads the log; nothing is executed."
PLAY_SECONDS = 0.6


def match_mark(step: ReplayStep) -> Text:
    if step.output_matches is None:
        return Text("")
    if step.output_matches:
        return Text("✓", style=f"bold {ALLOW_COLOR}")
    return Text("✗", style=f"bold {DENY_COLOR}")


class WhatIfScreen(ModalScreen[dict[str, Any] | None]):
    """Choose the other policy: a JSON file path, or (ctrl+o) the session's current policy."""

    CSS_PATH = "replay.tcss"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "dismiss_none", "cancel", id="what_if.cancel"),
        Binding(
            "ctrl+o", "session_policy", "session's policy", id="what_if.session", priority=True
        ),
    ]

    def __init__(self, engine: EngineAPI, session_id: str | None) -> None:
        super().__init__()
        self.engine = engine
        self.session_id = session_id

    def compose(self) -> ComposeResult:
        with Vertical(id="what-if"):
            yield Static("What if another policy had decided?", classes="title", markup=False)
            yield Static(
                "Type the path of a policy file (JSON) and press enter,\n"
                "or press ctrl+o to use the session's current policy.",
                classes="hint",
                id="what-if-hint",
                markup=False,
            )
            yield Input(placeholder="sample_policies/strict-readonly.json", id="what-if-path")
            yield Static(id="what-if-error")

    def action_dismiss_none(self) -> None:
        self.dismiss(None)

    def _error(self, problem: str) -> None:
        self.query_one("#what-if-error", Static).update(safe_text(problem, 300, style="red"))

    def on_input_submitted(self, event: Input.Submitted) -> None:
        path = Path(event.value.strip()).expanduser()
        try:
            doc = read_policy_json(path.read_bytes())
        except OSError as exc:
            self._error(f"cannot read {path}: {exc.strerror or exc}")
            return
        except PolicyInvalid as exc:
            self._error(f"{path}: {exc.message}")
            return
        if not isinstance(doc, dict):
            self._error(f"{path} does not hold a policy object")
            return
        self.dismiss({"label": str(path), "policy": doc})

    async def action_session_policy(self) -> None:
        if not self.session_id:
            self._error("this run has no session")
            return
        try:
            policy = await self.engine.get_policy(self.session_id)
        except TalonError as exc:
            self._error(str(exc))
            return
        doc = policy.model_dump(mode="json", exclude_none=True)
        self.dismiss({"label": f"current policy of {self.session_id}", "policy": doc})


class TypeChoiceScreen(ModalScreen[str | None]):
    """Pick a step type to jump to."""

    CSS_PATH = "replay.tcss"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "dismiss_none", "cancel", id="type_choice.cancel"),
    ]

    def __init__(self, types: list[str]) -> None:
        super().__init__()
        self.types = types

    def compose(self) -> ComposeResult:
        with Vertical(id="type-choice"):
            yield Static("Jump to the next step of type", classes="title", markup=False)
            yield OptionList(*[Option(safe_text(t, 40), id=t) for t in self.types])

    def action_dismiss_none(self) -> None:
        self.dismiss(None)

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        self.dismiss(event.option.id)


class ReplayScreen(TalonScreen):
    """One run's recorded steps, stepped through; outputs checked; what-if marks."""

    CSS_PATH = "replay.tcss"
    RELOAD_ON: ClassVar[frozenset[str]] = frozenset({"run"})
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("right,j", "step(1)", "next", id="replay.next", tooltip="Next step", priority=True),
        Binding(
            "left,k", "step(-1)", "prev", id="replay.prev", tooltip="Previous step", priority=True
        ),
        Binding(
            "space", "play", "play", id="replay.play", tooltip="Play or pause: step on a timer"
        ),
        Binding(
            "t", "jump_type", "type", id="replay.type", tooltip="Jump to the next step of a type"
        ),
        Binding("w", "what_if", "what if", id="replay.what_if", tooltip="Another policy"),
        Binding("o", "choose_run", "runs", id="replay.choose", tooltip="Choose another run"),
    ]

    def __init__(self, engine: EngineAPI, run_id: str | None = None) -> None:
        super().__init__(engine, name="replay")
        self.run_id = run_id
        self.runs: list[RunSummary] = []
        self.labels: dict[str, str] = {}
        self.result: ReplayResult | None = None
        self.what_if_label: str | None = None
        self.what_if_policy: dict[str, Any] | None = None
        self.playing = False
        self._timer: Any = None

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static(BANNER, id="replay-banner", markup=False)
        yield Static(id="replay-title")
        with Vertical(id="run-chooser"):
            yield Static("Choose a run (enter)", classes="hint", markup=False)
            yield DataTable(cursor_type="row", zebra_stripes=True, id="runs")
        with Horizontal(id="replay-body"):
            yield DataTable(cursor_type="row", id="steps")
            with VerticalScroll(id="step-detail"):
                yield Static(id="step-view")
        yield TalonFooter()

    def on_mount(self) -> None:
        runs = self.query_one("#runs", DataTable)
        for col in ("run", "session", "status", "steps", "started", "content"):
            runs.add_column(col, key=col)
        steps = self.query_one("#steps", DataTable)
        for col in ("seq", "type", "decision", "out", "what if"):
            steps.add_column(col, key=col)
        self._show_mode()
        super().on_mount()

    @property
    def choosing(self) -> bool:
        return self.run_id is None

    def _show_mode(self) -> None:
        self.query_one("#run-chooser").display = self.choosing
        self.query_one("#replay-body").display = not self.choosing
        (self.query_one("#runs") if self.choosing else self.query_one("#steps")).focus()
        self.refresh_bindings()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action in ("step", "play", "jump_type", "what_if"):
            return not self.choosing and self.result is not None
        return super().check_action(action, parameters)

    # ------------------------------------------------------------------ loading

    async def load(self) -> None:
        # labels say more to an operator than ids; a run of a removed session keeps its id
        self.labels = {s.id: s.label for s in await self.engine.list_sessions()}
        if self.choosing:
            self.runs = await self.engine.list_runs()
            self._show_runs()
            self._show_title()
            return
        if self.result is not None and self.result.run_id == self.run_id and self.loads:
            return  # a recorded run does not change; reload only on choice or what-if
        await self._replay()

    async def _replay(self) -> None:
        assert self.run_id is not None
        self.result = await self.engine.replay(self.run_id, self.what_if_policy)
        self._show_steps()
        self._show_title()
        self.refresh_bindings()

    def _show_runs(self) -> None:
        rows = []
        for r in sorted(self.runs, key=lambda r: r.started, reverse=True):
            rows.append(
                (
                    r.run_id,
                    (
                        Text(r.run_id),
                        safe_text(self.labels.get(r.session_id or "", r.session_id or "—"), 24),
                        status_badge(r.status),
                        Text(str(r.steps), justify="right"),
                        Text(short_ts(r.started), style="dim"),
                        safe_text(r.content, 50),
                    ),
                )
            )
        fill_table(self.query_one("#runs", DataTable), rows)

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        if event.data_table.id != "runs":
            return
        run_id = selected_key(event.data_table)
        if run_id:
            self.open_run(str(run_id))

    def open_run(self, run_id: str) -> None:
        self.run_id = run_id
        self.result = None
        self.what_if_policy = self.what_if_label = None
        self._show_mode()
        self.reload()

    def action_choose_run(self) -> None:
        self._stop()
        self.run_id = None
        self.result = None
        self._show_mode()
        self.reload()

    def _show_title(self) -> None:
        title = Text(end="")
        if self.choosing or self.result is None:
            title.append(f"{len(self.runs)} recorded runs", style="bold")
        else:
            r = self.result
            title.append("Run ", style="bold")
            title.append_text(safe_text(r.run_id, 40, style="bold"))
            title.append("  session ", style="dim")
            if r.session_id in self.labels:
                title.append_text(safe_text(self.labels[r.session_id], 30))
                title.append(" · ", style="dim")
            title.append_text(safe_text(r.session_id, 40, style="dim"))
            # the picker counts an agent's steps (intents); the replay lists every event
            steps = sum(1 for step in r.steps if step.type == "policy.intent.received")
            title.append(
                f"  {counted(steps, 'step')} · {counted(len(r.steps), 'event')}  ", style="dim"
            )
            if r.chain_valid:
                title.append("chain ✓ valid", style=f"bold {ALLOW_COLOR}")
            else:
                title.append(
                    f"chain ✗ broken at seq {r.chain_first_bad_seq}", style=f"bold {DENY_COLOR}"
                )
            if self.what_if_label is not None:
                changed = len(r.changed_by_policy or [])
                title.append("\nwhat if: ", style="bold")
                title.append_text(safe_text(self.what_if_label, 70))
                title.append(f" — {changed} decision{'s' if changed != 1 else ''} would change")
            if self.playing:
                title.append("  ▶ playing", style="bold")
        self.query_one("#replay-title", Static).update(title)

    def _show_steps(self) -> None:
        assert self.result is not None
        rows = []
        for step in self.result.steps:
            if step.what_if_decision is None:
                what_if = Text("")
            elif step.changed_by_policy:
                what_if = Text.assemble(("≠ ", "bold"), decision_badge(step.what_if_decision))
            else:
                what_if = Text("same", style="dim")
            rows.append(
                (
                    str(step.seq),
                    (
                        Text(str(step.seq), justify="right"),
                        safe_text(step.type, 24, style="cyan")
                        if step.executor != "agent"
                        else safe_text(f"{step.type} ·agent", 34, style="yellow"),
                        decision_badge(step.decision),
                        match_mark(step),
                        what_if,
                    ),
                )
            )
        table = self.query_one("#steps", DataTable)
        fill_table(table, rows)
        self._show_step()

    @property
    def current(self) -> ReplayStep | None:
        if self.result is None or not self.result.steps:
            return None
        row = self.query_one("#steps", DataTable).cursor_row
        return self.result.steps[max(0, min(row, len(self.result.steps) - 1))]

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        if event.data_table.id == "steps":
            self._show_step()

    def _show_step(self) -> None:
        step = self.current
        view = self.query_one("#step-view", Static)
        if step is None:
            view.update(Text("this run has no steps", style="dim"))
            return
        text = Text(end="")
        text.append(f"step seq {step.seq}  ", style="bold")
        text.append_text(safe_text(step.type, 40, style="bold cyan"))
        text.append(f"\n{step.ts.replace('T', ' ')}\n\n", style="dim")
        if step.tool:
            text.append_text(labelled("tool", step.tool))
            text.append("\n")
        if step.executor == "agent":
            text.append(
                "run by the agent itself (agent hook): Talon decided, the broker ran nothing\n",
                style="bold yellow",
            )
        if step.params is not None:
            text.append_text(labelled("params", step.params, 400))
            text.append("\n")
        if step.decision:
            text.append("decision: ", style="dim")
            text.append_text(decision_badge(step.decision))
            text.append("\n")
        if step.what_if_decision:
            text.append("with the other policy: ", style="dim")
            text.append_text(decision_badge(step.what_if_decision))
            text.append("  changed\n" if step.changed_by_policy else "  same\n", style="bold")
        if step.reason:
            text.append_text(labelled("reason", step.reason, 600))
            text.append("\n")
        if step.token_sha256:
            text.append_text(labelled("token sha256", step.token_sha256, 80))
            text.append("\n")
        if step.output_sha256 is not None or step.output is not None:
            text.append_text(labelled("recorded sha256", step.output_sha256, 80))
            text.append("\n")
            if step.output_matches:
                text.append(
                    "✓ the recorded output matches its sha256\n", style=f"bold {ALLOW_COLOR}"
                )
            else:
                text.append(
                    "✗ the recorded output does NOT match its sha256 (changed after it was "
                    "written)\n",
                    style=f"bold {DENY_COLOR}",
                )
            text.append("recorded output:\n", style="dim")
            text.append_text(safe_text(step.output, DETAIL_MAX, multiline=True))
        view.update(text)

    # ------------------------------------------------------------------ stepping

    def action_step(self, delta: int) -> None:
        table = self.query_one("#steps", DataTable)
        if table.row_count:
            table.move_cursor(row=max(0, min(table.cursor_row + delta, table.row_count - 1)))

    def action_top(self) -> None:
        if not self.choosing:
            self.query_one("#steps", DataTable).move_cursor(row=0)
        else:
            super().action_top()

    def action_bottom(self) -> None:
        table = self.query_one("#steps" if not self.choosing else "#runs", DataTable)
        if table.row_count:
            table.move_cursor(row=table.row_count - 1)

    def action_play(self) -> None:
        if self.playing:
            self._stop()
        else:
            self.playing = True
            self._timer = self.set_interval(PLAY_SECONDS, self._tick, name="replay-play")
        self._show_title()

    def _tick(self) -> None:
        table = self.query_one("#steps", DataTable)
        if table.cursor_row >= table.row_count - 1:
            self._stop()
            self._show_title()
            return
        self.action_step(1)

    def _stop(self) -> None:
        self.playing = False
        if self._timer is not None:
            self._timer.stop()
            self._timer = None

    def action_jump_type(self) -> None:
        assert self.result is not None
        types = list(dict.fromkeys(s.type for s in self.result.steps))
        self.app.push_screen(TypeChoiceScreen(types), self.jump_to_type)

    def jump_to_type(self, step_type: str | None) -> None:
        if not step_type or self.result is None:
            return
        steps = self.result.steps
        start = self.query_one("#steps", DataTable).cursor_row
        for i in [*range(start + 1, len(steps)), *range(0, start + 1)]:
            if steps[i].type == step_type:
                self.query_one("#steps", DataTable).move_cursor(row=i)
                return

    def action_what_if(self) -> None:
        session_id = self.result.session_id if self.result else None
        self.app.push_screen(WhatIfScreen(self.engine, session_id), self.apply_what_if)

    def apply_what_if(self, choice: dict[str, Any] | None) -> None:
        if not choice:
            return
        self.what_if_label = choice["label"]
        self.what_if_policy = choice["policy"]
        self.run_worker(
            self._what_if_guarded(), exclusive=True, group="what-if", exit_on_error=False
        )

    async def _what_if_guarded(self) -> None:
        row = self.query_one("#steps", DataTable).cursor_row
        try:
            await self._replay()
        except TalonError as exc:
            self.what_if_label = self.what_if_policy = None
            self.notify(str(exc), title="What if", severity="error", markup=False)
            return
        self.query_one("#steps", DataTable).move_cursor(row=row)
        self.loads += 1
