"""Fixtures shared by the console tests (the helpers are in tests/support/app.py)."""

from __future__ import annotations

from support.app import frozen

__all__ = ["frozen"]
