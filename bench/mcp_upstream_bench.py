"""Upstream MCP bench (issue 10): one upstream tool (`echo` of tests/support/mcp_notes_server.py,
written with the SDK) called directly with the SDK's client, beside the same tool called
through Talon as an `mcp.call` intent over a real `talon serve` and its socket (policy
decision, single-use token, broker re-checks and pin check, audit fsynced before the reply).

Prints p50/p99 in ms of both and the difference, as JSON.

    .venv/bin/python bench/mcp_upstream_bench.py [--n 300]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import select
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
SERVER = REPO / "tests" / "support" / "mcp_notes_server.py"
POLICY = {
    "version": 1,
    "overrides": [
        {
            "tool": "mcp.call",
            "approval": "never",
            "constraints": {"servers": ["notes"], "tools": ["echo"]},
        }
    ],
}


def pct(samples: list[float], q: float) -> float:
    s = sorted(samples)
    return round(s[min(len(s) - 1, int(q * len(s)))] * 1000, 3)


async def direct(n: int, state: Path) -> list[float]:
    from mcp import ClientSession
    from mcp.client.stdio import StdioServerParameters, stdio_client

    params = StdioServerParameters(command=sys.executable, args=[str(SERVER), str(state)])
    with open(os.devnull, "w") as errlog:
        async with stdio_client(params, errlog=errlog) as (r, w), ClientSession(r, w) as s:
            await s.initialize()
            await s.call_tool("echo", {"text": "warm"})
            out = []
            for i in range(n):
                t = time.perf_counter()
                await s.call_tool("echo", {"text": f"hello {i}"})
                out.append(time.perf_counter() - t)
            return out


def through_talon(n: int, root: Path) -> list[float]:
    from talon_tui.client import AdminClient, AgentClient

    data = root / "data"
    env = {**os.environ, "TALON_PIPE_RATE": "1000000", "TALON_PIPE_BURST": "1000000"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "talon_tui.cli", "serve", "--data-dir", str(data)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
        cwd=REPO,
    )
    try:
        ready, _, _ = select.select([proc.stdout], [], [], 30)
        if not ready or b"listening" not in proc.stdout.readline():
            raise SystemExit(f"talon serve did not start: {proc.stderr.read().decode()}")

        async def setup() -> str:
            async with await AdminClient.connect(data) as admin:
                await admin.add_mcp_server(
                    "notes", [sys.executable, str(SERVER), str(root / "up")], None
                )
                ws = root / "ws"
                ws.mkdir(exist_ok=True)
                _s, key = await admin.create_session("bench", str(ws), POLICY)
                return key

        key = asyncio.run(setup())
        params = {"server": "notes", "tool": "echo", "arguments": {"text": "warm"}}
        out = []
        with AgentClient(key, data_dir=data, timeout=60) as agent:
            agent.intent("mcp.call", params)
            for i in range(n):
                params = {"server": "notes", "tool": "echo", "arguments": {"text": f"hello {i}"}}
                t = time.perf_counter()
                agent.intent("mcp.call", params)
                out.append(time.perf_counter() - t)
        return out
    finally:
        proc.terminate()
        proc.wait(30)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=300)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        d = asyncio.run(direct(args.n, root / "direct"))
        t = through_talon(args.n, root)
    figures = {
        "n": args.n,
        "direct_p50_ms": pct(d, 0.5),
        "direct_p99_ms": pct(d, 0.99),
        "talon_p50_ms": pct(t, 0.5),
        "talon_p99_ms": pct(t, 0.99),
        "direct_mean_ms": round(statistics.mean(d) * 1000, 3),
        "talon_mean_ms": round(statistics.mean(t) * 1000, 3),
    }
    figures["added_p50_ms"] = round(figures["talon_p50_ms"] - figures["direct_p50_ms"], 3)
    print(json.dumps({"bench": "mcp_upstream", **figures}, indent=1))


if __name__ == "__main__":
    main()
