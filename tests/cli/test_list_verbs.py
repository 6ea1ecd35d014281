"""The listing verbs (`session list`, `approvals list`, `mcp list`) print through one helper
(`commands.common.print_rows`): a JSON list with --json, else one line per row, else one line
saying there is nothing. Pinned here against a real `talon serve`."""

from __future__ import annotations

import json
import subprocess

import pytest
from support.pipe import REPO, TALON, Serve, make_workspace

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    root = tmp_path_factory.mktemp("lists")
    serve = Serve(root / "data").start()
    yield serve, make_workspace(root)
    serve.stop_quietly()


def talon(serve: Serve, *args: str) -> str:
    done = subprocess.run(
        [*TALON, *args, "--data-dir", str(serve.data)],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_empty_lists_say_so_and_rows_keep_their_columns(served):
    serve, ws = served
    assert talon(serve, "session", "list") == "no sessions\n"
    assert json.loads(talon(serve, "session", "list", "--json")) == []
    assert talon(serve, "approvals", "list") == "no approvals waiting\n"
    assert json.loads(talon(serve, "approvals", "list", "--json")) == []
    assert talon(serve, "mcp", "list") == (
        "no MCP servers registered (talon mcp add NAME -- CMD ARGS…)\n"
    )
    assert json.loads(talon(serve, "mcp", "list", "--json")) == []

    made = json.loads(talon(serve, "session", "create", "lists", "--workspace", str(ws), "--json"))
    sid = made["session"]["id"]
    (row,) = talon(serve, "session", "list").splitlines()
    assert row == f"{sid}  open    runs 0     agents 0   lists  {ws}"
    (listed,) = json.loads(talon(serve, "session", "list", "--json"))
    assert listed["id"] == sid and listed["label"] == "lists" and listed["runs"] == 0
