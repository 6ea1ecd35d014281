"""The console's polish at 80x24 (issue 12 defect 6, issue 16 item 4): toasts never cover
table rows, approval toasts never go stale, the policy editor's header keeps "● unsaved
changes" in view."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

import pytest
from support.app import Hosted, frozen, screen_text, settle, talon_app, wait_until  # noqa: F401
from support.policy_editor import SnapshotEditorApp, fixed_ids, make_workspace, wait_for
from textual.app import App
from textual.geometry import Region
from textual.widgets import Checkbox, DataTable, Input, TextArea

from talon_tui.app.commands import ScreenCommands
from talon_tui.app.screens.approvals import ApprovalContentScreen, ApprovalsScreen
from talon_tui.app.screens.policy_editor import PolicyEditorScreen
from talon_tui.app.screens.replay import WhatIfScreen
from talon_tui.app.screens.run_timeline import RunTimelineScreen
from talon_tui.app.widgets.override_form import OverrideFormScreen
from talon_tui.app.widgets.policy_diff import SimulationScreen
from talon_tui.client import AdminClient, AsyncAgentClient, ClientError
from talon_tui.engine.api import BusMessage, SimulationChange

SMALL = (80, 24)
EDITOR_ROOT = Path("/tmp/talon-snapshots-console-polish-editor")  # shown on screen
pytestmark = pytest.mark.xdist_group("console-polish")


async def many_sessions(h: Hosted) -> None:
    for n in range(30):
        await h.session(f"agent-{n:02d}")


def _toasts(app) -> list:
    return [w for w in app.screen.walk_children() if type(w).__name__ == "Toast"]


def _rows_region(table: DataTable) -> Region:
    """Where the table's rows are drawn (below its column names)."""
    region = table.content_region
    return Region(region.x, region.y + 1, region.width, region.height - 1)


@pytest.mark.usefixtures("frozen")
async def test_toasts_never_cover_table_rows_at_80x24(tmp_path):
    app, _ = talon_app(tmp_path / "data", many_sessions, pipe=False)
    async with app.run_test(size=SMALL, notifications=True) as pilot:
        await settle(pilot)
        await pilot.press("2")
        await settle(pilot)
        table = app.screen.query_one(DataTable)
        assert table.row_count == 30
        rows = _rows_region(table)
        before = screen_text(app).splitlines()[rows.y : rows.bottom]
        app.notify(
            "the engine refused: " + "a long reason that goes on " * 6,
            title="Engine",
            severity="error",
            markup=False,
        )
        app.notify("agent key copied to the clipboard", title="Copied")
        await settle(pilot)
        await pilot.pause(0.3)
        assert _toasts(app), "no toast shown"
        text = screen_text(app).splitlines()
        assert text[rows.y : rows.bottom] == before  # every row still reads the same
        assert "Engine" in text[0]  # over the title bar, in view


def _requested(n: int) -> BusMessage:
    approval = {"tool": "file.write", "subject": f"agent:{n}", "params": {"path": f"d/{n}.md"}}
    return BusMessage(kind="approval", payload={"action": "requested", "approval": approval})


def _decided() -> BusMessage:
    return BusMessage(kind="approval", payload={"action": "decided", "approval": {}})


def _approval_toasts(app) -> list[str]:
    return [f"{n.title}: {n.message}" for n in app._notifications if "Approval" in n.title]


@pytest.mark.usefixtures("frozen")
async def test_no_press_3_toast_while_on_approvals(tmp_path):
    app, _ = talon_app(tmp_path / "data", pipe=False)
    async with app.run_test(size=SMALL) as pilot:
        await settle(pilot)
        app.dispatch_bus(_requested(1))
        await settle(pilot)
        assert len(_approval_toasts(app)) == 1
        await pilot.press("3")
        await settle(pilot)
        assert isinstance(app.screen, ApprovalsScreen)
        assert _approval_toasts(app) == []  # the one from before is taken down
        app.dispatch_bus(_requested(2))
        await settle(pilot)
        assert _approval_toasts(app) == []
        assert app.pending_approvals == 2


