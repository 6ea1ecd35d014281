"""The Talon console: one app factory used by the CLI and the tests.

The app owns navigation (`SCREENS`, the one registry of named screens that `go` opens, `:`
jump, `esc` back; see navigation.py), help generated from bindings, the command palette
providers, themes, and one worker that consumes the engine's event bus and posts `EngineEvent`
messages to the screens. Screens talk only to `EngineAPI`.

Attached to an engine over the pipe, that worker is also the console's link watch: when the
stream breaks (the engine stopped, or the console hosting it quit) every screen shows a
"disconnected" banner over its now stale data, the worker reconnects with backoff, resumes the
stream after the last event it saw, and the screens reload.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable, Sequence
from datetime import datetime
from time import monotonic
from typing import Any, ClassVar

from textual import work
from textual.app import App, SystemCommand
from textual.binding import Binding, BindingType
from textual.command import CommandPalette
from textual.notifications import Notification, Notify, SeverityLevel
from textual.screen import Screen
from textual.worker import Worker, WorkerState

from talon_tui.engine.api import BusMessage, EngineAPI
from talon_tui.engine.console_api import utcnow
from talon_tui.engine.errors import EngineUnreachable, TalonError

from .commands import (
    AuditCommands,
    GoCommands,
    PolicyCommands,
    ReplayCommands,
    ScreenCommands,
    SessionCommands,
)
from .messages import EngineEvent, EngineLink
from .navigation import Navigator, ScreenSpec
from .screens.approvals import ApprovalsScreen
from .screens.audit import AuditScreen
from .screens.dashboard import DashboardScreen
from .screens.help import HelpScreen
from .screens.jump import JumpScreen
from .screens.messages import MessageLog, MessagesScreen
from .screens.policy_editor import PolicyEditorScreen
from .screens.replay import ReplayScreen
from .screens.run_timeline import RunTimelineScreen
from .screens.servers import ServersScreen
from .screens.session_detail import SessionDetailScreen
from .screens.session_replay import SessionReplayScreen
from .screens.sessions import SessionsScreen
from .screens.skills import SkillsScreen
from .settings import ConsoleSettings
from .themes import (
    DEFAULT_THEME,
    FALLBACK_THEME,
    TALON_THEMES,
    TalonThemeProvider,
    load_themes,
)
from .widgets.link_banner import LinkDown
from .widgets.safe_text import safe_plain
from .widgets.summaries import intent_target

Service = Callable[[], Awaitable[Any]]


def _top(help_: str, screen: Callable[[EngineAPI], Screen[Any]]) -> ScreenSpec:
    """A top-level screen that needs nothing but the engine."""
    return ScreenSpec(help_, lambda app: screen(app.engine), top_level=True)


def _of_session(
    help_: str, factory: Callable[..., Screen[Any]], key: str, listed: bool = True
) -> ScreenSpec:
    """A screen of one session: `:name SESSION_ID`, else the selected session's (`key` opens
    it from a list), else the sessions table."""
    return ScreenSpec(
        help_,
        factory,
        arg="session_id",
        arg_help="session id",
        required=f"pick a session and press {key}",
        fallback="sessions",
        listed=listed,
    )


# The one registry of named screens: `app.go(name, **args)` calls `factory(app, **args)`.
# Listed screens appear, in this order, in `:` jump and in the palette's "go:" commands.
SCREENS: dict[str, ScreenSpec] = {
    "dashboard": _top("overview: sessions, runs, approvals, agents, chain", DashboardScreen),
    "sessions": _top("sessions table: create, close, agent keys", SessionsScreen),
    "approvals": _top("queue of intents waiting for an operator", ApprovalsScreen),
    "audit": ScreenSpec(
        "the whole audit log, live, with chain verification",
        lambda app, session_id=None: AuditScreen(
            app.engine, session_id=session_id, readonly=app.readonly
        ),
        arg="session_id",
        top_level=True,
    ),
    "replay": ScreenSpec(
        "step through a recorded run, nothing executes",
        lambda app, run_id=None: ReplayScreen(app.engine, run_id),
        arg="run_id",
        arg_help="run id, optional",
        top_level=True,
    ),
    "skills": _top("registered skills and their signatures", SkillsScreen),
    "servers": _top("MCP servers: status, tool pins, approve changes", ServersScreen),
    "session": _of_session(
        "one session: runs, policy, audit, agents",
        lambda app, session_id: SessionDetailScreen(app.engine, session_id),
        "enter",
    ),
    "policy": _of_session(
        "edit a session's policy",
        lambda app, session_id, prefill_override=None: PolicyEditorScreen(
            app.engine, session_id, prefill_override=prefill_override, readonly=app.readonly
        ),
        "e",
    ),
    "session-replay": _of_session(
        "a whole session's runs on one time axis, nothing executes",
        lambda app, session_id: SessionReplayScreen(app.engine, session_id),
        "R",
        listed=False,
    ),
    "quit": ScreenSpec("leave the console (ctrl+q)", None),
    "run": ScreenSpec(
        "one run's steps, with their decisions and a safe fix for a denial",
        lambda app, run_id, session_id=None: RunTimelineScreen(app.engine, run_id, session_id),
        arg="run_id",
        arg_help="run id",
        listed=False,
    ),
}
APPROVAL_TOAST_S = 8.0  # how long an approval toast stays; later requests are folded into one
RECONNECT_DELAYS = (0.5, 1.0, 2.0, 4.0, 5.0)  # seconds between tries; the last one repeats


class TalonApp(Navigator):
    """Keyboard-driven console over one `EngineAPI`."""

    registry = SCREENS

    TITLE = "Talon"
    CSS_PATH = "app.tcss"
    # Screens get -narrow/-wide and -short/-tall classes so every .tcss can fit 80x24.
    HORIZONTAL_BREAKPOINTS: ClassVar[list[tuple[int, str]] | None] = [
        (0, "-narrow"),
        (100, "-wide"),
    ]
    VERTICAL_BREAKPOINTS: ClassVar[list[tuple[int, str]] | None] = [(0, "-short"), (32, "-tall")]
    ENABLE_COMMAND_PALETTE = True
    COMMANDS = App.COMMANDS | {
        ScreenCommands,
        SessionCommands,
        PolicyCommands,
        AuditCommands,
        ReplayCommands,
        GoCommands,
    }
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding(":", "jump", "jump", id="app.jump", tooltip="Jump to a screen by name"),
        Binding("question_mark", "help", "keys", id="app.help", tooltip="Keys of this screen"),
        Binding("escape", "go_back", "back", id="app.back", tooltip="Back to the previous screen"),
        Binding(
            "1",
            "go('dashboard')",
            "dashboard",
            id="app.dashboard",
            show=False,
            tooltip="Open the dashboard screen",
        ),
        Binding(
            "2",
            "go('sessions')",
            "sessions",
            id="app.sessions",
            show=False,
            tooltip="Open the sessions screen",
        ),
        Binding(
            "3",
            "go('approvals')",
            "approvals",
            id="app.approvals",
            show=False,
            tooltip="Open the approvals screen",
        ),
        Binding(
            "4",
            "go('audit')",
            "audit",
            id="app.audit",
            show=False,
            tooltip="Open the audit screen",
        ),
        Binding(
            "5",
            "go('skills')",
            "skills",
            id="app.skills",
            show=False,
            tooltip="Open the skills screen",
        ),
        Binding(
            "6",
            "go('servers')",
            "servers",
            id="app.servers",
            show=False,
            tooltip="Open the servers screen",
        ),
        # from anywhere; shown in the dashboard's footer and in `?` (the footer is narrow)
        Binding("r", "go('replay')", "replay", id="app.replay", show=False, tooltip="Replay a run"),
    ]

    def __init__(
        self,
        engine: EngineAPI,
        *,
        readonly: bool = False,
        theme: str | None = None,
        clock: Callable[[], datetime] | None = None,
        services: Sequence[Service] = (),
        startup: Service | None = None,
        shutdown: Service | None = None,
    ) -> None:
        super().__init__()
        self.startup = startup
        self.shutdown = shutdown
        self.engine = engine
        self.readonly = readonly
        self.clock: Callable[[], datetime] = clock or utcnow
        self.requested_theme = theme
        self.settings: ConsoleSettings | None = None  # read at mount (console.json)
        self._keep_theme = False  # save theme changes once the start-up theme is set
        self.services = list(services)
        self.refresh_interval = 0.3  # seconds between screen reloads under a stream of events
        self.pending_approvals = 0
        self.mode_label = "read-only" if readonly else ""
        self.approval_toasts = 0  # approval toasts shown, for tests
        self._toast_until = 0.0  # monotonic time the current approval toast goes away
        self._unannounced = 0  # approvals requested while a toast was up
        self._approval_toasts: list[Notification] = []  # shown, maybe still up
        self.reconnect_delays: Sequence[float] = RECONNECT_DELAYS
        self.link_down: LinkDown | None = None  # set while the engine is unreachable
        self.last_seq: int | None = None  # the newest audit event seen (resume point)
        self.messages = MessageLog()  # every toast, in full (a toast shows two lines)

    # ------------------------------------------------------------------ start-up

    async def on_mount(self) -> None:
        if self.startup is not None:
            await self.startup()
        self._install_themes()
        self.sub_title = self._subtitle()
        self.push_screen(DashboardScreen(self.engine))
        self.consume_events()
        for service in self.services:
            self.run_worker(service(), group="services", exit_on_error=False)

    async def on_unmount(self) -> None:
        if self.shutdown is not None:
            await self.shutdown()

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        """A service (the demo agents) that fails tells the operator instead of vanishing."""
        worker = event.worker
        if worker.group == "services" and event.state == WorkerState.ERROR:
            error = worker.error
            while isinstance(error, BaseExceptionGroup) and error.exceptions:
                error = error.exceptions[0]
            self.notify(
                str(error),
                title="Background service stopped",
                severity="error",
                timeout=15,
                markup=False,
            )

    def _install_themes(self) -> None:
        loaded = load_themes()
        for theme in loaded.themes:
            self.register_theme(theme)
        for problem in loaded.problems:
            self.notify(
                f"{problem} — that theme is skipped", title="Theme file", severity="warning"
            )
        self.settings = ConsoleSettings.load()
        if self.settings.problem is not None:
            self.notify(
                f"{self.settings.problem} — using the default theme; the file is left as it is",
                title="Settings",
                severity="warning",
                markup=False,
            )
        wanted = self.requested_theme or self.settings.theme or DEFAULT_THEME
        if wanted in self.available_themes:
            self.theme = wanted
            self._keep_theme = True
            return
        fallback = DEFAULT_THEME if DEFAULT_THEME in self.available_themes else FALLBACK_THEME
        self.theme = fallback
        self._keep_theme = True
        self.notify(
            f"theme {wanted!r} is not available (broken or missing); using {fallback}",
            title="Theme",
            severity="warning",
            markup=False,
        )

    def watch_theme(self, theme: str) -> None:
        """A theme picked after start-up (palette) is kept in console.json for the next start."""
        if not self._keep_theme or self.settings is None or self.settings.theme == theme:
            return
        try:
            note = self.settings.save_theme(theme)
        except OSError as exc:
            self.notify(
                f"theme {theme} is used now but not kept: {exc}",
                title="Settings",
                severity="warning",
                markup=False,
            )
            return
        if note:
            self.notify(note, title="Settings", markup=False)

    def search_themes(self) -> None:
        """The palette's theme picker, Talon's own themes first and marked."""
        self.push_screen(
            CommandPalette(providers=[TalonThemeProvider], placeholder="Search for themes…")
        )

    def _subtitle(self) -> str:
        parts = []
        if self.link_down is not None:
            parts.append("⚠ ENGINE DISCONNECTED")
        if self.readonly:
            parts.append("READ-ONLY")
        if self.pending_approvals:
            parts.append(f"⚠ {self.pending_approvals} waiting for approval (3)")
        return " · ".join(parts)

    # ------------------------------------------------------------------ engine events

    @work(exclusive=True, group="engine-events", exit_on_error=False)
    async def consume_events(self) -> None:
        """The one consumer of `engine.subscribe()`: forwards each message to the screens. An
        engine that can `reconnect` (the pipe's AdminClient) is watched: a broken stream means
        the engine is gone, and the worker reconnects until it answers again."""
        if not callable(getattr(self.engine, "reconnect", None)):
            await self._refresh_status()
            async for msg in self.engine.subscribe():
                self.dispatch_bus(msg)
            return
        attempts = 0
        while True:
            try:
                if attempts:
                    await self.engine.reconnect()  # type: ignore[attr-defined]
                await self._refresh_status(resume=attempts > 0)
                stream = self.engine.subscribe(None if self.last_seq is None else self.last_seq + 1)
                if attempts:
                    self._set_link(None)
                attempts = 0
                async for msg in stream:
                    self.dispatch_bus(msg)
                raise EngineUnreachable("the event stream ended")
            except TalonError as exc:  # EngineUnreachable, or a refusal on reconnect
                attempts += 1
                self._set_link(
                    LinkDown(
                        since=self.link_down.since if self.link_down else self.clock(),
                        attempts=attempts,
                        reason=str(exc),
                    )
                )
            delays = self.reconnect_delays
            await asyncio.sleep(delays[min(attempts, len(delays)) - 1])

    async def _refresh_status(self, *, resume: bool = False) -> None:
        try:
            status = await self.engine.status()
        except EngineUnreachable:
            raise
        except TalonError as exc:
            self.notify(str(exc), title="Engine", severity="error", markup=False)
            return
        self.pending_approvals = status.pending_approvals
        self.sub_title = self._subtitle()
        if self.last_seq is None and not resume:
            self.last_seq = status.audit_head_seq
        elif self.last_seq is not None and status.audit_head_seq < self.last_seq:
            # not the log the console was following (restored, replaced): follow this one
            self.last_seq = status.audit_head_seq
            self.notify(
                f"the engine's audit log ends at seq {status.audit_head_seq}, before the last "
                f"event this console saw; following it from there",
                title="Engine",
                severity="warning",
                markup=False,
            )

    def _set_link(self, down: LinkDown | None) -> None:
        """Record whether the engine is reachable and tell every screen (banner, reload)."""
        was_down = self.link_down is not None
        self.link_down = down
        if down is None and not was_down:
            return
        self.sub_title = self._subtitle()
        for screen in self.screen_stack:
            if not screen.is_modal:
                screen.post_message(EngineLink(down))

    def dispatch_bus(self, msg: BusMessage) -> None:
        if msg.kind == "audit":
            seq = msg.payload.get("seq")
            if isinstance(seq, int) and (self.last_seq is None or seq > self.last_seq):
                self.last_seq = seq
        if msg.kind == "approval":
            self._on_approval(msg.payload)
        for screen in self.screen_stack:
            if not screen.is_modal:
                screen.post_message(EngineEvent(msg))

    def _on_approval(self, payload: dict[str, Any]) -> None:
        action = payload.get("action")
        approval = payload.get("approval") or {}
        if action == "requested":
            self.pending_approvals += 1
            if not self.readonly:
                self._announce_approval(approval)
        elif action in ("decided", "expired"):
            self.pending_approvals = max(0, self.pending_approvals - 1)
            if not self.pending_approvals:
                self.withdraw_approval_toasts()
        self.sub_title = self._subtitle()

    def _announce_approval(self, approval: dict[str, Any]) -> None:
        """One toast at a time: the first request is described; requests that arrive while
        it is up are folded into one "N waiting" toast when it goes away."""
        now = monotonic()
        if now < self._toast_until:
            if not self._unannounced:
                self.set_timer(self._toast_until - now, self._announce_waiting)
            self._unannounced += 1
            return
        if isinstance(self.screen, ApprovalsScreen):
            return  # the operator is looking at the queue: the new row is the news
        tool = safe_plain(approval.get("tool"), 30)
        subject = safe_plain(approval.get("subject"), 30)
        target = safe_plain(intent_target(approval.get("params")), 60)
        self._toast(f"{tool} {target} from {subject} — press 3 to decide", "Approval needed")

    def _announce_waiting(self) -> None:
        self._unannounced = 0
        if self.pending_approvals and not isinstance(self.screen, ApprovalsScreen):
            n = self.pending_approvals
            self._toast(
                f"{n} intent{'s' if n != 1 else ''} waiting — press 3 to decide",
                "Approvals waiting",
            )

    def _toast(self, message: str, title: str) -> None:
        self._toast_until = monotonic() + APPROVAL_TOAST_S
        self.approval_toasts += 1
        toast = Notification(message, title, "warning", APPROVAL_TOAST_S, markup=False)
        self.messages.add(self.clock(), "warning", title, message, False)
        self._approval_toasts.append(toast)
        self.post_message(Notify(toast))

    def withdraw_approval_toasts(self) -> None:
        """Take down the approval toasts still shown: they would say "press 3 to decide" on the
        queue itself, or "1 intent waiting" once nothing is."""
        self._toast_until = 0.0
        for toast in self._approval_toasts:
            if toast in self._notifications:
                self._unnotify(toast)
        self._approval_toasts.clear()

    def notify(
        self,
        message: str,
        *,
        title: str = "",
        severity: SeverityLevel = "information",
        timeout: float | None = None,
        markup: bool = True,
    ) -> None:
        """A toast, also kept in full in the messages log (palette: "messages")."""
        self.messages.add(self.clock(), severity, title, message, markup)
        super().notify(message, title=title, severity=severity, timeout=timeout, markup=markup)

    def action_messages(self) -> None:
        if not isinstance(self.screen, MessagesScreen):
            self.push_screen(MessagesScreen(self.messages))

    # ------------------------------------------------------------------ navigation

    def action_jump(self) -> None:
        def jumped(choice: tuple[str, str | None] | None) -> None:
            if choice:
                self.run_worker(self.go(*choice), group="nav")

        self.push_screen(JumpScreen(self.jump_menu()), jumped)

    def action_help(self) -> None:
        if isinstance(self.screen, HelpScreen):
            return
        self.push_screen(HelpScreen(self.screen))

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        yield SystemCommand(
            "messages", "the last notifications in full, newest first", self.action_messages
        )
        for theme in TALON_THEMES:
            if theme in self.available_themes:
                yield SystemCommand(
                    f"theme: {theme}", f"switch to the {theme} theme", _set_theme(self, theme)
                )


def _set_theme(app: App, name: str) -> Callable[[], None]:
    def apply() -> None:
        app.theme = name

    return apply


def create_app(
    engine: EngineAPI,
    *,
    readonly: bool = False,
    theme: str | None = None,
    clock: Callable[[], datetime] | None = None,
    services: Sequence[Service] = (),
    startup: Service | None = None,
    shutdown: Service | None = None,
) -> TalonApp:
    """The console over `engine`. `services` run as workers for the app's life (the demo
    agent); `startup`/`shutdown` are awaited on the app's own loop before the first screen and
    at exit (tests use them to host an Engine on the loop the app runs on)."""
    return TalonApp(
        engine,
        readonly=readonly,
        theme=theme,
        clock=clock,
        services=services,
        startup=startup,
        shutdown=shutdown,
    )
