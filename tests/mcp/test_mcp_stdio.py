"""`talon mcp`'s stdio on the event loop (`talon_tui/mcp/stdio.py`): real pipes and files.

The SDK-driven tests (test_mcp_gateway.py) run the gateway over the pipes `stdio_client` gives
it; these check the transport's own edges: stray output never reaches the wire, long lines,
bad UTF-8, a last line without newline, and the SDK's own streams when stdin is a file.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from support.mcp import Talon, mcp_client
from support.pipe import REPO, run

#: echoes each line it reads as {"line": ...}, after printing to stdout behind the transport
ECHO = r"""
import asyncio, os, sys
from talon_tui.mcp import stdio

stdio.MAX_LINE_BYTES = int(sys.argv[1])

async def main():
    async with stdio.event_loop_stdio() as streams:
        if streams is None:
            print("fallback", file=sys.stderr)
            return
        reader, writer = streams
        print("stray print")            # fd 1 is stderr while the transport serves
        os.write(1, b"stray write\n")
        async for line in reader:
            await writer.write(repr(line) + "\n")
            await writer.flush()
    print("after", flush=True)          # fd 1 is the wire again

asyncio.run(main())
"""


def echo(stdin: bytes, max_line: int = 1 << 20) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", ECHO, str(max_line)],
        input=stdin,
        capture_output=True,
        timeout=60,
        cwd=REPO,
    )


def test_lines_round_trip_and_stray_output_goes_to_stderr():
    done = echo(b'{"a": 1}\n\xff\xfebad utf-8\nlast without newline')
    assert done.returncode == 0, done.stderr
    lines = done.stdout.decode().splitlines()
    assert lines == [
        repr('{"a": 1}\n'),
        repr("\ufffd\ufffdbad utf-8\n"),
        repr("last without newline"),
        "after",
    ]
    assert b"stray print" in done.stderr and b"stray write" in done.stderr


def test_an_overlong_line_is_dropped_and_reading_goes_on():
    done = echo(b"x" * 5000 + b"\n" + b"y" * 300 + b"\n" + b'{"ok": 1}\n', max_line=256)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.decode().splitlines()
    from talon_tui.mcp.stdio import DROPPED

    assert lines == [repr(DROPPED), repr(DROPPED), repr('{"ok": 1}\n'), "after"]


def test_files_get_the_sdks_own_streams(tmp_path: Path):
    stdin = tmp_path / "in"
    stdin.write_text("")
    with stdin.open("rb") as fh:
        done = subprocess.run(
            [sys.executable, "-c", ECHO, "100"],
            stdin=fh,
            capture_output=True,
            timeout=60,
            cwd=REPO,
        )
    assert done.returncode == 0 and b"fallback" in done.stderr


def test_the_gateway_answers_from_a_request_file_through_the_sdks_streams(tmp_path: Path):
    """stdin a regular file, stdout a file: the gateway falls back to the SDK's stdio and
    still answers. (Only `initialize`: at the file's end the SDK stops serving, and a request
    after it may go unanswered, as with the SDK's own servers.)"""
    talon = Talon(tmp_path)  # an engine that is not started
    initialize = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {
            "protocolVersion": "2025-06-18",
            "capabilities": {},
            "clientInfo": {"name": "file", "version": "1"},
        },
    }
    requests = tmp_path / "requests.jsonl"
    requests.write_text(json.dumps(initialize) + "\n")
    out = tmp_path / "out.jsonl"
    with requests.open("rb") as fin, out.open("wb") as fout:
        done = subprocess.run(
            [sys.executable, "-m", "talon_tui.cli", "mcp", "--data-dir", str(talon.data)],
            stdin=fin,
            stdout=fout,
            stderr=subprocess.PIPE,
            env={"PYTHONPATH": str(REPO), "TALON_AGENT_KEY": "k", "HOME": str(tmp_path)},
            cwd=REPO,
            timeout=60,
        )
    assert done.returncode == 0, done.stderr
    (reply,) = map(json.loads, out.read_text().splitlines())
    assert reply["id"] == 1 and reply["result"]["serverInfo"]["name"] == "talon"


def _children() -> set[int]:
    found: set[int] = set()
    for task in os.listdir(f"/proc/{os.getpid()}/task"):
        with open(f"/proc/{os.getpid()}/task/{task}/children") as fh:
            found.update(int(p) for p in fh.read().split())
    return found


def test_the_gateway_serves_the_sdk_client_without_worker_threads(talon: Talon) -> None:
    """Over the pipes the SDK's client gives it, the gateway reads and writes on its event
    loop: after several calls it still runs one thread (the SDK's own stdio would have
    started worker threads for each line read and each write)."""

    async def body() -> list[str]:
        before = _children()
        async with mcp_client(talon) as session:
            (pid,) = _children() - before
            for _ in range(5):
                result = await session.call_tool("file_read", {"path": "work/a.txt"})
                assert not result.is_error
                assert result.content[0].text == "hello from the workspace\n"
            return os.listdir(f"/proc/{pid}/task")

    threads = run(body())
    assert len(threads) == 1, threads
