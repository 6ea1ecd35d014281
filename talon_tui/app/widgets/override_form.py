"""The add/edit form for one override, with per-tool fields and guardrails.

Fields follow the tool: roots (file tools, shell), domains and the secrets granted to them as
chips, methods and private addresses (http.fetch), images, network and mounts (docker.run),
commands (shell.exec), max bytes, ttl and the approval mode. The form returns the validated
override document, or None when cancelled. Guardrails: an override is validated with the
policy model before it leaves the form, and each problem is shown under the field it names (a
blank allowlist says so and cannot be applied); a ttl over 300 s warns inline while typing.
"""

from __future__ import annotations

import copy
from typing import Any

from pydantic import ValidationError
from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Checkbox, Input, Label, Select, SelectionList, Static

from ...engine.console_api import LONG_TTL_SECONDS
from ...engine.policy.models import CONSTRAINT_MODELS, TOOLS, Override, parse_mount
from .chips import ChipInput
from .footer import TalonFooter
from .forms import MarkedCheckbox
from .policy_diff import EDITOR_CSS
from .safe_text import safe_text

METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")
APPROVAL_CHOICES = (
    ("untrusted", "untrusted"),
    ("never", "never"),
    ("always", "always"),
)

# Which form fields each tool has; everything else in an override's constraints is kept as is.
TOOL_FIELDS: dict[str, tuple[str, ...]] = {
    "file.read": ("roots", "max_bytes", "ttl_seconds"),
    "file.write": ("roots", "max_bytes", "ttl_seconds"),
    "http.fetch": (
        "domains",
        "secrets",
        "methods",
        "max_bytes",
        "allow_private_addresses",
        "ttl_seconds",
    ),
    "docker.run": ("images", "network", "mounts", "ttl_seconds"),
    "shell.exec": ("commands", "roots", "ttl_seconds"),
    "mcp.call": ("servers", "tools", "max_bytes", "ttl_seconds"),
}
ALL_FIELDS = (
    "roots",
    "domains",
    "secrets",
    "methods",
    "images",
    "commands",
    "servers",
    "tools",
    "mounts",
    "network",
    "allow_private_addresses",
    "max_bytes",
    "ttl_seconds",
)
CHIP_FIELDS = {
    "roots": "root",
    "domains": "domain",
    "secrets": "secret",
    "images": "image",
    "commands": "command",
    "mounts": "mount",
    "servers": "plain",
    "tools": "plain",
}
LABELS = {
    "roots": "Roots — directories relative to the workspace (enter adds one)",
    "domains": "Domains — exact hosts; a typed URL proposes its host (enter adds)",
    "secrets": "Secrets — names agents may send as headers, only to these domains",
    "methods": "Methods — space toggles",
    "images": "Images — pinned by digest: name@sha256:… or sha256:<image id>",
    "commands": "Commands — exact absolute program paths, run without a shell",
    "mounts": "Mounts — host_dir:container_dir[:ro|rw] (read-only unless :rw)",
    "servers": "MCP servers — registered names (talon mcp list)",
    "tools": "MCP tools — the upstream's names (echo, not notes__echo)",
    "network": "Container network (unchecked: no network at all)",
    "allow_private_addresses": "Private addresses (unchecked: public internet only)",
    "max_bytes": "Max bytes read or written",
    "ttl_seconds": "Token lifetime (seconds)",
}
BOOL_LABELS = {
    "network": "network",
    "allow_private_addresses": "allow loopback / private / metadata addresses",
}
PLACEHOLDERS = {
    "roots": "e.g. work/reports",
    "domains": "e.g. api.example.com or paste a URL",
    "secrets": "e.g. github_token",
    "images": "e.g. sha256:0123…",
    "commands": "e.g. /usr/bin/wc",
    "mounts": "e.g. /srv/data:/data:ro",
    "servers": "e.g. notes",
    "tools": "e.g. echo",
}


def _mount_chip(m: Any) -> str:
    if isinstance(m, str):
        return m
    mode = "ro" if m.get("read_only", True) else "rw"
    return f"{m.get('source', '')}:{m.get('target', '')}:{mode}"


