"""Skills: registered skills, their signature badge, manifest and requested tools; register."""

from __future__ import annotations

import json
from typing import Any, ClassVar

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, DataTable, Header, Input, Label, Static, TextArea

from talon_tui.engine.api import SkillInfo
from talon_tui.engine.errors import TalonError

from ..widgets.badges import ALLOW_STYLE, DENY_STYLE, signature_badge
from ..widgets.footer import TalonFooter
from ..widgets.safe_text import labelled, safe_text
from .base import TalonScreen, fill_table, selected_key


def requested_tools(manifest: dict[str, Any]) -> list[str]:
    """The tools a skill's manifest asks for (`tools`, `requested_tools` or `permissions`)."""
    for key in ("tools", "requested_tools", "permissions"):
        value = manifest.get(key)
        if isinstance(value, list):
            return [str(v.get("tool", v)) if isinstance(v, dict) else str(v) for v in value]
        if isinstance(value, dict):
            return [str(k) for k in value]
    return []


DEFAULT_RUNTIME = "runc (default)"


def runtime_line(runtime: str | None, docker_available: bool) -> Text:
    """Which container runtime isolates the skills, and whether a Docker engine answers."""
    text = Text("Skills isolated by ", end="")
    text.append_text(safe_text(runtime or DEFAULT_RUNTIME, 40, style="bold"))
    text.append("  ·  Docker engine ")
    if docker_available:
        text.append(" reachable ", style=ALLOW_STYLE)
    else:
        text.append(" not reachable ", style=DENY_STYLE)
    return text


class SkillsScreen(TalonScreen):
    CSS_PATH = "skills.tcss"
    CHANGING = frozenset({"register"})
    RELOAD_ON = frozenset({"missed"})
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("n", "register", "register", id="skills.register", tooltip="Register a skill"),
        Binding("ctrl+r", "reload", "reload", id="skills.reload", show=False),
    ]

    def __init__(self, engine) -> None:
        super().__init__(engine, name="skills")
        self.skills: list[SkillInfo] = []

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static(id="skills-runtime", classes="hint")
        yield DataTable(cursor_type="row", zebra_stripes=True, id="skills-table")
        with VerticalScroll(id="skill-detail", classes="detail"):
            yield Static(id="skill-body")
        yield TalonFooter()

    def on_mount(self) -> None:
        table = self.query_one(DataTable)
        for col in ("name", "version", "image", "signature", "requested tools"):
            table.add_column(col, key=col)
        table.focus()
        super().on_mount()

    def live_event(self, event) -> None:
        if event.kind == "audit" and event.payload.get("type", "").startswith("skill."):
            self.reload()

    async def load(self) -> None:
        status = await self.engine.status()
        self.query_one("#skills-runtime", Static).update(
            runtime_line(status.docker_runtime, status.docker_available)
        )
        self.skills = await self.engine.list_skills()
        rows = []
        for s in self.skills:
            rows.append(
                (
                    f"{s.name}@{s.version}",
                    (
                        safe_text(s.name, 24),
                        safe_text(s.version, 12),
                        safe_text(s.image, 40),
                        signature_badge(s.signature_status),
                        safe_text(", ".join(requested_tools(s.manifest)) or "—", 40),
                    ),
                )
            )
        fill_table(self.query_one(DataTable), rows)
        self._show_detail()

    def action_reload(self) -> None:
        self.reload()

    def selected(self) -> SkillInfo | None:
        key = selected_key(self.query_one(DataTable))
        return next((s for s in self.skills if f"{s.name}@{s.version}" == key), None)

    def _show_detail(self) -> None:
        s = self.selected()
        body = self.query_one("#skill-body", Static)
        if s is None:
            body.update(Text("No skills registered. Press n to register one.", style="italic"))
            return
        text = Text.assemble(signature_badge(s.signature_status), " ")
        text.append_text(safe_text(f"{s.name} {s.version}", 80, style="bold"))
        text.append("\n")
        text.append_text(labelled("image", s.image, 200))
        text.append("\n")
        text.append_text(labelled("key", s.key_id or "—", 100))
        text.append(f"   registered {s.registered or '—'}\n", style="dim")
        text.append_text(labelled("requested tools", ", ".join(requested_tools(s.manifest)), 300))
        text.append("\nmanifest:", style="dim")
        for key, value in sorted(s.manifest.items()):
            text.append("\n  ")
            text.append_text(labelled(safe_text(key, 40).plain, value, 240))
        body.update(text)

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        self._show_detail()

    def action_register(self) -> None:
        def done(skill: dict[str, Any] | None) -> None:
            if skill:
                self.register(skill)

        self.app.push_screen(RegisterSkillScreen(), done)

    @work(group="change")
    async def register(self, skill: dict[str, Any]) -> None:
        try:
            info = await self.engine.register_skill(skill)
        except TalonError as exc:
            self.notify(str(exc), title="Register skill", severity="error", markup=False)
            return
        self.notify(
            f"registered {info.name} {info.version} ({info.signature_status})", markup=False
        )
        await self.load()


