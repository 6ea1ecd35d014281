"""Upstream MCP bench (issue 10): one upstream tool (`echo` of tests/support/mcp_notes_server.py,
written with the SDK) called three ways against one real `talon serve`, in turn (so that machine
load hits all three the same way):

- `direct_sdk`: the SDK's client calling the server itself over stdio (the SDK hop alone: the
  baseline);
- `through_talon_pipe`: an `mcp.call` intent over Talon's socket (policy decision, single-use
  token, broker re-checks and pin check, the broker's own SDK client to the upstream, audit
  fsynced before the reply);
- `through_talon_mcp`: the SDK's client calling `notes__echo` on `talon mcp`, which sends that
  same intent (what an MCP client such as Claude Code sees).

Prints p50/p99 in ms of each, what Talon adds over the direct call, and the load average.

    .venv/bin/python bench/mcp_upstream_bench.py [--n 300]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from _common import REPO, start_serve, stop_serve

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


@contextlib.asynccontextmanager
async def sdk_session(params):
    from mcp import ClientSession
    from mcp.client.stdio import stdio_client

    with open(os.devnull, "w") as errlog:
        async with stdio_client(params, errlog=errlog) as (r, w), ClientSession(r, w) as s:
            await s.initialize()
            yield s


async def bench(root: Path, n: int) -> dict:
    from mcp.client.stdio import StdioServerParameters

    from talon_tui.client import AdminClient, AsyncAgentClient

    data = root / "data"
    async with await AdminClient.connect(data) as admin:
        await admin.add_mcp_server("notes", [sys.executable, str(SERVER), str(root / "up")], None)
        ws = root / "ws"
        ws.mkdir(exist_ok=True)
        _s, key = await admin.create_session("bench", str(ws), POLICY)
    load_before = os.getloadavg()[0]
    async with contextlib.AsyncExitStack() as stack:
        direct = await stack.enter_async_context(
            sdk_session(
                StdioServerParameters(command=sys.executable, args=[str(SERVER), str(root / "d")])
            )
        )
        agent = await AsyncAgentClient.connect(key, data_dir=data)
        stack.push_async_callback(agent.close)
        gateway = await stack.enter_async_context(
            sdk_session(
                StdioServerParameters(
                    command=sys.executable,
                    args=["-m", "talon_tui.cli", "mcp", "--data-dir", str(data)],
                    env={"PYTHONPATH": str(REPO), "TALON_AGENT_KEY": key},
                    cwd=str(REPO),
                )
            )
        )
        await gateway.list_tools()

        async def direct_call(i: int) -> None:
            await direct.call_tool("echo", {"text": f"hello {i}"})

        async def pipe_call(i: int) -> None:
            params = {"server": "notes", "tool": "echo", "arguments": {"text": f"hello {i}"}}
            await agent.intent("mcp.call", params)

        async def gateway_call(i: int) -> None:
            result = await gateway.call_tool("notes__echo", {"text": f"hello {i}"})
            if result.is_error:
                raise SystemExit(f"notes__echo through talon mcp failed: {result.content}")

        calls = {
            "direct_sdk": direct_call,
            "through_talon_pipe": pipe_call,
            "through_talon_mcp": gateway_call,
        }
        samples: dict[str, list[float]] = {k: [] for k in calls}
        for i in range(20):  # warm up (the broker starts the upstream on first use)
            for call in calls.values():
                await call(i)
        for i in range(n):
            for name, call in calls.items():
                t = time.perf_counter()
                await call(i)
                samples[name].append(time.perf_counter() - t)
    figures: dict[str, object] = {
        "bench": "mcp_upstream",
        "n": n,
        "cpus": os.cpu_count(),
        "loadavg_1m": {"before": round(load_before, 2), "after": round(os.getloadavg()[0], 2)},
    }
    for name, values in samples.items():
        figures[name] = {
            "p50_ms": pct(values, 0.5),
            "p99_ms": pct(values, 0.99),
            "mean_ms": round(statistics.mean(values) * 1000, 3),
        }
    d = pct(samples["direct_sdk"], 0.5)
    figures["pipe_added_p50_ms"] = round(pct(samples["through_talon_pipe"], 0.5) - d, 3)
    figures["mcp_added_p50_ms"] = round(pct(samples["through_talon_mcp"], 0.5) - d, 3)
    return figures


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=300)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="talon-mcp-up-bench-") as tmp:
        root = Path(tmp)
        proc = start_serve(root / "data")
        try:
            figures = asyncio.run(bench(root, args.n))
        finally:
            stop_serve(proc)
    print(json.dumps(figures, indent=1))


if __name__ == "__main__":
    main()
