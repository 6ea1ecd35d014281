"""What a policy change does, shown before it happens.

- `unified_policy_diff` / `PolicyDiffScreen`: old vs new policy JSON as a coloured unified diff,
  confirmed before the editor saves.
- `danger_consequences`: the dangerous powers a new policy grants that the old one did not
  (shell.exec programs, container network, host mounts, private addresses), each in plain words.
- `SimulationScreen`: which recorded decisions the unsaved policy would change.
- `newly_allowed_text`: every combination a change newly allows (`policy.fix.newly_allowed`),
  shown above the diff and in "fix safely".

Policy values may have come from an agent (a suggested fix quotes its path or host), so every
value reaches the screen through `safe_text` / `visible`.
"""

from __future__ import annotations

import difflib
import json
from pathlib import Path
from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import DataTable, Static

from talon_tui.engine.api import SimulationChange
from talon_tui.engine.console_api import newly_allowed

from .badges import decision_badge
from .footer import TalonFooter
from .safe_text import labelled, safe_text, visible

EDITOR_CSS = Path(__file__).resolve().parent.parent / "screens" / "policy_editor.tcss"


# --------------------------------------------------------------------------- JSON diff


def policy_json(doc: dict[str, Any]) -> str:
    return json.dumps(doc, indent=2, ensure_ascii=False)


def diff_line_style(line: str) -> str:
    """The style of one unified-diff line: additions green, removals red, hunk headers cyan,
    anything else (context, the ---/+++ file headers) unstyled."""
    if line.startswith("@@"):
        return "cyan"
    if line.startswith("+") and not line.startswith("+++"):
        return "green"
    if line.startswith("-") and not line.startswith("---"):
        return "red"
    return ""


def unified_policy_diff(old: dict[str, Any], new: dict[str, Any]) -> Text:
    """Old vs new policy JSON as a unified diff: additions green, removals red, hunks cyan."""
    lines = difflib.unified_diff(
        policy_json(old).splitlines(),
        policy_json(new).splitlines(),
        fromfile="saved policy",
        tofile="new policy",
        lineterm="",
        n=3,
    )
    text = Text(end="")
    for line in lines:
        shown = visible(line)
        style = "bold" if line.startswith(("+++", "---")) else diff_line_style(line) or "dim"
        text.append(shown + "\n", style=style)
    if not text.plain:
        text.append("The new policy is the same as the saved one.", style="dim")
    text.rstrip()
    return text


def diff_counts(old: dict[str, Any], new: dict[str, Any]) -> tuple[int, int]:
    added = removed = 0
    for line in difflib.unified_diff(
        policy_json(old).splitlines(), policy_json(new).splitlines(), lineterm="", n=0
    ):
        if line.startswith("+") and not line.startswith("+++"):
            added += 1
        elif line.startswith("-") and not line.startswith("---"):
            removed += 1
    return added, removed


# --------------------------------------------------------------------------- danger


def _names(values: list[Any]) -> str:
    return ", ".join(str(v) for v in values) or "(none)"


def _powers(overrides: list[dict[str, Any]]) -> dict[tuple[Any, ...], str | None]:
    """Every dangerous power the enabled allowing overrides grant, one key per program, image,
    mount or domain, so that narrowing a list (dropping `*.com`, making a mount read-only) adds
    no key; with its consequence in plain words (None: implied by a stronger power's text)."""
    powers: dict[tuple[Any, ...], str | None] = {}

    def grant(key: tuple[Any, ...], text: str | None) -> None:
        if powers.get(key) is None:
            powers[key] = text

    for o in overrides:
        if not o.get("allow", True) or not o.get("enabled", True):
            continue
        c = o.get("constraints") or {}
        tool = o.get("tool")
        if tool == "shell.exec":
            for cmd in c.get("commands") or []:
                grant(
                    ("shell", cmd),
                    f"Agents may run the program {cmd} on this machine with your user's rights: "
                    "it can read, change or delete anything you can, and start other programs.",
                )
        elif tool == "docker.run":
            for image in c.get("images") or [""]:
                name = _names([image] if image else [])
                if c.get("network"):
                    grant(
                        ("network", image),
                        f"Containers from {name} get network access: they can reach "
                        "the internet and your local network, and send data out.",
                    )
                for m in c.get("mounts") or []:
                    if isinstance(m, str):
                        parts = m.split(":")
                        src, dst = parts[0], parts[1] if len(parts) > 1 else ""
                        ro = not (len(parts) == 3 and parts[2] == "rw")
                    else:
                        src, dst, ro = m.get("source"), m.get("target"), m.get("read_only", True)
                    seen = f"Containers from {name} see the host directory {src} at {dst} and can "
                    grant(("mount", image, src, dst), seen + "read it." if ro else None)
                    if not ro:
                        grant(
                            ("mount-write", image, src, dst),
                            seen + "read, change and delete the files in it.",
                        )
        elif tool == "http.fetch":
            domains = c.get("domains") or []
            for domain in domains if c.get("allow_private_addresses") else []:
                grant(
                    ("private", domain),
                    f"Fetches to {domain} may reach loopback, your private network and cloud "
                    "metadata addresses (such as 169.254.169.254), where local services and "
                    "credentials live.",
                )
            for name in c.get("secrets") or []:
                for domain in domains:
                    grant(
                        ("secret", name, domain),
                        f"Agents may send the secret {name} to {domain}: whoever answers "
                        "there receives the credential and can use it.",
                    )
    return powers


