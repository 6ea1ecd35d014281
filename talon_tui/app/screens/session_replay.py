"""Session replay: every run of a session on one time axis, read from the log (nothing
executes).

The axis shows one lane per run (oldest first) with its steps where they happened: `·`
decision, `✗` denial, `◆` approval (its wait drawn as `─` before it), `■` execution (`!` when its
recorded output does not check out) and `┃` across every lane for a policy change. ←/→ step
through the steps as the run replay does, with the same ✓/✗ output check; `z`/`Z` zoom in and
out (whole session, the selected step's run, the minute around it); `d`, `a`, `p` jump to the
next denial, approval or policy change (shift: the previous one); `enter` on a policy change
shows its diff; `w` lists every decision another policy would change, grouped by override.
The screen reads the steps in windows through the index, never the whole session at once: each
window brings the lanes of its runs (and a few either side) and the diffs of its policy
changes; a jump asks the engine for the next mark of its kind (one lookup in the index).
"""

from __future__ import annotations

import bisect
from datetime import datetime
from typing import Any, ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.widgets import Header, Static

from talon_tui.engine.api import PolicyChange, RunLane, SessionTimeline, TimelineMarker
from talon_tui.engine.errors import TalonError

from ..widgets.footer import TalonFooter
from ..widgets.safe_text import labelled, safe_text
from .base import TalonScreen
from .replay import WhatIfScreen

WINDOW = 500  # steps read per window (a jump reads one)
ZOOMS = ("session", "run", "minute")
GLYPH = {"decision": "·", "denial": "✗", "approval": "◆", "execution": "■", "policy": "┃"}
COLOR = {
    "decision": "green",
    "denial": "red",
    "approval": "yellow",
    "execution": "cyan",
    "policy": "magenta",
}
LANES_MAX = 12  # lanes drawn at once (the selected step's run is always among them)