@pytest.mark.usefixtures("frozen")
async def test_waiting_toast_goes_when_nothing_waits(tmp_path):
    app, _ = talon_app(tmp_path / "data", pipe=False)
    async with app.run_test(size=SMALL) as pilot:
        await settle(pilot)
        app.dispatch_bus(_requested(1))
        app.dispatch_bus(_requested(2))
        await settle(pilot)
        app._announce_waiting()
        await settle(pilot)
        assert any("2 intents waiting" in t for t in _approval_toasts(app))
        app.dispatch_bus(_decided())
        app.dispatch_bus(_decided())
        await settle(pilot)
        assert app.pending_approvals == 0
        assert _approval_toasts(app) == []


EDITOR_POLICY = {
    "version": 1,
    "overrides": [
        {"tool": "file.read", "allow": True, "constraints": {"roots": ["work"]}},
        {"tool": "shell.exec", "allow": False},
    ],
}


@pytest.fixture
def editor_app(monkeypatch):
    fixed_ids(monkeypatch)
    shutil.rmtree(EDITOR_ROOT, ignore_errors=True)
    EDITOR_ROOT.mkdir(parents=True)
    ws = make_workspace(EDITOR_ROOT)
    yield SnapshotEditorApp(EDITOR_ROOT / "data", ws, EDITOR_POLICY)
    shutil.rmtree(EDITOR_ROOT, ignore_errors=True)


def test_editor_header_shows_unsaved_changes_at_80x24(editor_app, snap_compare):
    async def run_before(pilot) -> None:
        app = pilot.app
        await wait_for(
            pilot,
            lambda: isinstance(app.screen, PolicyEditorScreen) and app.screen.loads > 0,
            "the editor",
        )
        await pilot.press("down", "space")  # disable the shell.exec deny: unsaved
        await wait_for(pilot, lambda: app.screen.dirty, "the toggle")

    assert snap_compare(editor_app, terminal_size=SMALL, run_before=run_before)


@pytest.mark.usefixtures("frozen")
async def test_help_names_keys_and_actions_in_words_at_80x24(tmp_path):
    async def one_session(h: Hosted) -> None:
        await h.session("research-agent")

    app, _ = talon_app(tmp_path / "data", one_session, pipe=False)
    async with app.run_test(size=SMALL) as pilot:
        await settle(pilot)
        await pilot.press("2")
        await settle(pilot)
        await pilot.press("e")
        await settle(pilot)
        assert isinstance(app.screen, PolicyEditorScreen)
        await pilot.press("question_mark")
        await settle(pilot)
        text = screen_text(app)
        assert "Keys of the policy editor" in text
        assert "policyeditor" not in text
        assert "policy.tighten" not in text and "app.jump" not in text
        tighten = next(line for line in text.splitlines() if " tighten " in line)
        assert tighten.split()[:2] == ["│", "t"] or tighten.split()[0] == "t", tighten
        assert "Apply the next fix the advisor" in text  # what it does, wrapped, not cut


@pytest.mark.usefixtures("frozen")
async def test_override_form_shows_borders_focus_and_checkbox_state_without_colour(tmp_path):
    async def one_session(h: Hosted) -> None:
        await h.session("research-agent")

    app, _ = talon_app(tmp_path / "data", one_session, pipe=False)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        await pilot.press("2")
        await settle(pilot)
        await pilot.press("e")
        await settle(pilot)
        await pilot.press("a")  # add an override: the form
        await settle(pilot)
        form = app.screen
        assert isinstance(form, OverrideFormScreen)
        note = form.query_one("#f-note", Input)
        assert note.styles.border_top[0] == "round"  # where to type is visible
        text = screen_text(app)
        assert "[x] allow (else deny)" in text and "[x] on" in text
        form.query_one("#f-allow", Checkbox).value = False
        await settle(pilot)
        assert "[ ] allow (else deny)" in screen_text(app)
        note.focus()
        await settle(pilot)
        assert note.styles.border_top[0] == "heavy"  # the focus, without colour


