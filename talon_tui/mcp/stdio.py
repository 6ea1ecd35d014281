"""Stdin and stdout for the SDK's `stdio_server`, read and written on the event loop.

The SDK's stdio transport wraps the standard streams in `anyio.wrap_file`: every line read,
every write and every flush is a hop to a worker thread and back, four per tool call, each a
thread wake-up and a GIL hand-over. Given explicit streams, `mcp.server.stdio.stdio_server`
keeps all the rest (JSON-RPC parsing and serialization, its task group); `event_loop_stdio`
gives it those streams on asyncio's own pipe transports instead, with no thread.

Like the SDK it moves fd 0 and fd 1 away while it serves (fd 0 then reads /dev/null, fd 1 goes
to stderr) and serves the wire from private duplicates, so nothing else in the process can
read a request or write a stray byte into the protocol. It is used only when both are pipes or
sockets (what MCP clients give a server); otherwise (a terminal, a file) it yields None and the
SDK's own streams serve.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import stat
from collections.abc import AsyncIterator

#: a request line longer than this is dropped (the engine's pipe takes 1 MiB lines anyway)
MAX_LINE_BYTES = 64 << 20
DROPPED = '{"jsonrpc": "2.0", "error": "a line over 64 MiB was dropped by talon mcp"}\n'


class LineReader:
    """`async for line in reader`: the lines of a pipe as text (UTF-8, bad bytes replaced, as
    the SDK reads them), the last one even without its newline."""

    def __init__(self, reader: asyncio.StreamReader) -> None:
        self._reader = reader

    def __aiter__(self) -> LineReader:
        return self

    async def __anext__(self) -> str:
        try:
            raw = await self._reader.readuntil(b"\n")
        except asyncio.IncompleteReadError as exc:
            if not exc.partial:
                raise StopAsyncIteration from None
            raw = exc.partial
        except asyncio.LimitOverrunError as exc:
            await self._drop_line(exc.consumed)
            return DROPPED  # fails the SDK's JSON-RPC parsing, which reports it
        return raw.decode("utf-8", errors="replace")

    async def _drop_line(self, consumed: int) -> None:
        while True:
            await self._reader.readexactly(consumed)
            try:
                await self._reader.readuntil(b"\n")
                return
            except asyncio.IncompleteReadError:
                return
            except asyncio.LimitOverrunError as exc:
                consumed = exc.consumed


class LineWriter:
    """`await write(text)` then `await flush()`, as the SDK writes each message."""

    def __init__(self, writer: asyncio.StreamWriter) -> None:
        self._writer = writer

    async def write(self, text: str) -> int:
        self._writer.write(text.encode("utf-8"))
        return len(text)

    async def flush(self) -> None:
        await self._writer.drain()


def _is_pipe_or_socket(fd: int) -> bool:
    try:
        mode = os.fstat(fd).st_mode
    except OSError:
        return False
    return stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode)


@contextlib.asynccontextmanager
async def event_loop_stdio() -> AsyncIterator[tuple[LineReader, LineWriter] | None]:
    """The process's stdin and stdout as the SDK's stdio streams, or None when they are not
    pipes or sockets (then let `stdio_server()` open its own)."""
    if not (_is_pipe_or_socket(0) and _is_pipe_or_socket(1)):
        yield None
        return
    loop = asyncio.get_running_loop()
    wire_in = fcntl.fcntl(0, fcntl.F_DUPFD_CLOEXEC, 3)
    wire_out = fcntl.fcntl(1, fcntl.F_DUPFD_CLOEXEC, 3)
    saved_in = fcntl.fcntl(0, fcntl.F_DUPFD_CLOEXEC, 3)
    saved_out = fcntl.fcntl(1, fcntl.F_DUPFD_CLOEXEC, 3)
    null = os.open(os.devnull, os.O_RDWR | os.O_CLOEXEC)
    try:
        os.dup2(null, 0)
        try:
            os.dup2(2, 1)
        except OSError:  # no stderr: stray output goes nowhere rather than onto the wire
            os.dup2(null, 1)
    finally:
        os.close(null)
    write_transport: asyncio.BaseTransport | None = None
    read_transport: asyncio.BaseTransport | None = None
    try:
        reader = asyncio.StreamReader(limit=MAX_LINE_BYTES)
        read_transport, _ = await loop.connect_read_pipe(
            lambda: asyncio.StreamReaderProtocol(reader), os.fdopen(wire_in, "rb", buffering=0)
        )
        write_transport, protocol = await loop.connect_write_pipe(
            lambda: asyncio.StreamReaderProtocol(asyncio.StreamReader()),
            os.fdopen(wire_out, "wb", buffering=0),
        )
        writer = asyncio.StreamWriter(write_transport, protocol, None, loop)  # type: ignore[arg-type]
        yield LineReader(reader), LineWriter(writer)
    finally:
        for transport in (read_transport, write_transport):
            if transport is not None:
                transport.close()
        os.dup2(saved_in, 0)
        os.dup2(saved_out, 1)
        os.close(saved_in)
        os.close(saved_out)
