"""The engine must never import textual or rich (STYLE.md), nor the console, CLI or client.

An import hook records what Talon's own modules import (support/imports.py), so a third
party that pulls rich in (httpx does when `click` is installed) cannot make this fail, and
an engine module that imports the console, the CLI or the client always does.
"""

from __future__ import annotations

import pkgutil

import pytest
from support.imports import forbidden, imports_of

import talon_tui.engine

UI = ("textual", "rich")
ENGINE_MODULES = sorted(
    m.name for m in pkgutil.walk_packages(talon_tui.engine.__path__, prefix="talon_tui.engine.")
)


@pytest.mark.slow
def test_every_engine_module_imports_without_textual_or_rich():
    assert ENGINE_MODULES, "no engine modules found"
    code = "import importlib\n" + "".join(
        f"importlib.import_module({m!r})\n" for m in ENGINE_MODULES
    )
    pairs = imports_of(code, "talon_tui.engine")
    assert pairs, "the hook recorded nothing"
    bad = forbidden(pairs, *UI, "talon_tui.app", "talon_tui.cli", "talon_tui.client")
    assert bad == []


def test_the_hook_sees_an_engine_module_that_imports_rich(tmp_path):
    """The check can fail: a module under the watched prefix that imports rich is reported."""
    pkg = tmp_path / "talon_probe"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("from rich import text\n")
    code = f"import sys; sys.path.insert(0, {str(tmp_path)!r}); import talon_probe"
    assert forbidden(imports_of(code, "talon_probe"), *UI) == [
        ("talon_probe", "rich"),
        ("talon_probe", "rich.text"),
    ]
