"""No module takes another module's `_private` names (STYLE.md: privacy is marked on the
package, so a module never needs another module's `_name`), and a `_module.py` is imported
only from inside its own package."""

from __future__ import annotations

import ast
from pathlib import Path

from support import REPO

ROOTS = ("talon_tui", "tests", "bench")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _resolve(path: Path, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    base = _module_name(path).split(".")
    if path.name != "__init__.py":
        base.pop()
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def _private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


def violations(sources: list[tuple[Path, str]]) -> list[str]:
    out = []
    for path, source in sources:
        tree = ast.parse(source, str(path))
        here = _module_name(path)
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom):
                target = _resolve(path, node)
                if not target.startswith("talon_tui"):
                    continue
                names = [target]
                for a in node.names:
                    if _private(a.name) and not _private_module_inside(here, target + "." + a.name):
                        out.append(f"{path}:{node.lineno}: imports {a.name} from {target}")
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names if a.name.startswith("talon_tui")]
            else:
                continue
            for name in names:
                for i, part in enumerate(name.split(".")):
                    if _private(part) and not _private_module_inside(here, name):
                        out.append(f"{path}:{node.lineno}: imports private module {name}")
                        break
    return out


def _private_module_inside(importer: str, name: str) -> bool:
    """`name` is a private module (or a name in one) whose package contains `importer`."""
    parts = name.split(".")
    for i, part in enumerate(parts):
        if _private(part):
            package = ".".join(parts[:i])
            return bool(package) and (importer == package or importer.startswith(package + "."))
    return False


def test_no_module_imports_another_modules_private_names():
    paths = [p for root in ROOTS for p in sorted((REPO / root).rglob("*.py"))]
    paths = [p for p in paths if "__snapshots__" not in p.parts]
    assert len(paths) > 100
    assert violations([(p, p.read_text(encoding="utf-8")) for p in paths]) == []


def test_the_check_finds_a_private_import():
    """The check can fail: a relative import of a `_name`, and of a `_module` from outside its
    package, are both reported."""
    pkg = REPO / "talon_tui" / "engine" / "pipe"
    probe = pkg / "server.py"
    source = "from .ops import _private_helper\nfrom ..audit._fastpath import fast_block\n"
    found = violations([(probe, source)])
    assert len(found) == 2
    assert "imports _private_helper from talon_tui.engine.pipe.ops" in found[0]
    assert "talon_tui.engine.audit._fastpath" in found[1]
