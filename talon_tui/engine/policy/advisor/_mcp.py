"""Advisor rules for mcp.call: wildcards and destructive-sounding tools allowed without
approval. `advisor.lint` calls them."""

from __future__ import annotations

from ..checks import mcp_tool_destructive
from ..models import McpConstraints, Override
from ._base import Advice, make_advice, tighten


def advise_mcp(index: int, o: Override, c: McpConstraints) -> list[Advice]:
    out: list[Advice] = []
    unapproved = o.approval != "always"
    if "*" in c.servers:
        out.append(
            make_advice(
                "danger" if unapproved else "warn",
                index,
                "constraints.servers",
                'servers is "*": every registered MCP server, including ones added later',
                "Registering a server is an operator act, but a wildcard hands each new "
                "server's tools to this session the moment it is added.",
                "Name the servers this session needs.",
            )
        )
    if "*" in c.tools:
        out.append(
            make_advice(
                "danger" if unapproved else "warn",
                index,
                "constraints.tools",
                'tools is "*": every tool of the allowed servers, including destructive ones',
                "An upstream server decides what its tools do, and adds tools when it is "
                "upgraded: a wildcard allows them all, unseen.",
                "List the upstream tool names this session needs (echo, not notes__echo).",
            )
        )
    risky = [t for t in c.tools if t != "*" and mcp_tool_destructive(t)]
    if risky and unapproved:
        out.append(
            make_advice(
                "danger",
                index,
                "approval",
                f"destructive-sounding tools {risky} run without an operator's approval",
                "A tool named to delete, write, run or kill changes things outside Talon's "
                "view of files and network; the broker cannot re-check what it does.",
                "Require approval for each call (approval: always), or split these tools "
                "into their own override that does.",
                tighten(o, approval="always"),
            )
        )
    return out
