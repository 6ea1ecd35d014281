"""Navigation goes through one registry (`app.go(name, **args)`, app.py's `SCREENS`): the
console's modules import each other without cycles and never lazily, and every registered
name opens its screen (or says why not)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from support import REPO
from support.app import frozen, settle, talon_app  # noqa: F401

from talon_tui.app.app import SCREENS
from talon_tui.app.screens.approvals import ApprovalsScreen
from talon_tui.app.screens.dashboard import DashboardScreen
from talon_tui.app.screens.policy_editor import PolicyEditorScreen
from talon_tui.app.screens.run_timeline import RunTimelineScreen
from talon_tui.app.screens.session_detail import SessionDetailScreen
from talon_tui.app.screens.sessions import SessionsScreen

APP = REPO / "talon_tui" / "app"


def _module(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports(path: Path) -> list[tuple[ast.stmt, str, list[str]]]:
    """(statement, imported module, names) of every import in `path`, resolved."""
    out = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out.extend((node, a.name, []) for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            target = node.module or ""
            if node.level:
                base = _module(path).split(".")
                if path.name != "__init__.py":
                    base.pop()
                base = base[: len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            out.append((node, target, [a.name for a in node.names]))
    return out


def console_graph() -> dict[str, set[str]]:
    """module -> the console modules it imports (`from pkg import mod` counts as pkg.mod)."""
    files = {_module(p): p for p in APP.rglob("*.py")}
    graph: dict[str, set[str]] = {m: set() for m in files}
    for module, path in files.items():
        for _node, target, names in _imports(path):
            for candidate in [target, *(f"{target}.{n}" for n in names)]:
                if candidate in files and candidate != module:
                    graph[module].add(candidate)
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle of `graph` (as a path that returns to its start), or None."""
    state: dict[str, int] = {}  # 1 on the stack, 2 done
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt) :] + [nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_the_cycle_finder_finds_a_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_the_console_has_no_import_cycles():
    graph = console_graph()
    assert "talon_tui.app.screens.base" in graph["talon_tui.app.screens.audit"]  # it sees edges
    assert find_cycle(graph) is None


def test_only_the_app_factory_imports_app_py():
    importers = [m for m, deps in console_graph().items() if "talon_tui.app.app" in deps]
    assert importers == []


def test_no_console_module_imports_inside_a_function_or_type_check():
    lazy = []
    for path in APP.rglob("*.py"):
        tree = ast.parse(path.read_text(), str(path))
        for top in tree.body:
            for node in ast.walk(top):
                if node is top:
                    continue
                if isinstance(node, ast.Import | ast.ImportFrom):
                    lazy.append(f"{path.relative_to(REPO)}:{node.lineno}")
    assert lazy == []


def test_the_registry_lists_what_jump_and_the_palette_show():
    listed = [name for name, spec in SCREENS.items() if spec.listed]
    assert listed == [
        "dashboard",
        "sessions",
        "approvals",
        "audit",
        "replay",
        "skills",
        "servers",
        "session",
        "policy",
        "quit",
    ]
    assert not SCREENS["run"].listed and SCREENS["run"].factory is not None


async def _populate(hosted) -> None:
    await hosted.session("alpha")


@pytest.mark.slow
@pytest.mark.usefixtures("frozen")
async def test_go_opens_every_screen_by_name(tmp_path):
    app, hosted = talon_app(tmp_path / "data", _populate, pipe=False)
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        sid = hosted.sessions["alpha"]
        for name, spec in SCREENS.items():  # every name builds its screen (not mounted: cheap)
            if spec.factory is not None:
                args = {spec.arg: "x"} if spec.required or name == "run" else {}
                assert type(app.make_screen(name, **args)) is type(spec.factory(app, **args))
        # a top-level view replaces the stack above the dashboard
        await app.go("skills")
        await app.go("approvals")
        await settle(pilot)
        assert isinstance(app.screen, ApprovalsScreen) and len(app.screen_stack) == 3
        await app.go("session", sid)
        await settle(pilot)
        assert isinstance(app.screen, SessionDetailScreen) and app.screen.session_id == sid
        # a detail view stacks; `policy` takes the session from the screen it is opened on
        await app.go("policy")
        await settle(pilot)
        assert isinstance(app.screen, PolicyEditorScreen) and app.screen.session_id == sid
        depth = len(app.screen_stack)
        await app.go("run", run_id="run_unknown", session_id=sid)
        await settle(pilot)
        assert isinstance(app.screen, RunTimelineScreen)
        assert (app.screen.run_id, app.screen.session_id) == ("run_unknown", sid)
        assert len(app.screen_stack) == depth + 1
        await app.go("dashboard")
        await settle(pilot)
        assert isinstance(app.screen, DashboardScreen) and len(app.screen_stack) == 2


@pytest.mark.usefixtures("frozen")
async def test_go_without_a_required_id_or_to_an_unknown_name_says_why(tmp_path):
    app, _hosted = talon_app(tmp_path / "data", _populate, pipe=False)
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        await app.go("policy")
        await settle(pilot)
        assert isinstance(app.screen, SessionsScreen)
        titles = [n.title for n in app._notifications]
        assert ":policy needs a session" in titles
        before = list(app.screen_stack)
        await app.go("nowhere")
        await settle(pilot)
        assert app.screen_stack == before
        messages = [n.message for n in app._notifications]
        wanted = "no screen called 'nowhere'; try one of: dashboard, sessions"
        assert any(m.startswith(wanted) for m in messages)
