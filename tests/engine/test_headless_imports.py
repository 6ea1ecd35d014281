"""The engine and the headless CLI verbs must never import textual or rich (STYLE.md)."""

from __future__ import annotations

import pkgutil
import subprocess
import sys

import talon_tui.engine

ENGINE_MODULES = sorted(
    m.name for m in pkgutil.walk_packages(talon_tui.engine.__path__, prefix="talon_tui.engine.")
)

CHECK = """
import importlib, sys
for name in sys.argv[1:]:
    importlib.import_module(name)
bad = sorted(m for m in sys.modules if m.split('.')[0] in ('textual', 'rich'))
print(','.join(bad))
"""


def _imported_ui_modules(*modules: str) -> str:
    out = subprocess.run(
        [sys.executable, "-c", CHECK, *modules], capture_output=True, text=True, check=True
    )
    return out.stdout.strip()


def test_every_engine_module_imports_without_textual_or_rich():
    assert ENGINE_MODULES, "no engine modules found"
    assert _imported_ui_modules(*ENGINE_MODULES) == ""


HEADLESS_VERBS = [
    ["audit", "verify", "--help"],
    ["replay", "--help"],
    ["policy", "lint", "--help"],
    ["serve", "--help"],
]


def test_headless_cli_verbs_do_not_import_textual():
    for verb in HEADLESS_VERBS:
        code = (
            "import sys\n"
            "from talon_tui import cli\n"
            "try:\n"
            f"    cli.main({verb!r})\n"
            "except SystemExit:\n"
            "    pass\n"
            "import importlib\n"
            f"mod, fn = cli.VERBS[tuple(w for w in {verb!r} if not w.startswith('-'))][:2]\n"
            "importlib.import_module('talon_tui.commands.' + mod)\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('textual', 'rich')))\n"
        )
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
        assert out.returncode == 0, out.stderr
        assert out.stdout.strip().splitlines()[-1] == "[]", (verb, out.stdout)


def test_help_lists_every_verb_with_one_line():
    out = subprocess.run(
        [sys.executable, "-m", "talon_tui.cli", "--help"], capture_output=True, text=True
    )
    assert out.returncode == 0
    from talon_tui.cli import VERBS

    for path, (_, _, help_) in VERBS.items():
        assert f"{' '.join(path)}" in out.stdout and help_ in out.stdout


def test_usage_error_is_one_line_and_exit_2():
    out = subprocess.run(
        [sys.executable, "-m", "talon_tui.cli", "replay"], capture_output=True, text=True
    )
    assert out.returncode == 2
    assert len(out.stderr.strip().splitlines()) == 1
    assert out.stderr.startswith("talon:")
