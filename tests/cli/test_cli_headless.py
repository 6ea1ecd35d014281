"""The headless CLI verbs never import textual or rich (what Talon's own modules import is
recorded by support/imports.py), and usage is one line per verb."""

from __future__ import annotations

import subprocess
import sys

from support.imports import forbidden, imports_of

UI = ("textual", "rich")


HEADLESS_VERBS = [
    ["audit", "verify", "--help"],
    ["replay", "--help"],
    ["policy", "lint", "--help"],
    ["serve", "--help"],
]


def test_headless_cli_verbs_do_not_import_textual():
    for verb in HEADLESS_VERBS:
        code = (
            "import importlib\n"
            "from talon_tui import cli\n"
            "try:\n"
            f"    cli.main({verb!r})\n"
            "except SystemExit:\n"
            "    pass\n"
            f"mod, fn = cli.VERBS[tuple(w for w in {verb!r} if not w.startswith('-'))][:2]\n"
            "importlib.import_module('talon_tui.cli.commands.' + mod)\n"
        )
        pairs = imports_of(code, "talon_tui")
        assert forbidden(pairs, *UI, "talon_tui.app") == [], verb


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
