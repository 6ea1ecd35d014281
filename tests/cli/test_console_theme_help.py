"""`--theme` is documented where an operator looks: `talon --help` and `talon console --help`."""

from __future__ import annotations

import subprocess
import sys

from support.pipe import REPO


def _help(*argv: str) -> str:
    out = subprocess.run(
        [sys.executable, "-m", "talon_tui.cli", *argv, "--help"],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=60,
        check=True,
    )
    return out.stdout


def test_talon_help_documents_the_theme_and_where_it_is_kept():
    text = _help()
    assert "--theme NAME" in text
    assert "talon-high-contrast" in text and "console.json" in text


def test_console_help_documents_the_theme_flag():
    text = " ".join(_help("console").split())  # argparse wraps the help at hyphens
    assert "--theme NAME" in text and "talon-high-contrast" in text.replace("- ", "-")