@pytest.mark.usefixtures("frozen")
async def test_the_palette_reaches_every_action_of_the_editor(tmp_path):
    risky = {
        "version": 1,
        "overrides": [
            {"tool": "file.read", "allow": True, "constraints": {"roots": ["work", "/"]}}
        ],
    }

    async def one_session(h: Hosted) -> None:
        await h.session("research-agent", risky)

    app, _ = talon_app(tmp_path / "data", one_session, pipe=False)
    async with app.run_test(size=SMALL) as pilot:
        await settle(pilot)
        await pilot.press("2")
        await settle(pilot)
        await pilot.press("e")
        await settle(pilot)
        editor = app.screen
        assert isinstance(editor, PolicyEditorScreen) and not editor.dirty
        provider = ScreenCommands(editor)
        await provider.startup()
        texts = [text for text, _, _ in provider.commands]
        for action in ("add", "edit", "tighten", "simulate"):
            assert f"policy editor: {action}" in texts, texts
        hits = [hit async for hit in provider.search("tighten")]
        assert hits and hits[0].text == "policy editor: tighten"
        hits[0].command()
        await wait_until(pilot, lambda: editor.dirty)  # the tighten ran on the override


@pytest.mark.usefixtures("frozen")
async def test_fix_safely_says_why_a_step_refused_for_its_input_has_no_fix(tmp_path):
    policy = {
        "version": 1,
        "overrides": [
            {"tool": "http.fetch", "allow": True, "constraints": {"domains": ["example.com"]}}
        ],
    }

    async def setup(h: Hosted) -> None:
        await h.session("fetcher", policy)

    app, hosted = talon_app(tmp_path / "data", setup)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        agent = await AsyncAgentClient.connect(
            hosted.keys["fetcher"], socket_path=hosted.socket_path
        )
        with pytest.raises(ClientError) as denied:
            await agent.intent("http.fetch", {"url": "https://example.com/" + "a" * 100_000})
        run_id = denied.value.details["run_id"]
        await app.push_screen(RunTimelineScreen(hosted.engine, run_id))
        await wait_until(pilot, lambda: app.screen.steps and app.screen.steps[0].decision == "DENY")
        assert not app.screen.steps[0].suggested_fix
        await pilot.press("f")
        await settle(pilot)
        notes = [f"{n.title}: {n.message}" for n in app._notifications]
        assert any("refused this step's input itself" in n for n in notes), notes
        assert "select a denied step" not in " ".join(notes)
        assert "fix safely (f): none." in screen_text(app)


@pytest.mark.usefixtures("frozen")
async def test_the_what_if_dialog_label_is_whole_at_80x24(tmp_path):
    app, hosted = talon_app(tmp_path / "data", pipe=False)
    async with app.run_test(size=SMALL) as pilot:
        await settle(pilot)
        await app.push_screen(WhatIfScreen(hosted.engine, None))
        await settle(pilot)
        text = screen_text(app)
        assert "press enter," in text
        assert "or press ctrl+o to use the session's current policy." in text


class _SimulationApp(App[None]):
    def __init__(self, changes: list[SimulationChange]) -> None:
        super().__init__()
        self.changes = changes

    def on_mount(self) -> None:
        self.push_screen(SimulationScreen(self.changes))


async def test_a_simulated_reason_is_shown_whole_at_80x24():
    reason = (
        "override #1 denies file.read (allow: false); an explicit denial wins over every "
        "allowing override, END-OF-REASON"
    )
    change = SimulationChange(
        seq=7,
        run_id=None,
        tool="file.read",
        params={"path": "notes/plan.md"},
        before="ALLOW",
        after="DENY",
        reason=reason,
    )
    app = _SimulationApp([change])
    async with app.run_test(size=SMALL) as pilot:
        await pilot.pause()
        text = screen_text(app)
        assert "END-OF-REASON" in text  # wrapped in the detail line, not cut
        assert "override #1 denies fi" in text