class RegisterSkillScreen(ModalScreen[dict[str, Any] | None]):
    """Name, version, image (pinned by digest), manifest JSON, optional signature."""

    DEFAULT_CSS = """
    RegisterSkillScreen { align: center middle; }
    RegisterSkillScreen > Vertical {
        width: 90; max-width: 95%; height: auto; max-height: 95%;
        border: thick $primary; background: $surface; padding: 0 2;
    }
    RegisterSkillScreen TextArea { height: 8; }
    RegisterSkillScreen #skill-error { color: $error; height: auto; }
    RegisterSkillScreen Horizontal { height: auto; align-horizontal: right; }
    RegisterSkillScreen Button { margin-left: 2; }
    RegisterSkillScreen Input, RegisterSkillScreen TextArea { border: round $panel-lighten-2; }
    RegisterSkillScreen Input:focus, RegisterSkillScreen TextArea:focus { border: heavy $accent; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "cancel", "cancel", id="form.cancel"),
        Binding("ctrl+s", "submit", "register", id="form.submit"),
    ]

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Static(Text("Register a skill", style="bold"))
            yield Label("Name")
            yield Input(placeholder="summarize", id="name")
            yield Label("Version")
            yield Input(placeholder="1.0.0", id="version")
            yield Label("Image (pinned: name@sha256:… or sha256:…)")
            yield Input(placeholder="ghcr.io/acme/summarize@sha256:…", id="image")
            yield Label("Manifest (JSON)")
            yield TextArea('{"tools": []}', language=None, id="manifest")
            yield Label("Signature and key id (optional)")
            with Horizontal():
                yield Input(placeholder="signature (base64url)", id="signature")
                yield Input(placeholder="key id", id="key_id")
            yield Static("", id="skill-error")
            with Horizontal():
                yield Button("Cancel", id="cancel")
                yield Button("Register (ctrl+s)", id="register", variant="primary")
        yield TalonFooter()

    def on_mount(self) -> None:
        self.query_one("#name", Input).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        if event.button.id == "register":
            self.action_submit()
        else:
            self.dismiss(None)

    def action_submit(self) -> None:
        def value(wid: str) -> str:
            return self.query_one(f"#{wid}", Input).value.strip()

        error = self.query_one("#skill-error", Static)
        missing = [f for f in ("name", "version", "image") if not value(f)]
        if missing:
            error.update(Text(f"{', '.join(missing)}: required"))
            return
        try:
            manifest = json.loads(self.query_one("#manifest", TextArea).text or "{}")
        except json.JSONDecodeError as exc:
            error.update(Text(f"manifest: not valid JSON (line {exc.lineno}: {exc.msg})"))
            return
        if not isinstance(manifest, dict):
            error.update(Text("manifest: must be a JSON object"))
            return
        skill: dict[str, Any] = {
            "name": value("name"),
            "version": value("version"),
            "image": value("image"),
            "manifest": manifest,
        }
        if value("signature"):
            skill["signature"] = value("signature")
        if value("key_id"):
            skill["key_id"] = value("key_id")
        self.dismiss(skill)

    def action_cancel(self) -> None:
        self.dismiss(None)
