"""Helpers for the `talon mcp` tests: an engine with a session, and the SDK's own MCP client
spawning `python -m talon_tui.cli mcp` over stdio."""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import mcp_types as types
from mcp import ClientSession
from mcp.client.stdio import StdioServerParameters, stdio_client

from support.pipe import REPO, Serve, make_workspace
from support.policies import READ_WRITE_POLICY

POLICY = READ_WRITE_POLICY  # what the gateway tests' session may do


class Talon:
    """One engine (`talon serve`) with one session for the gateway to act in: its own engine
    on `root / "data"`, or a session of its own on `shared`, an engine other tests use too."""

    def __init__(
        self, root: Path, approval_timeout: str = "30", shared: Serve | None = None
    ) -> None:
        self.root = root
        self.workspace = make_workspace(root)
        self.approval_timeout = approval_timeout
        self.serve = shared or Serve(root / "data", {"TALON_APPROVAL_TIMEOUT": approval_timeout})
        self.data = self.serve.data
        self.session_id = ""
        self.key = ""

    def restart(self) -> None:
        self.serve = Serve(self.data, {"TALON_APPROVAL_TIMEOUT": self.approval_timeout}).start()


class Notes:
    """Notifications the client received (list_changed)."""

    def __init__(self) -> None:
        self.list_changed = 0
        self.changed = anyio.Event()

    async def handler(self, message: Any) -> None:
        root = getattr(message, "root", message)
        if isinstance(root, types.ToolListChangedNotification):
            self.list_changed += 1
            self.changed.set()


@contextlib.asynccontextmanager
async def mcp_client(
    talon: Talon, notes: Notes | None = None, name: str = "pytest-client"
) -> AsyncIterator[ClientSession]:
    env = {
        "PYTHONPATH": str(REPO),
        "TALON_AGENT_KEY": talon.key,
        "HOME": os.environ["HOME"],
        "TALON_MCP_RETRY_SECONDS": "0.2",
        "TALON_MCP_PROGRESS_SECONDS": "0.2",
    }
    params = StdioServerParameters(
        command=sys.executable,
        args=["-m", "talon_tui.cli", "mcp", "--data-dir", str(talon.data)],
        env=env,
        cwd=str(REPO),
    )
    errlog = open(talon.root / "mcp.stderr", "a")  # noqa: SIM115 - closed below
    try:
        async with stdio_client(params, errlog=errlog) as (read, write):
            async with ClientSession(
                read,
                write,
                message_handler=notes.handler if notes else None,
                client_info=types.Implementation(name=name, version="9.9"),
            ) as session:
                await session.initialize()
                yield session
    finally:
        errlog.close()
