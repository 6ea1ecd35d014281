"""A lost engine connection is reported once, through the call that hit it or `error`: the
futures of requests nobody waits on any more must not make asyncio print "Future exception was
never retrieved" on the operator's terminal (it did, after `talon audit tail --follow` said the
engine went away)."""

from __future__ import annotations

import asyncio
import gc
import json

import pytest

from talon_tui.client.agent import AsyncConnection, ConnectionClosedError


async def _engine_that_dies_after_hello(path):
    async def serve(reader, writer):
        hello = json.loads(await reader.readline())
        writer.write(json.dumps({"id": hello["id"], "ok": True}).encode() + b"\n")
        await writer.drain()
        await reader.readline()  # the next request: the engine goes away without answering
        writer.close()

    return await asyncio.start_unix_server(serve, path=str(path))


def test_abandoned_request_on_a_lost_connection_prints_nothing(tmp_path):
    sock_dir = tmp_path / "run"
    sock_dir.mkdir(mode=0o700)
    path = sock_dir / "talon.sock"
    reported: list[dict] = []

    async def main():
        asyncio.get_running_loop().set_exception_handler(lambda _loop, ctx: reported.append(ctx))
        server = await _engine_that_dies_after_hello(path)
        conn = AsyncConnection(path)
        await conn.open(auth={})
        _req, fut = await conn.send("engine.status")
        for _ in range(200):
            if conn.closed:
                break
            await asyncio.sleep(0.01)
        assert conn.closed and isinstance(conn.error, ConnectionClosedError)
        assert fut.done() and isinstance(fut.exception(), ConnectionClosedError)
        # a second request, sent and then dropped unread, as a cancelled caller would
        with pytest.raises(ConnectionClosedError):
            await conn.send("engine.status")
        await conn.close()
        server.close()
        await server.wait_closed()

    async def abandoned():
        asyncio.get_running_loop().set_exception_handler(lambda _loop, ctx: reported.append(ctx))
        server = await _engine_that_dies_after_hello(path)
        conn = AsyncConnection(path)
        await conn.open(auth={})
        await conn.send("engine.status")  # the future is dropped here, never awaited
        for _ in range(200):
            if conn.closed:
                break
            await asyncio.sleep(0.01)
        assert conn.closed
        await conn.close()
        server.close()
        await server.wait_closed()
        gc.collect()
        await asyncio.sleep(0)

    asyncio.run(main())
    path.unlink(missing_ok=True)
    asyncio.run(abandoned())
    gc.collect()
    assert not [c for c in reported if "never retrieved" in str(c.get("message", ""))], reported
