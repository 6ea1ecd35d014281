"""Large agent input never cuts the operator's admin connections (issue 15.2).

Against a real `talon serve`: an agent sends a param of about 1 MiB that needs approval; the
CLI's `approvals list` and `audit tail` still work, the event subscription keeps delivering,
and the operator reads the full value through the paged ops. The bounds themselves
(engine/frames.py) are tested directly with hostile shapes, and the clients with a real socket
that misbehaves: an oversize line is a clear error, and a stream never ends quietly.
"""

from __future__ import annotations

import asyncio
import json

import pytest
from support.admin_link import BIG, WRITE_APPROVAL, talon
from support.pipe import Serve, make_workspace, new_session

from talon_tui.client import (
    AdminClient,
    ApprovalDeniedError,
    AsyncAgentClient,
    ConnectionClosedError,
    FrameTooLargeError,
)
from talon_tui.engine.core import frames


@pytest.fixture
def serve(tmp_path):
    server = Serve(tmp_path / "data").start()
    yield server
    server.stop_quietly()


async def wait_for(predicate, timeout: float = 30.0) -> None:
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.02)


def audit_types(received) -> list[str]:
    return [m.payload.get("type") for m in received if m.kind == "audit"]


def test_a_megabyte_param_leaves_every_admin_path_readable(serve, tmp_path):
    ws = make_workspace(tmp_path)

    async def main() -> None:
        _sid, key = await new_session(serve, ws, WRITE_APPROVAL)
        admin = await AdminClient.connect(serve.data)
        head = (await admin.status()).audit_head_seq
        received = []
        stream_error: list[BaseException] = []

        async def consume() -> None:
            try:
                async for msg in admin.subscribe(from_seq=head + 1):
                    received.append(msg)
            except ConnectionClosedError as exc:
                stream_error.append(exc)

        consumer = asyncio.ensure_future(consume())
        agent = await AsyncAgentClient.connect(key, socket_path=serve.socket_path)
        waiting = asyncio.ensure_future(
            agent.intent("file.write", {"path": "work/big.txt", "content": BIG})
        )
        await wait_for(lambda: "approval.requested" in audit_types(received) or stream_error)
        assert not stream_error, stream_error

        # the CLI, each on its own connection
        listed = await asyncio.to_thread(talon, serve.data, "approvals", "list")
        assert listed.returncode == 0, listed.stderr[-2000:]
        assert "file.write" in listed.stdout and "cut" in listed.stdout
        assert len(listed.stdout) < 64 * 1024
        as_json = await asyncio.to_thread(talon, serve.data, "approvals", "list", "--json")
        assert as_json.returncode == 0, as_json.stderr[-2000:]
        (shown,) = json.loads(as_json.stdout)
        assert shown["cut"]["params"]["bytes"] > len(BIG)
        assert shown["cut"]["params"]["strings"] == 1
        tail = await asyncio.to_thread(talon, serve.data, "audit", "tail", "--lines", "20")
        assert tail.returncode == 0, tail.stderr[-2000:]
        assert "approval.requested" in tail.stdout

        # the same admin connection still answers; the approval is a preview with a marker
        (approval,) = await admin.list_approvals()
        assert approval.cut is not None and approval.cut["params"].bytes > len(BIG)
        assert len(approval.params["content"]) <= frames.PREVIEW_STRING_CHARS
        assert approval.params["path"] == "work/big.txt"

        # the full value, through the paged ops
        full = await admin.get_approval(approval.approval_id)
        assert full.params["content"] == BIG and full.cut is None
        received_event = next(
            m.payload
            for m in received
            if m.kind == "audit" and m.payload["type"] == "policy.intent.received"
        )
        assert "data" in received_event["cut"]
        event = await admin.get_audit_event(received_event["seq"])
        assert event["data"]["params"]["content"] == BIG
        queried = await admin.query_audit(types=["approval.requested"], from_seq=head + 1)
        assert queried[0]["cut"]["data"]["bytes"] > len(BIG)

        # later events still arrive on the subscription
        await admin.decide_approval(approval.approval_id, allow=False)
        with pytest.raises(ApprovalDeniedError):
            await waiting
        await wait_for(lambda: "approval.decided" in audit_types(received) or stream_error)
        assert not stream_error, stream_error

        # the other admin ops that carry agent data answer too, with markers
        (run,) = [r for r in await admin.list_runs() if r.run_id == approval.run_id]
        replayed = await admin.replay(run.run_id)
        (step,) = [s for s in replayed.steps if s.type == "policy.intent.received"]
        assert step.cut is not None and step.cut["params"].bytes > len(BIG)
        changes = await admin.simulate(_sid, {"version": 1, "overrides": []})
        assert changes and all(c.cut is not None for c in changes)
        await agent.close()
        consumer.cancel()
        await admin.close()

    asyncio.run(main())
    assert not (tmp_path / "ws" / "work" / "big.txt").exists()


