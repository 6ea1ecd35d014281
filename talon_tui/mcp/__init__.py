"""Talon as an MCP server (`talon mcp`) and the MCP clients' config entries
(`talon mcp install`): `gateway` serves, `tools` lists and checks, `clients` installs."""

from __future__ import annotations

__all__: list[str] = []