def _choice(choices: Any, value: str, widget_id: str, disabled: bool) -> Select[str]:
    """One of the form's drop-downs (bordered, so focus shows without colour), never blank."""
    return Select(choices, value=value, allow_blank=False, id=widget_id, disabled=disabled)


def new_override(tool: str = "file.read") -> dict[str, Any]:
    return {"tool": tool, "allow": True, "approval": "untrusted", "enabled": True, "note": ""}


SUMMARY_VALUE_MAX = 40


def _size(n: int) -> str:
    for unit, scale in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}".replace(".0 ", " ")
    return f"{n} B"


def _values(values: list[Any]) -> Text:
    out = Text(end="")
    for i, v in enumerate(values):
        if i:
            out.append(", ", style="dim")
        out.append_text(safe_text(v, SUMMARY_VALUE_MAX))
    return out


def constraint_summary(override: dict[str, Any]) -> Text:
    """A one-line summary of what an override allows; policy values drawn literally."""
    c = override.get("constraints") or {}
    parts: list[Text] = []

    def part(label: str, value: Text | str) -> None:
        text = Text(f"{label} ", style="dim", end="")
        text.append_text(value if isinstance(value, Text) else Text(value))
        parts.append(text)

    tool = override.get("tool")
    if not override.get("allow", True):
        parts.append(Text(f"denies every {tool} intent", style="bold"))
    elif tool in ("file.read", "file.write"):
        part("roots", _values(c.get("roots") or []))
        part("max", _size(int(c.get("max_bytes", 0))))
    elif tool == "http.fetch":
        part("domains", _values(c.get("domains") or []))
        if c.get("secrets"):
            part("secrets", _values(c["secrets"]))
        part("methods", ",".join(c.get("methods") or []))
        if c.get("allow_private_addresses"):
            parts.append(Text("private addresses", style="bold red"))
    elif tool == "docker.run":
        part("images", _values(c.get("images") or []))
        parts.append(
            Text("network on", style="bold red") if c.get("network") else Text("no network")
        )
        if c.get("mounts"):
            parts.append(Text(f"{len(c['mounts'])} mount(s)", style="bold red"))
    elif tool == "shell.exec":
        part("commands", _values(c.get("commands") or []))
        part("roots", _values(c.get("roots") or []))
        if c.get("exact_argv"):
            part("only", f"{len(c['exact_argv'])} exact argv")
    elif tool == "mcp.call":
        part("servers", _values(c.get("servers") or []))
        part("tools", _values(c.get("tools") or []))
    if c.get("ttl_seconds") is not None and override.get("allow", True):
        part("ttl", f"{c['ttl_seconds']} s")
    if override.get("note"):
        part("note", safe_text(override["note"], SUMMARY_VALUE_MAX))
    return Text(" · ", style="dim").join(parts)