# --------------------------------------------------------------------------- the bounds


@pytest.mark.parametrize(
    "value",
    [
        {"content": "x" * 2_000_000},
        {"k" * 500_000: 1, "path": "p"},
        {str(i): "v" * 100 for i in range(50_000)},
        {"argv": ["a" * 50] * 100_000},
        {"deep": json.loads("[" * 60 + json.dumps("x" * 20_000) + "]" * 60)},
        {"ctl": "\x01" * 300_000},
        "\x1b" * 100_000,
    ],
    ids=["long-string", "long-key", "many-keys", "long-list", "deep", "escapes", "bare-string"],
)
def test_a_preview_fits_its_budget_and_says_what_is_missing(value):
    short, marker = frames.preview(value)
    assert len(frames.dumps(short)) <= frames.PREVIEW_BYTES
    assert marker is not None and marker["bytes"] == len(frames.dumps(value))
    assert marker["strings"] + marker["items"] > 0
    assert type(short) is type(value)


def test_small_values_are_untouched():
    value = {"path": "work/a.txt", "content": "hello"}
    assert frames.preview(value) == (value, None)
    approval = {"approval_id": "apr_1", "params": value, "reason": "r"}
    assert frames.approval_view(approval) is approval


def test_an_oversize_admin_reply_becomes_a_too_large_error():
    reply = {"id": 7, "ok": True, "policy": {"x": "y" * (frames.MAX_LINE_BYTES + 1)}}
    fitted = frames.fit_reply(reply, "policy.get")
    assert fitted["id"] == 7 and fitted["ok"] is False
    assert fitted["error"]["code"] == "TOO_LARGE"
    assert len(frames.dumps(fitted)) < 1024


def test_pages_are_bounded_and_join_to_the_value():
    value = {"content": "\x01" * 300_000}
    text = frames.json_text(value)
    pages = []
    offset = 0
    while offset < len(text):
        got = frames.page(value, offset, frames.MAX_PAGE_CHARS)
        assert len(frames.dumps(got)) <= frames.LIST_BUDGET_BYTES
        pages.append(got["json"])
        offset += len(got["json"])
    assert json.loads("".join(pages)) == value


# --------------------------------------------------------------------------- the clients


class MisbehavingEngine:
    """A real Unix-socket server that answers hello, then answers the next request with what
    the test says and closes."""

    def __init__(self, path, answer: bytes) -> None:
        self.path = path
        self.answer = answer
        self.server: asyncio.AbstractServer | None = None

    async def _serve(self, reader, writer) -> None:
        await reader.readline()
        writer.write(b'{"id":1,"ok":true,"role":"admin"}\n')
        await reader.readline()  # the next request (a call or events.subscribe)
        writer.write(self.answer)
        await writer.drain()
        writer.close()

    async def __aenter__(self):
        self.server = await asyncio.start_unix_server(self._serve, path=str(self.path))
        return self

    async def __aexit__(self, *exc):
        self.server.close()


def test_an_oversize_line_is_a_clear_error_not_a_quiet_close(tmp_path):
    long_line = b'{"id":2,"ok":true,"x":"' + b"y" * frames.MAX_LINE_BYTES + b'"}\n'

    async def main() -> None:
        sock = tmp_path / "s.sock"
        async with MisbehavingEngine(sock, long_line):
            admin = await AdminClient.connect(tmp_path, socket_path=sock, admin_token="t")
            with pytest.raises(FrameTooLargeError, match="longer than 1048576 bytes"):
                await admin.call("status")
            assert not admin.connected
            await admin.close()

    asyncio.run(main())


def test_a_subscription_that_loses_its_engine_raises(tmp_path):
    async def main() -> None:
        sock = tmp_path / "s.sock"
        event = (
            b'{"id":2,"ok":true,"subscribed":true}\n'
            b'{"event":{"kind":"agent","payload":{"action":"connected"}}}\n'
        )
        async with MisbehavingEngine(sock, event):
            admin = await AdminClient.connect(tmp_path, socket_path=sock, admin_token="t")
            got = []
            with pytest.raises(ConnectionClosedError, match="closed the connection"):
                async for msg in admin.subscribe():
                    got.append(msg.kind)
            assert got == ["agent"]
            await admin.close()

    asyncio.run(main())


def test_threads_saving_one_private_file_never_collide(tmp_path):
    """Concurrent admin queries each save the audit index from a pool thread; one temp name
    per process made one thread's rename fail with FileNotFoundError (an INTERNAL reply)."""
    from concurrent.futures import ThreadPoolExecutor

    from talon_tui.engine.core.paths import write_private

    target = tmp_path / "index.bin"

    def save(i: int) -> None:
        for _ in range(50):
            write_private(target, b"x" * (1000 + i))

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(save, range(8)))
    assert len(target.read_bytes()) in range(1000, 1008)
    assert [p.name for p in tmp_path.iterdir()] == ["index.bin"]
