"""The `talon` command line: one parser for every verb, each verb's handler in `commands/`."""

from __future__ import annotations

from .main import VERBS, main

__all__ = ["VERBS", "main"]
