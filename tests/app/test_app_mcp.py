"""The console shows an MCP client's calls: the approval names the client (from the gateway's
run) and the tool, and hostile text from the client (its clientInfo name, its arguments) is
shown literally, never executed as markup or escapes."""

from __future__ import annotations

import asyncio
import os
import sys

import mcp_types as types
import pytest
from mcp import ClientSession
from mcp.client.stdio import StdioServerParameters, stdio_client
from support.app import (
    HOSTILE_ANSI,
    HOSTILE_LINK,
    HOSTILE_MARKUP,
    screen_text,
    settle,
    talon_app,
    wait_until,
)
from support.pipe import REPO
from textual.widgets import DataTable

from talon_tui.app.screens.approvals import ApprovalsScreen
from talon_tui.app.screens.run_timeline import RunTimelineScreen

SIZE = (120, 40)
HOSTILE = HOSTILE_MARKUP + HOSTILE_ANSI + HOSTILE_LINK
POLICY = {
    "version": 1,
    "overrides": [
        {
            "tool": "file.write",
            "allow": True,
            "approval": "always",
            "constraints": {"roots": ["drafts"]},
        }
    ],
}


def _literal(text: str) -> None:
    assert HOSTILE_MARKUP in text and HOSTILE_LINK in text
    assert "\\x1b[2J" in text and "\x1b" not in text


@pytest.mark.slow
@pytest.mark.usefixtures("frozen")
async def test_mcp_client_and_tool_in_approvals_and_timeline(tmp_path):
    async def setup(h):
        await h.session("claude", POLICY, {"drafts/.keep": ""})

    app, hosted = talon_app(tmp_path / "data", setup)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        params = StdioServerParameters(
            command=sys.executable,
            args=["-m", "talon_tui.cli", "mcp", "--data-dir", str(hosted.data_dir)],
            env={
                "PYTHONPATH": str(REPO),
                "TALON_AGENT_KEY": hosted.keys["claude"],
                "HOME": os.environ["HOME"],
            },
            cwd=str(REPO),
        )
        with open(tmp_path / "mcp.stderr", "w") as errlog:
            async with (
                stdio_client(params, errlog=errlog) as (read, write),
                ClientSession(
                    read, write, client_info=types.Implementation(name=HOSTILE, version="1")
                ) as session,
            ):
                await session.initialize()
                call = asyncio.ensure_future(
                    session.call_tool(
                        "file_write", {"path": "drafts/n.md", "content": "body " + HOSTILE}
                    )
                )
                await pilot.press("3")
                await wait_until(
                    pilot,
                    lambda: (
                        isinstance(app.screen, ApprovalsScreen)
                        and app.screen.query_one(DataTable).row_count == 1
                    ),
                )
                await settle(pilot)
                text = screen_text(app)
                _literal(text)
                assert "through talon mcp" in text  # the run names the MCP client
                assert "file.write" in text
                approval = app.screen.approvals[0]
                await pilot.press("y")
                result = await asyncio.wait_for(call, 30)
                assert not result.is_error
        await app.push_screen(RunTimelineScreen(hosted.engine, approval.run_id))
        await wait_until(pilot, lambda: bool(app.screen.steps))
        await settle(pilot)
        text = screen_text(app)
        assert "MCP client " + HOSTILE_MARKUP in text  # the run's title names the client
        _literal(text)
