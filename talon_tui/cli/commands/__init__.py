"""CLI verb handlers, one module per area; each `cmd_*(args) -> int` exit code."""
