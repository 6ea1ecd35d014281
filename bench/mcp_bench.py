"""MCP gateway benchmark (issue 10): `tools/call file_read` through `talon mcp` beside the same
intent sent directly over the pipe, against one real `talon serve`.

Both sides are sequential (one call at a time) from one client process: the direct side is
`AsyncAgentClient.intent` in the same run as the gateway's; the gateway side is the official
SDK's `ClientSession.call_tool` over stdio to `python -m talon_tui.cli mcp`. The figure that
matters is the p50 the gateway adds (target: at most 2 ms). For scale, the same SDK client
calling a server whose tool does nothing (`sdk_stdio_floor`): what any stdio MCP hop costs.
Prints one JSON object.

    .venv/bin/python bench/mcp_bench.py [--n 500]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from _common import READ_POLICY, REPO, start_serve, stop_serve

FLOOR_SERVER = """
import anyio, mcp_types as types
from mcp.server.lowlevel import Server
from mcp.server.stdio import stdio_server

async def lt(ctx, p):
    return types.ListToolsResult(tools=[types.Tool(name="noop", input_schema={"type": "object"})])

async def ct(ctx, p):
    return types.CallToolResult(content=[types.TextContent(text="x")], structured_content={})

server = Server("floor", on_list_tools=lt, on_call_tool=ct)

async def main():
    async with stdio_server() as (r, w):
        await server.run(r, w, server.create_initialization_options())

anyio.run(main)
"""


async def sdk_calls(params, name: str, args: dict, n: int) -> list[float]:
    """`n` sequential tools/call with the SDK's client (after 50 to warm up)."""
    import mcp_types as types
    from mcp import ClientSession
    from mcp.client.stdio import stdio_client

    samples: list[float] = []
    with open(os.devnull, "w") as devnull:
        async with stdio_client(params, errlog=devnull) as (read, write):
            async with ClientSession(
                read, write, client_info=types.Implementation(name="mcp_bench", version="1")
            ) as session:
                await session.initialize()
                for _ in range(50):
                    await session.call_tool(name, args)
                for _ in range(n):
                    t0 = time.perf_counter()
                    result = await session.call_tool(name, args)
                    samples.append(time.perf_counter() - t0)
                    if result.is_error:
                        raise SystemExit(f"call failed: {result.content[0].text}")
    return samples


def figures(samples: list[float]) -> dict[str, float]:
    ms = sorted(s * 1000 for s in samples)
    return {
        "p50_ms": round(statistics.median(ms), 3),
        "p99_ms": round(ms[min(len(ms) - 1, int(len(ms) * 0.99))], 3),
        "mean_ms": round(statistics.fmean(ms), 3),
    }


async def bench(data: Path, workspace: Path, n: int) -> dict:
    from mcp.client.stdio import StdioServerParameters

    from talon_tui.client import AdminClient, AsyncAgentClient

    async with await AdminClient.connect(data) as admin:
        _session, key = await admin.create_session("bench", str(workspace), READ_POLICY)

    direct: list[float] = []
    agent = await AsyncAgentClient.connect(key, data_dir=data)
    run_id = await agent.begin_run("bench direct")
    for _ in range(50):  # warm up
        await agent.intent("file.read", {"path": "work/a.txt"}, run_id=run_id)
    for _ in range(n):
        t0 = time.perf_counter()
        await agent.intent("file.read", {"path": "work/a.txt"}, run_id=run_id)
        direct.append(time.perf_counter() - t0)
    await agent.end_run(run_id)
    await agent.close()

    params = StdioServerParameters(
        command=sys.executable,
        args=["-m", "talon_tui.cli", "mcp", "--data-dir", str(data)],
        env={"PYTHONPATH": str(REPO), "TALON_AGENT_KEY": key},
        cwd=str(REPO),
    )
    gateway = await sdk_calls(params, "file_read", {"path": "work/a.txt"}, n)
    floor_script = data.parent / "floor_server.py"
    floor_script.write_text(FLOOR_SERVER)
    floor = await sdk_calls(
        StdioServerParameters(command=sys.executable, args=[str(floor_script)]), "noop", {}, n
    )
    d, g = figures(direct), figures(gateway)
    return {
        "bench": "mcp_gateway",
        "n": n,
        "direct_pipe": d,
        "through_talon_mcp": g,
        "added_p50_ms": round(g["p50_ms"] - d["p50_ms"], 3),
        "added_p99_ms": round(g["p99_ms"] - d["p99_ms"], 3),
        "sdk_stdio_floor": figures(floor),
        "target_added_p50_ms": 2.0,
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=500)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="talon-mcp-bench-") as tmp:
        root = Path(tmp)
        ws = root / "ws"
        (ws / "work").mkdir(parents=True)
        (ws / "work" / "a.txt").write_text("hello from the workspace\n" * 40)
        proc = start_serve(root / "data")
        try:
            result = asyncio.run(bench(root / "data", ws, args.n))
        finally:
            stop_serve(proc)
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