class OverrideFormScreen(ModalScreen[dict[str, Any] | None]):
    """Add or edit one override; dismisses with the validated override document or None."""

    CSS_PATH = EDITOR_CSS
    BINDINGS = [
        Binding(
            "ctrl+s",
            "apply",
            "Apply",
            id="override_form.apply",
            tooltip="Check the override and put it in the unsaved policy",
        ),
        Binding("escape", "cancel", "Cancel", id="override_form.cancel", tooltip="Discard"),
    ]

    def __init__(
        self,
        override: dict[str, Any] | None = None,
        *,
        title: str = "Add override",
        notice: Text | None = None,
        readonly: bool = False,
    ) -> None:
        super().__init__()
        self._initial = copy.deepcopy(override) if override else new_override()
        self._title = title
        self._notice = notice
        self._readonly = readonly

    # ------------------------------------------------------------------ layout

    def compose(self) -> ComposeResult:
        o = self._initial
        c = o.get("constraints") or {}
        ro = self._readonly
        with Vertical(id="form-box", classes="modal-box"):
            yield Static(Text(self._title, style="bold"), classes="modal-title")
            if self._notice is not None:
                yield Static(self._notice, id="form-notice")
            with VerticalScroll(id="form-scroll"):
                with Horizontal(classes="form-row"):
                    with Vertical(classes="form-cell", id="c-tool"):
                        yield Label("Tool")
                        yield _choice(
                            [(t, t) for t in TOOLS], o.get("tool", "file.read"), "f-tool", ro
                        )
                    with Vertical(classes="form-cell", id="c-allow"):
                        yield Label("Effect")
                        yield MarkedCheckbox(
                            "allow (else deny)",
                            value=bool(o.get("allow", True)),
                            id="f-allow",
                            disabled=ro,
                        )
                    with Vertical(classes="form-cell", id="c-approval"):
                        yield Label("Approval")
                        yield _choice(
                            APPROVAL_CHOICES, o.get("approval", "untrusted"), "f-approval", ro
                        )
                    with Vertical(classes="form-cell", id="c-enabled"):
                        yield Label("Enabled")
                        yield MarkedCheckbox(
                            "on", value=bool(o.get("enabled", True)), id="f-enabled", disabled=ro
                        )
                yield Static(
                    Text(
                        "approval: untrusted = ask when a skill's output asked for it · "
                        "never = allowed intents run without asking · always = every intent waits",
                    ),
                    classes="form-help",
                )
                yield Label("Note")
                yield Input(value=str(o.get("note", "")), id="f-note", disabled=ro)
                yield Static("", id="err-tool", classes="field-error")
                for field in ALL_FIELDS:
                    with Vertical(id=f"g-{field}", classes="field-group"):
                        yield Label(LABELS[field])
                        yield from self._field_widget(field, c)
                        if field == "ttl_seconds":
                            yield Static("", id="warn-ttl_seconds", classes="field-warning")
                        yield Static("", id=f"err-{field}", classes="field-error")
                yield Static("", id="err-form", classes="field-error")
            yield TalonFooter()

    def _field_widget(self, field: str, c: dict[str, Any]) -> ComposeResult:
        ro = self._readonly
        if field in CHIP_FIELDS:
            values = c.get(field) or []
            if field == "mounts":
                values = [_mount_chip(m) for m in values]
            yield ChipInput(
                [str(v) for v in values],
                kind=CHIP_FIELDS[field],  # type: ignore[arg-type]
                placeholder=PLACEHOLDERS[field],
                id=f"f-{field}",
                disabled=ro,
            )
        elif field == "methods":
            chosen = set(c.get("methods") or ["GET"])
            yield SelectionList[str](
                *[(m, m, m in chosen) for m in METHODS], id="f-methods", disabled=ro
            )
        elif field in ("network", "allow_private_addresses"):
            yield MarkedCheckbox(
                BOOL_LABELS[field], value=bool(c.get(field, False)), id=f"f-{field}", disabled=ro
            )
        else:
            default = 60 if field == "ttl_seconds" else 1_048_576
            yield Input(
                value=str(c.get(field, default)),
                type="integer",
                id=f"f-{field}",
                disabled=ro,
            )

    def on_mount(self) -> None:
        self._clear_errors()
        self._show_tool_fields()
        self._check_ttl(self.query_one("#f-ttl_seconds", Input).value)
        if not self._readonly:
            self.query_one("#f-tool", Select).focus()

    # ------------------------------------------------------------------ reactions

    @property
    def tool(self) -> str:
        return str(self.query_one("#f-tool", Select).value)

    @property
    def allow(self) -> bool:
        return self.query_one("#f-allow", Checkbox).value

    def _show_tool_fields(self) -> None:
        fields = TOOL_FIELDS.get(self.tool, ()) if self.allow else ()
        for field in ALL_FIELDS:
            self.query_one(f"#g-{field}").display = field in fields

    @on(Select.Changed, "#f-tool")
    @on(Checkbox.Changed, "#f-allow")
    def _tool_or_effect_changed(self) -> None:
        self._show_tool_fields()

    @on(Input.Changed, "#f-ttl_seconds")
    def _ttl_changed(self, event: Input.Changed) -> None:
        self._check_ttl(event.value)

    def _check_ttl(self, value: str) -> None:
        warn = self.query_one("#warn-ttl_seconds", Static)
        try:
            ttl = int(value)
        except ValueError:
            ttl = 0
        if ttl > LONG_TTL_SECONDS:
            warn.update(
                Text(
                    f"⚠ tokens would live {ttl} s (over {LONG_TTL_SECONDS} s): a leaked token "
                    "stays usable that long and revocations take effect that late. 60 s is plenty: "
                    "a token is minted per intent.",
                )
            )
            warn.display = True
        else:
            warn.display = False

    # ------------------------------------------------------------------ apply

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "apply" and self._readonly:
            return False
        return True

    def _clear_errors(self) -> None:
        self._errors: dict[str, list[Text]] = {}
        for err in self.query(".field-error"):
            err.update("")
            err.display = False

    def _error(self, field: str, message: str) -> None:
        """Show `message` under `field` (or at the bottom, naming the field, if it has no row)."""
        target = field if self.query(f"#err-{field}") else "form"
        line = Text(f"✗ {field}: " if target == "form" else "✗ ", style="bold", end="")
        line.append_text(safe_text(message, 300))
        lines = self._errors.setdefault(target, [])
        lines.append(line)
        err = self.query_one(f"#err-{target}", Static)
        err.update(Text("\n").join(lines))
        err.display = True

    def _int_field(self, field: str) -> int | None:
        raw = self.query_one(f"#f-{field}", Input).value.strip()
        if not raw:
            self._error(field, "enter a whole number")
            return None
        try:
            return int(raw)
        except ValueError:
            self._error(field, f"{raw!r} is not a whole number")
            return None

    async def _collect(self) -> dict[str, Any] | None:
        """The override document the fields describe, or None after showing the problems."""
        tool = self.tool
        doc: dict[str, Any] = {
            "tool": tool,
            "allow": self.allow,
            "approval": self.query_one("#f-approval", Select).value,
            "enabled": self.query_one("#f-enabled", Checkbox).value,
            "note": self.query_one("#f-note", Input).value,
        }
        if not doc["allow"]:
            doc["constraints"] = None
            return doc
        # Keep settings the form does not show (ports, schemes, memory...) for the same tool.
        same_tool = self._initial.get("tool") == tool
        constraints = copy.deepcopy(self._initial.get("constraints") or {}) if same_tool else {}
        ok = True
        for field in TOOL_FIELDS[tool]:
            if field in CHIP_FIELDS:
                chips = self.query_one(f"#f-{field}", ChipInput)
                await chips.commit_pending()
                if chips.pending_text():  # refused (e.g. a URL with user info): say so
                    self._error(field, f"{chips.pending_text()!r} was not added")
                    ok = False
                values = chips.values
                if field == "mounts":
                    try:
                        constraints[field] = [parse_mount(v) for v in values]
                    except ValueError as exc:
                        self._error(field, str(exc))
                        ok = False
                else:
                    constraints[field] = values
            elif field == "methods":
                constraints[field] = list(self.query_one("#f-methods", SelectionList).selected)
            elif field in ("network", "allow_private_addresses"):
                constraints[field] = self.query_one(f"#f-{field}", Checkbox).value
            else:
                number = self._int_field(field)
                if number is None:
                    ok = False
                else:
                    constraints[field] = number
        if not ok:
            return None
        # Drop keys another tool's model would refuse (a tool change keeps nothing foreign).
        known = CONSTRAINT_MODELS[tool].model_fields
        doc["constraints"] = {k: v for k, v in constraints.items() if k in known}
        return doc

    async def action_apply(self) -> None:
        if self._readonly:
            return
        self._clear_errors()
        doc = await self._collect()
        if doc is None:
            return
        try:
            override = Override.model_validate(doc)
        except ValidationError as exc:
            for err in exc.errors():
                loc = [str(p) for p in err["loc"] if not str(p).startswith("function-")]
                if loc and loc[0] == "constraints" and len(loc) > 1:
                    field = loc[1]
                else:
                    field = loc[0] if loc else "form"
                self._error(field, err["msg"].removeprefix("Value error, "))
            self._focus_first_error()
            return
        self.dismiss(override.model_dump(mode="json"))

    def _focus_first_error(self) -> None:
        for field in ALL_FIELDS:
            err = self.query_one(f"#err-{field}", Static)
            if err.display:
                widget = self.query_one(f"#f-{field}")
                if isinstance(widget, ChipInput):
                    widget.input.focus()
                else:
                    widget.focus()
                widget.scroll_visible()
                return

    def action_cancel(self) -> None:
        self.dismiss(None)