def danger_consequences(
    old_overrides: list[dict[str, Any]], new_overrides: list[dict[str, Any]]
) -> list[str]:
    """The dangerous powers `new_overrides` grant that `old_overrides` did not."""
    before = _powers(old_overrides)
    after = _powers(new_overrides)
    return [text for key, text in after.items() if key not in before and text is not None]


# --------------------------------------------------------------------------- what is new


def newly_allowed_text(lines: list[str], limit: int = 200) -> Text:
    """Every newly allowed combination, one per line (agent-derived values made visible)."""
    if not lines:
        return Text(
            "Newly allowed: no new combination (limit, ttl and approval changes show in the diff).",
            style="dim",
        )
    text = Text(f"Newly allowed ({len(lines)}):\n", style="bold")
    for line in lines[:limit]:
        text.append("  + ", style="green")
        text.append_text(safe_text(line, 200))
        text.append("\n")
    if len(lines) > limit:
        text.append(f"  … and {len(lines) - limit} more\n", style="bold")
    text.rstrip()
    return text


def _item(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True)


def narrowing_summary(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """What a change takes away from an override, in words: `domains: removes *.com`,
    `max_bytes: 104,857,600 → 1,048,576`, `approval: never → always` (plain strings: show them
    through safe_text, the values may have come from an agent)."""
    lines: list[str] = []
    for key in ("allow", "approval", "enabled"):
        if old.get(key) != new.get(key):
            lines.append(f"{key}: {old.get(key)} → {new.get(key)}")
    oc, nc = old.get("constraints") or {}, new.get("constraints") or {}
    for key in sorted(set(oc) | set(nc)):
        before, after = oc.get(key), nc.get(key)
        if before == after:
            continue
        if isinstance(before, list) and isinstance(after, list):
            gone = [v for v in before if v not in after]
            added = [v for v in after if v not in before]
            words = []
            if gone:
                words.append("removes " + ", ".join(map(_item, gone)))
            if added:
                words.append("adds " + ", ".join(map(_item, added)))
            lines.append(f"{key}: " + " and ".join(words))
        elif isinstance(before, int) and isinstance(after, int) and not isinstance(before, bool):
            lines.append(f"{key}: {before:,} → {after:,}")
        else:
            lines.append(f"{key}: {before} → {after}")
    return lines


def describe_changes(old: dict[str, Any], new: dict[str, Any]) -> list[Text]:
    """One line per setting that differs between two override documents."""
    lines: list[Text] = []
    for key in ("allow", "approval", "enabled"):
        if old.get(key) != new.get(key):
            lines.append(Text(f"{key}: {old.get(key)} → {new.get(key)}"))
    oc, nc = old.get("constraints") or {}, new.get("constraints") or {}
    for key in sorted(set(oc) | set(nc)):
        if oc.get(key) == nc.get(key):
            continue
        line = Text(f"{key}: ", style="bold", end="")
        line.append_text(safe_text(oc.get(key), 60))
        line.append(" → ")
        line.append_text(safe_text(nc.get(key), 60))
        lines.append(line)
    return lines


# --------------------------------------------------------------------------- modals


class PolicyDiffScreen(ModalScreen[bool]):
    """The saved vs the new policy as a unified diff; `y` saves, `n`/`esc` goes back."""

    CSS_PATH = EDITOR_CSS
    BINDINGS = [
        Binding("y,ctrl+s", "confirm", "Save", id="policy_diff.save", tooltip="Save this policy"),
        Binding("n,escape", "cancel", "Back", id="policy_diff.back", tooltip="Keep editing"),
    ]

    def __init__(self, session_label: str, old: dict[str, Any], new: dict[str, Any]) -> None:
        super().__init__()
        self._label = session_label
        self._old = old
        self._new = new

    def compose(self) -> ComposeResult:
        added, removed = diff_counts(self._old, self._new)
        with Vertical(id="diff-box", classes="modal-box"):
            title = Text("Save policy for ", style="bold", end="")
            title.append_text(safe_text(self._label, 60, style="bold"))
            title.append(f"?   +{added} −{removed} lines", style="bold")
            yield Static(title, classes="modal-title")
            with VerticalScroll(id="diff-scroll"):
                grants = newly_allowed(
                    self._old.get("overrides") or [], self._new.get("overrides") or []
                )
                yield Static(newly_allowed_text(grants), id="diff-new")
                yield Static(unified_policy_diff(self._old, self._new), id="diff-body")
            yield Static(
                Text.assemble(
                    ("y", "bold"),
                    " save (recorded as policy.updated)   ",
                    ("n / esc", "bold"),
                    " keep editing",
                ),
                classes="modal-keys",
            )
            yield TalonFooter()

    def action_confirm(self) -> None:
        self.dismiss(True)

    def action_cancel(self) -> None:
        self.dismiss(False)


class SimulationScreen(ModalScreen[None]):
    """Recorded decisions of the session that the unsaved policy would decide differently."""

    CSS_PATH = EDITOR_CSS
    BINDINGS = [
        Binding("escape,q", "close", "Close", id="simulation.close", tooltip="Back to the editor"),
    ]

    def __init__(self, changes: list[SimulationChange]) -> None:
        super().__init__()
        self._changes = changes

    def compose(self) -> ComposeResult:
        with Vertical(id="sim-box", classes="modal-box"):
            n = len(self._changes)
            title = (
                "Simulation: no recorded decision would change"
                if n == 0
                else f"Simulation: {n} recorded decision{'s' if n != 1 else ''} would change"
            )
            yield Static(Text(title, style="bold"), classes="modal-title")
            if n == 0:
                yield Static(
                    Text(
                        "Every intent recorded for this session would get the same decision "
                        "under the unsaved policy. Nothing was executed.",
                    ),
                    id="sim-empty",
                )
            else:
                yield Static(
                    Text("Re-evaluated from the audit log; nothing was executed.", style="dim")
                )
                yield DataTable(id="sim-table", cursor_type="row", zebra_stripes=True)
                # the row's whole reason and params, wrapped: the table cuts them
                with VerticalScroll(id="sim-detail"):
                    yield Static(id="sim-detail-body")
            yield TalonFooter()

    def on_mount(self) -> None:
        if not self._changes:
            return
        table = self.query_one("#sim-table", DataTable)
        table.add_columns("seq", "tool", "before → after", "params", "reason")
        for ch in self._changes:
            change = Text.assemble(decision_badge(ch.before), " → ", decision_badge(ch.after))
            table.add_row(
                Text(str(ch.seq)),
                safe_text(ch.tool, 16),
                change,
                safe_text(ch.params, 48),
                safe_text(ch.reason, 60),
                key=str(ch.seq),
            )
        table.focus()
        self._show_detail(0)

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        self._show_detail(event.cursor_row)

    def _show_detail(self, row: int) -> None:
        if not 0 <= row < len(self._changes):
            return
        ch = self._changes[row]
        text = Text.assemble(
            (f"seq {ch.seq}  ", "dim"),
            decision_badge(ch.before),
            " → ",
            decision_badge(ch.after),
            "\n",
        )
        text.append_text(labelled("reason", ch.reason, 4000))
        text.append("\n")
        text.append_text(labelled("params", ch.params, 4000))
        body = self.query_one("#sim-detail-body", Static)
        body.update(text)

    def action_close(self) -> None:
        self.dismiss(None)