def parse_ts(ts: str | None) -> float | None:
    if not ts:
        return None
    try:
        return datetime.fromisoformat(ts.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def gap_text(seconds: float) -> str:
    if seconds < 1:
        return f"{int(seconds * 1000)}ms"
    if seconds < 120:
        return f"{seconds:.1f}s"
    return f"{int(seconds // 60)}m{int(seconds) % 60:02d}s"


class SessionReplayScreen(TalonScreen):
    CSS_PATH = "session_replay.tcss"
    RELOAD_ON = frozenset({"missed"})
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("right,j", "step(1)", "next", id="sreplay.next", priority=True),
        Binding("left,k", "step(-1)", "prev", id="sreplay.prev", priority=True),
        Binding("z", "zoom(1)", "zoom in", id="sreplay.zoom_in"),
        Binding("Z", "zoom(-1)", "zoom out", id="sreplay.zoom_out", show=False),
        Binding("d", "jump('denial', 1)", "denial", id="sreplay.denial"),
        Binding("D", "jump('denial', -1)", "prev denial", id="sreplay.denial_b", show=False),
        Binding("a", "jump('approval', 1)", "approval", id="sreplay.approval"),
        Binding("A", "jump('approval', -1)", "prev", id="sreplay.approval_b", show=False),
        Binding("p", "jump('policy', 1)", "policy", id="sreplay.policy"),
        Binding("P", "jump('policy', -1)", "prev", id="sreplay.policy_b", show=False),
        Binding("w", "what_if", "what if", id="sreplay.what_if"),
    ]

    def __init__(self, engine, session_id: str) -> None:
        super().__init__(engine, name="session-replay")
        self.session_id = session_id
        self.timeline: SessionTimeline | None = None
        self.markers: list[TimelineMarker] = []
        self.lanes: list[RunLane] = []  # the window's runs and a few either side
        self.policies: dict[int, PolicyChange] = {}  # the policy changes known so far
        self.window: tuple[int, int | None] = (0, None)  # from_seq, next_seq of the window
        self.pos = 0
        self.zoom = 0
        self.label = session_id
        self.what_if_label: str | None = None
        self.what_if: list[Any] | None = None

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static(id="sreplay-title", classes="hint")
        yield Static(id="sreplay-axis")
        with VerticalScroll(id="sreplay-detail", classes="detail"):
            yield Static(id="sreplay-body")
        yield TalonFooter()

    # ------------------------------------------------------------------ loading

    async def load(self) -> None:
        if self.timeline is None:
            sessions = await self.engine.list_sessions()
            self.label = next((s.label for s in sessions if s.id == self.session_id), "")
        seq = self.current.seq if self.current else 0
        await self._read(self.window[0])
        self._select_seq(seq)

    async def _read(self, from_seq: int, *, summary: bool = True) -> None:
        """Read the window from `from_seq`; the whole-session summary (runs, policy changes,
        jump lists) only on a load, not for every window."""
        summary = summary or self.timeline is None
        tl = await self.engine.session_timeline(
            self.session_id, from_seq=from_seq, max_markers=WINDOW, summary=summary
        )
        if summary:
            self.timeline = tl
            self.policies = {}
        for change in tl.policies:  # a window brings the diffs of its own changes
            if change.diff or change.seq not in self.policies:
                self.policies[change.seq] = change
        self.markers, self.lanes = tl.markers, tl.runs
        self.window = (from_seq, tl.next_seq)

    @property
    def current(self) -> TimelineMarker | None:
        return self.markers[self.pos] if 0 <= self.pos < len(self.markers) else None

    def _select_seq(self, seq: int) -> None:
        seqs = [m.seq for m in self.markers]
        self.pos = min(max(0, bisect.bisect_left(seqs, seq)), max(0, len(self.markers) - 1))
        self._show()

    async def _go_to_seq(self, seq: int) -> None:
        """Select the step at `seq`, reading the window that holds it if need be."""
        lo, hi = self.window
        if seq < lo or (hi is not None and seq >= hi):
            await self._read(max(0, seq), summary=False)
        self._select_seq(seq)

    # ------------------------------------------------------------------ drawing

    def _span(self) -> tuple[float, float]:
        tl = self.timeline
        assert tl is not None
        start, end = parse_ts(tl.first_ts) or 0.0, parse_ts(tl.last_ts) or 0.0
        cur = self.current
        if ZOOMS[self.zoom] == "run" and cur is not None:
            lane = next((r for r in self.lanes if r.run_id == cur.run_id), None)
            if lane is not None:
                start = parse_ts(lane.started) or start
                end = parse_ts(lane.finished) or end
        elif ZOOMS[self.zoom] == "minute" and cur is not None:
            mid = parse_ts(cur.ts) or start
            start, end = mid - 30, mid + 30
        return start, max(end, start + 0.001)

    def _axis(self, width: int) -> Text:
        tl = self.timeline
        assert tl is not None
        start, end = self._span()
        cols = max(10, width - 28)

        def col(ts: str | None) -> int | None:
            t = parse_ts(ts)
            if t is None or t < start or t > end:
                return None
            return min(cols - 1, int((t - start) / (end - start) * (cols - 1)))

        cur = self.current
        lanes = [r for r in self.lanes if (parse_ts(r.finished) or end) >= start]
        lanes = [r for r in lanes if (parse_ts(r.started) or start) <= end]
        if cur is not None and len(lanes) > LANES_MAX:
            at = next((i for i, r in enumerate(lanes) if r.run_id == cur.run_id), 0)
            first = max(0, min(at - LANES_MAX // 2, len(lanes) - LANES_MAX))
            lanes = lanes[first : first + LANES_MAX]
        else:
            lanes = lanes[:LANES_MAX]
        policy_cols = {c for p in self.policies.values() if (c := col(p.ts)) is not None}
        by_run: dict[str | None, list[TimelineMarker]] = {}
        for m in self.markers:
            by_run.setdefault(m.run_id, []).append(m)
        text = Text()
        ruler = f"{gap_text(0)}".ljust(cols // 2) + f"{gap_text(end - start)}".rjust(
            cols - cols // 2
        )
        text.append(f"{'zoom ' + ZOOMS[self.zoom]:<23}", "bold")
        text.append(ruler + "\n", "dim")
        for lane in lanes:
            cells: list[tuple[str, str]] = [(" ", "")] * cols
            a, b = col(lane.started), col(lane.finished)
            for c in range(
                (a or 0) if a is not None else 0, (b if b is not None else cols - 1) + 1
            ):
                cells[c] = ("─", "dim")
            for c in policy_cols:
                cells[c] = (GLYPH["policy"], COLOR["policy"])
            for m in by_run.get(lane.run_id, []):
                c = col(m.ts)
                if c is None:
                    continue
                glyph = GLYPH[m.kind]
                if m.kind == "execution" and m.output_matches is False:
                    glyph = "!"
                style = COLOR[m.kind] + (" reverse" if m is cur else "")
                if m.kind == "approval" and m.wait_ms:
                    w = int(m.wait_ms / 1000 / (end - start) * (cols - 1))
                    for k in range(max(0, c - w), c):
                        cells[k] = ("═", "yellow")
                if cells[c][0] in ("✗", "!") and m is not cur:
                    continue  # a denial or a mismatch is never hidden under another step
                cells[c] = (glyph, style)
            mark = "▶ " if cur is not None and cur.run_id == lane.run_id else "  "
            text.append(mark + safe_text(lane.run_id, 20).plain.ljust(20) + " ")
            for glyph, style in cells:
                text.append(glyph, style)
            text.append("\n")
        if not lanes:
            text.append("no runs in this part of the session\n", "italic")
        return text

    def _show(self) -> None:
        tl = self.timeline
        if tl is None:
            return
        title = Text()
        title.append_text(labelled("session", self.label or "?", 30))
        title.append(" · ", "dim")
        title.append_text(labelled("id", tl.session_id, 40))
        title.append(
            f" · {tl.events} events · {tl.run_count} runs"
            f" · {tl.counts.get('policy', 0)} policy changes"
            f" · {tl.counts.get('denial', 0)} denials"
        )
        title.append("\nreads the log, nothing executes · ", "dim")
        title.append(
            "· decision  ✗ denial  ◆ approval (═ its wait)  ■ execution (! output mismatch)  "
            "┃ policy change",
            "dim",
        )
        self.query_one("#sreplay-title", Static).update(title)
        self.query_one("#sreplay-axis", Static).update(self._axis(self.size.width or 120))
        self.query_one("#sreplay-body", Static).update(self._detail())

    def _detail(self) -> Text:
        cur, tl = self.current, self.timeline
        assert tl is not None
        text = Text()
        if self.what_if is not None:
            total = sum(g.total or len(g.changes) for g in self.what_if)
            text.append(f"what if {self.what_if_label}: {total} decision(s) would change\n", "bold")
            for g in self.what_if:
                text.append(f"  {g.override}: {g.total or len(g.changes)}\n", "bold")
                for c in g.changes[:200]:
                    text.append(f"    seq {c.seq} {c.tool} ")
                    text.append_text(safe_text(c.params.get("path") or c.params, 60))
                    text.append(f"  {c.before} → {c.after}\n", "yellow")
                shown = min(200, len(g.changes))
                if (g.total or len(g.changes)) > shown:
                    more = (g.total or len(g.changes)) - shown
                    text.append(f"    … {more} more (talon replay --session lists all)\n", "dim")
            text.append("\n")
        if cur is None:
            text.append("no steps in this session", "italic")
            return text
        prev = self.markers[self.pos - 1] if self.pos > 0 else None
        text.append(f"step {self.pos + 1 + 0} of {len(self.markers)}", "bold")
        text.append(f"   seq {cur.seq}   {cur.ts}", "dim")
        if prev is not None:
            a, b = parse_ts(prev.ts), parse_ts(cur.ts)
            if a is not None and b is not None:
                text.append(f"   gap +{gap_text(max(0.0, b - a))}", "dim")
        text.append("\n")
        text.append(f"{cur.kind}", f"bold {COLOR[cur.kind]}")
        for label, value in (
            ("run", cur.run_id),
            ("tool", cur.tool),
            ("target", cur.target),
            ("decision", cur.decision),
        ):
            if value:
                text.append("  ")
                text.append_text(labelled(label, value, 80))
        text.append("\n")
        if cur.wait_ms is not None:
            text.append(f"waited {gap_text(cur.wait_ms / 1000)} for the decision\n")
        if cur.duration_ms is not None:
            text.append(f"took {gap_text(cur.duration_ms / 1000)} · status {cur.status}\n")
        if cur.kind == "execution":
            if cur.output_matches:
                text.append("✓ recorded output matches its sha256\n", "green")
            else:
                text.append("✗ recorded output does NOT match its sha256\n", "bold red")
        if cur.text:
            text.append_text(labelled("why" if cur.kind == "denial" else "note", cur.text, 400))
            text.append("\n")
        if cur.kind == "policy":
            change = self.policies.get(cur.seq)
            if change is not None:
                text.append(
                    f"policy {change.policy_sha256} (was {change.previous_sha256})\n", "dim"
                )
                for line in change.diff:
                    style = (
                        "green"
                        if line.startswith("+") and not line.startswith("+++")
                        else "red"
                        if line.startswith("-") and not line.startswith("---")
                        else ""
                    )
                    text.append_text(safe_text(line, 200, style=style))
                    text.append("\n")
        return text

    def on_resize(self) -> None:
        if self.timeline is not None:
            self._show()

    # ------------------------------------------------------------------ actions

    async def action_step(self, delta: int) -> None:
        if not self.markers:
            return
        nxt = self.pos + delta
        lo, hi = self.window
        if nxt >= len(self.markers) and hi is not None:
            await self._go_to_seq(hi)
            return
        if nxt < 0 and lo > 0:
            first = self.markers[0].seq
            await self._read_back(first)
            seqs = [m.seq for m in self.markers]  # the step just before `first`
            self.pos = max(0, bisect.bisect_left(seqs, first) - 1)
            self._show()
            return
        self.pos = max(0, min(len(self.markers) - 1, nxt))
        self._show()

    async def _read_back(self, seq: int) -> None:
        """Read the window that holds the step just before `seq`: from WINDOW seqs back (at
        most WINDOW steps, so the window reaches `seq`), further back while that part of the
        log holds none of this session's steps, and on from a window that ended short."""
        back = WINDOW
        while True:
            await self._read(max(0, seq - back), summary=False)
            while self.window[1] is not None and self.window[1] < seq:
                await self._read(self.window[1], summary=False)
            if seq - back <= 0 or (self.markers and self.markers[0].seq < seq):
                return
            back *= 4

    def action_zoom(self, delta: int) -> None:
        self.zoom = max(0, min(len(ZOOMS) - 1, self.zoom + delta))
        self._show()

    async def action_jump(self, kind: str, direction: int) -> None:
        tl, cur = self.timeline, self.current
        if tl is None:
            return
        at = cur.seq if cur else -1
        try:
            target = await self.engine.session_jump(self.session_id, kind, at, direction)
        except TalonError as exc:
            self.notify(str(exc), title="Jump", severity="error", markup=False)
            return
        if target is None:
            self.notify(f"no {'next' if direction > 0 else 'earlier'} {kind}", markup=False)
            return
        await self._go_to_seq(target)

    def action_what_if(self) -> None:
        self.app.push_screen(WhatIfScreen(self.engine, self.session_id), self.apply_what_if)

    def apply_what_if(self, choice: dict[str, Any] | None) -> None:
        if choice:
            self.run_worker(self._what_if(choice), exclusive=True, group="load")

    async def _what_if(self, choice: dict[str, Any]) -> None:
        try:
            tl = await self.engine.session_timeline(
                self.session_id, choice["policy"], from_seq=0, max_markers=1
            )
        except TalonError as exc:
            self.notify(str(exc), title="What if", severity="error", markup=False)
            return
        self.what_if_label, self.what_if = choice["label"], tl.what_if or []
        self._show()