BIG_WRITE = {
    "version": 1,
    "overrides": [
        {
            "tool": "file.write",
            "allow": True,
            "approval": "always",
            "constraints": {"roots": ["drafts"], "max_bytes": 1_048_576},
        }
    ],
}


@pytest.mark.usefixtures("frozen")
async def test_a_100k_write_shows_its_size_and_pages_through_all_of_it(tmp_path):
    content = "".join(f"line {n:05d} " + "x" * 90 + "\n" for n in range(1000)) + "THE-END"
    assert len(content) > 100_000

    async def setup(h: Hosted) -> None:
        await h.session("writer", BIG_WRITE, {"drafts/.keep": ""})

    app, hosted = talon_app(tmp_path / "data", setup)
    async with app.run_test(size=SMALL) as pilot:
        await settle(pilot)
        agent = await AsyncAgentClient.connect(
            hosted.keys["writer"], socket_path=hosted.socket_path
        )
        task = asyncio.ensure_future(
            agent.intent("file.write", {"path": "drafts/big.md", "content": content})
        )
        await pilot.press("3")
        await wait_until(
            pilot,
            lambda: (
                isinstance(app.screen, ApprovalsScreen)
                and app.screen.query_one(DataTable).row_count == 1
            ),
        )
        approval_id = app.screen.approvals[0].approval_id
        # attached the way `talon` is to `talon serve`: the request comes over the pipe in pages
        admin = await AdminClient.connect(hosted.data_dir, socket_path=hosted.socket_path)
        try:
            await app.push_screen(ApprovalContentScreen(admin, approval_id))
            view = app.screen
            await wait_until(pilot, lambda: bool(view.document))
            title = screen_text(app)
            size = len(content.encode())
            assert f"content {size:,} bytes" in title
            area = view.query_one(TextArea)
            assert content in area.text  # every character, nothing cut
            await pilot.press("ctrl+end")
            await settle(pilot)
            assert "THE-END" in screen_text(app)  # paged to the very end, on screen
            await pilot.press("escape")
            await settle(pilot)
            assert isinstance(app.screen, ApprovalsScreen)
        finally:
            await admin.close()
            task.cancel()
            await agent.close()


@pytest.mark.usefixtures("frozen")
async def test_every_toast_is_kept_in_full_in_messages(tmp_path):
    app, _ = talon_app(tmp_path / "data", pipe=False)
    async with app.run_test(size=SMALL) as pilot:
        await settle(pilot)
        long = "the engine refused: " + "a long reason that goes on " * 8 + "END-OF-MESSAGE"
        app.notify(long, title="Engine", severity="error", markup=False)
        app.notify("[bold]ALLOW[/] \x1b[2J", title="Agent says", markup=False)
        app.dispatch_bus(_requested(1))
        await settle(pilot)
        commands = {c.title: c for c in app.get_system_commands(app.screen)}
        commands["messages"].callback()
        await settle(pilot)
        area = app.screen.query_one(TextArea)
        assert long in area.text  # whole, where the toast shows one line of it
        assert "[bold]ALLOW[/] \\x1b[2J" in area.text  # literal, control written out
        assert "Approval needed" in area.text and "d/1.md" in area.text
        assert area.text.index("Approval needed") < area.text.index(
            "END-OF-MESSAGE"
        )  # newest first


@pytest.mark.usefixtures("frozen")
async def test_the_new_session_form_shows_focus_without_colour(tmp_path):
    app, _ = talon_app(tmp_path / "data", pipe=False)
    async with app.run_test(size=SMALL) as pilot:
        await settle(pilot)
        await pilot.press("2")
        await settle(pilot)
        await pilot.press("n")
        await settle(pilot)
        label = app.screen.query_one("#label", Input)
        workspace = app.screen.query_one("#workspace", Input)
        assert app.screen.focused is label
        assert label.styles.border_top[0] == "heavy"
        assert workspace.styles.border_top[0] == "round"
        await pilot.press("tab")
        await settle(pilot)
        assert label.styles.border_top[0] == "round"
        assert workspace.styles.border_top[0] == "heavy"
