"""Talon: govern what local AI agents may do."""

__version__ = "0.1.0"
