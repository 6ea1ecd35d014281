"""Helpers shared by the test packages (not tests themselves): fixtures, servers, clocks."""

from __future__ import annotations

from pathlib import Path

#: the repository root
REPO = Path(__file__).resolve().parents[2]
