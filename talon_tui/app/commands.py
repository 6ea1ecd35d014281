"""Command palette providers (ctrl+p): "session: …", "policy: …", "audit: …", "replay: …",
"go: …", and the actions of the screen it was opened on ("policy editor: tighten"). Labels
come from agents and operators, so hits are built as literal Content, never parsed as markup."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, cast

from textual.command import DiscoveryHit, Hit, Hits, Provider
from textual.content import Content

from talon_tui.engine.api import RunSummary, SessionInfo
from talon_tui.engine.errors import TalonError

from .navigation import Navigator
from .screens.help import binding_rows, class_words
from .widgets.safe_text import safe_plain
from .widgets.summaries import counted

Command = tuple[str, Callable[[], Any], str]


class TalonProvider(Provider):
    """Shared search over a list of (text, callback, help) commands built at startup."""

    commands: list[Command]

    @property
    def talon(self) -> Navigator:
        return cast(Navigator, self.app)

    async def startup(self) -> None:
        try:
            self.commands = await self.build()
        except TalonError as exc:
            self.commands = []
            self.app.notify(str(exc), title="Command palette", severity="error", markup=False)

    async def build(self) -> list[Command]:
        return []

    def go(self, name: str, arg: str | None = None) -> Callable[[], Any]:
        app = self.talon
        return lambda: app.run_worker(app.go(name, arg), group="nav")

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for text, callback, help_ in self.commands:
            score = matcher.match(text)
            if score > 0:
                yield Hit(score, _highlight(matcher, text), callback, text=text, help=help_)

    async def discover(self) -> Hits:
        for text, callback, help_ in self.commands[:12]:
            yield DiscoveryHit(Content(text), callback, text=text, help=help_)


def _highlight(matcher: Any, text: str) -> Content:
    content = Content(text)
    _score, offsets = matcher.fuzzy_search.match(matcher.query, text)
    for offset in offsets:
        if not text[offset].isspace():
            content = content.stylize(matcher.match_style, offset, offset + 1)
    return content


def _name(session: SessionInfo) -> str:
    return f"{safe_plain(session.label, 40)} ({session.id})"


class SessionCommands(TalonProvider):
    async def build(self) -> list[Command]:
        app = self.talon
        out: list[Command] = []
        if not app.readonly:
            out.append(("session: create a new session", self._create, "label, workspace, policy"))
        out.append(("session: list all sessions", self.go("sessions"), "the sessions table"))
        for s in await app.engine.list_sessions():
            out.append(
                (f"session: open {_name(s)}", self.go("session", s.id), "runs, policy, audit")
            )
        return out

    def _create(self) -> None:
        async def run() -> None:
            await self.talon.go("sessions")
            screen = self.talon.screen
            if hasattr(screen, "action_new_session"):
                screen.action_new_session()

        self.talon.run_worker(run(), group="nav")


class PolicyCommands(TalonProvider):
    async def build(self) -> list[Command]:
        verb = "view" if self.talon.readonly else "edit"
        return [
            (f"policy: {verb} {_name(s)}", self.go("policy", s.id), "the policy editor")
            for s in await self.talon.engine.list_sessions()
            if s.status == "open" or self.talon.readonly
        ]


class AuditCommands(TalonProvider):
    async def build(self) -> list[Command]:
        out: list[Command] = [
            ("audit: open the audit log", self.go("audit"), "live tail, filters, verify"),
            ("audit: verify the chain now", self._verify, "hash chain and signed checkpoints"),
        ]
        for s in await self.talon.engine.list_sessions():
            out.append((f"audit: events of {_name(s)}", self.go("audit", s.id), "filtered"))
        return out

    def _verify(self) -> None:
        async def run() -> None:
            try:
                report = await self.talon.engine.verify_audit()
            except TalonError as exc:
                self.talon.notify(str(exc), title="Verify", severity="error", markup=False)
                return
            if report.valid:
                self.talon.notify(f"chain valid: {report.events} events", title="Audit chain")
            else:
                self.talon.notify(
                    f"chain BROKEN at seq {report.first_bad_seq}: {report.damage} {report.message}",
                    title="Audit chain",
                    severity="error",
                    markup=False,
                    timeout=20,
                )

        self.talon.run_worker(run(), group="verify")


class ReplayCommands(TalonProvider):
    async def build(self) -> list[Command]:
        labels = {s.id: s.label for s in await self.talon.engine.list_sessions()}
        out: list[Command] = [("replay: choose a run", self.go("replay"), "step through a run")]
        for sid, label in labels.items():
            out.append(
                (
                    f"replay: session {safe_plain(label, 30)} ({sid})",
                    self.go("session-replay", sid),
                    "every run of the session on one time axis",
                )
            )
        runs: list[RunSummary] = await self.talon.engine.list_runs(limit=100)
        for r in runs:
            label = safe_plain(labels.get(r.session_id or "", r.session_id or "?"), 30)
            out.append(
                (
                    f"replay: run {r.run_id} ({label}, {r.status}, {counted(r.steps, 'step')})",
                    self.go("replay", r.run_id),
                    "recorded outputs, hashes checked, nothing executes",
                )
            )
        return out


class GoCommands(TalonProvider):
    async def build(self) -> list[Command]:
        return [
            (f"go: {name}", self.go(name), help_) for name, help_ in self.talon.palette_targets()
        ]


class ScreenCommands(TalonProvider):
    """Every action of the screen the palette was opened on, under the screen's name: "tighten"
    finds the editor's tighten while the editor is open. The app's own keys are "go: …"."""

    async def build(self) -> list[Command]:
        screen = self.screen
        words = class_words(screen)
        out: list[Command] = []
        for row in binding_rows(screen):
            if row.node is self.app or row.ident in ("nav.back",):
                continue
            help_ = f"key {row.key}" + (f" · {row.description}" if row.description else "")
            out.append((f"{words}: {row.action}", self._run(row.action_name, row.node), help_))
        return out

    def _run(self, action: str, node: object) -> Callable[[], Any]:
        app = self.app

        def run() -> None:
            # after the palette has closed, so the action sees its own screen's focus and cursor
            app.call_later(app.run_action, action, node)

        return run

    async def discover(self) -> Hits:
        for text, callback, help_ in self.commands:  # the screen's actions lead the list
            yield DiscoveryHit(Content(text), callback, text=text, help=help_)
