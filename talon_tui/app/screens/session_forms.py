"""Modal forms of the sessions screen: create a session, show an agent key once."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, Select, Static

from talon_tui.engine.errors import PolicyInvalid
from talon_tui.engine.policy.models import parse_policy, read_policy_json

from ..widgets.footer import TalonFooter
from ..widgets.safe_text import safe_text

SAMPLE_POLICIES = Path(__file__).resolve().parents[3] / "sample_policies"
EMPTY_POLICY = "(empty: deny everything)"


def sample_policy_files(directory: Path = SAMPLE_POLICIES) -> list[Path]:
    if not directory.is_dir():
        return []
    return sorted(p for p in directory.glob("*.json") if p.is_file())


def read_policy_file(path: Path) -> dict[str, Any]:
    """A sample policy document, validated; raises PolicyInvalid naming the file."""
    try:
        doc = read_policy_json(path.read_bytes())
    except OSError as exc:
        raise PolicyInvalid(f"{path.name}: cannot read ({exc})") from exc
    except PolicyInvalid as exc:
        raise PolicyInvalid(f"{path.name}: {exc.message}") from exc
    if isinstance(doc, dict) and "policy" in doc and "overrides" not in doc:
        doc = doc["policy"]  # sample files may wrap the policy with a description
    return parse_policy(doc).to_doc()


class NewSessionScreen(ModalScreen[dict[str, Any] | None]):
    """Label, workspace and starting policy; dismisses with create_session's arguments."""

    CSS_PATH = "session_forms.tcss"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "cancel", "cancel", id="form.cancel"),
        Binding("ctrl+s", "submit", "create", id="form.submit", tooltip="Create the session"),
    ]

    def __init__(self, policies_dir: Path = SAMPLE_POLICIES) -> None:
        super().__init__()
        self.policy_files = sample_policy_files(policies_dir)

    def compose(self) -> ComposeResult:
        options = [(EMPTY_POLICY, "")] + [(p.stem, str(p)) for p in self.policy_files]
        with VerticalScroll(id="new-session-form"):
            yield Static(Text("New session", style="bold"))
            yield Label("Label")
            yield Input(placeholder="e.g. research-agent", id="label", max_length=200)
            yield Label("Workspace (absolute directory; empty: a new one in the data dir)")
            yield Input(placeholder="/home/me/project", id="workspace")
            yield Label("Starting policy")
            yield Select(options, value="", allow_blank=False, id="policy")
            yield Static("", id="form-error")
            with Horizontal():
                yield Button("Cancel", id="cancel")
                yield Button("Create (ctrl+s)", id="create", variant="primary")
        yield TalonFooter()

    def on_mount(self) -> None:
        self.query_one("#label", Input).focus()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        if event.input.id == "label":
            self.query_one("#workspace", Input).focus()
        else:
            self.action_submit()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        if event.button.id == "create":
            self.action_submit()
        else:
            self.dismiss(None)

    def _error(self, message: str) -> None:
        self.query_one("#form-error", Static).update(safe_text(message, 400, multiline=True))

    def action_submit(self) -> None:
        label = self.query_one("#label", Input).value.strip()
        workspace = self.query_one("#workspace", Input).value.strip() or None
        choice = self.query_one("#policy", Select).value
        if not label:
            self._error("label: give the session a name")
            self.query_one("#label", Input).focus()
            return
        if workspace is not None and not workspace.startswith("/"):
            self._error("workspace: must be an absolute directory (starting with /)")
            self.query_one("#workspace", Input).focus()
            return
        policy = None
        if isinstance(choice, str) and choice:
            try:
                policy = read_policy_file(Path(choice))
            except PolicyInvalid as exc:
                self._error(str(exc))
                return
        self.dismiss({"label": label, "workspace": workspace, "policy": policy})

    def action_cancel(self) -> None:
        self.dismiss(None)


class AgentKeyScreen(ModalScreen[None]):
    """Shows a new agent key once; `c` copies it to the clipboard."""

    CSS_PATH = "session_forms.tcss"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("c", "copy", "copy key", id="key.copy", tooltip="Copy the key to the clipboard"),
        Binding("escape,enter", "close", "done", id="key.close"),
    ]

    def __init__(self, label: str, session_id: str, key: str, *, reissued: bool = False) -> None:
        super().__init__()
        self.label = label
        self.session_id = session_id
        self.key = key
        self.reissued = reissued

    def compose(self) -> ComposeResult:
        with Vertical(id="agent-key"):
            title = Text("Agent key for ", style="bold", end="")
            title.append_text(safe_text(self.label, 40, style="bold"))
            title.append(f"  ({self.session_id})", style="dim")
            yield Static(title)
            yield Static(safe_text(self.key, 400, multiline=True), id="key")  # wraps, whole
            note = "Shown once: Talon keeps only its hash. Copy it now (c)."
            if self.reissued:
                note += " The previous key no longer works."
            yield Static(Text(note, style="italic"))
        yield TalonFooter()

    def action_copy(self) -> None:
        self.app.copy_to_clipboard(self.key)
        self.notify("agent key copied to the clipboard", title="Copied")

    def action_close(self) -> None:
        self.dismiss(None)
