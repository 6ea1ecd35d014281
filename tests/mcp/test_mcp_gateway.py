"""`talon mcp` end to end: the SDK's own client spawns the gateway against a real `talon serve`."""

from __future__ import annotations

import anyio
import pytest
from mcp import ClientSession
from support.mcp import Notes, Talon, mcp_client
from support.pipe import run

from talon_tui.client import AdminClient

pytestmark = pytest.mark.slow


async def _names(session: ClientSession) -> list[str]:
    return [t.name for t in (await session.list_tools()).tools]


def test_list_shows_what_the_policy_can_allow(talon: Talon) -> None:
    async def body() -> None:
        async with mcp_client(talon) as session:
            tools = {t.name: t for t in (await session.list_tools()).tools}
        assert sorted(tools) == ["file_read", "file_write"]
        assert "roots: work" in tools["file_read"].description
        assert "approval: never" in tools["file_read"].description
        assert "an operator approves each call" in tools["file_write"].description
        assert tools["file_read"].input_schema["required"] == ["path"]
        assert tools["file_read"].input_schema["additionalProperties"] is False

    run(body())


def test_allowed_call_returns_text_and_structured(talon: Talon) -> None:
    async def body() -> None:
        async with mcp_client(talon) as session:
            result = await session.call_tool("file_read", {"path": "work/a.txt"})
        assert not result.is_error
        assert result.content[0].text == "hello from the workspace\n"
        assert result.structured_content["sha256"].startswith("sha256:")

    run(body())


def test_denied_call_is_an_error_with_reason_fix_and_seq(talon: Talon) -> None:
    async def body() -> None:
        async with mcp_client(talon) as session:
            result = await session.call_tool("file_read", {"path": "other/b.txt"})
        assert result.is_error
        text = result.content[0].text
        assert "not for agents" not in text
        assert "POLICY_DENIED" in text and "other/b.txt" in text
        assert "Suggested fix: ask the operator to add an override allowing file.read" in text
        seq = result.structured_content["audit_seq"]
        assert f"Audit seq: {seq}" in text
        async with await AdminClient.connect(talon.data) as admin:
            events = await admin.query_audit(from_seq=seq, limit=1)
        assert events[0]["type"] == "policy.decision"
        assert events[0]["data"]["decision"] == "DENY"

    run(body())


def test_unknown_tool_and_bad_arguments_are_invalid_params(talon: Talon) -> None:
    from mcp.shared.exceptions import MCPError

    async def body() -> None:
        async with mcp_client(talon) as session:
            for name, args in (
                ("rm_rf", {}),
                ("file_read", {}),
                ("file_read", {"path": 3}),
                ("file_read", {"path": "work/a.txt", "mode": "x"}),
            ):
                with pytest.raises(MCPError) as err:
                    await session.call_tool(name, args)
                assert err.value.code == -32602, (name, args)

    run(body())


def test_approval_looking_arguments_are_ignored(talon: Talon) -> None:
    """`approved: true` in the arguments neither approves nor fails: the call still waits for
    the operator (denied here), and the intent carries only the tool's own params."""

    async def body() -> None:
        async with mcp_client(talon) as session, anyio.create_task_group() as tg:
            out: dict = {}

            async def call() -> None:
                out["r"] = await session.call_tool(
                    "file_write",
                    {"path": "work/x.txt", "content": "x", "approved": True, "approval": "never"},
                )

            tg.start_soon(call)
            approval = await _wait_approval(talon)
            assert approval.params == {"path": "work/x.txt", "content": "x"}
            async with await AdminClient.connect(talon.data) as admin:
                await admin.decide_approval(approval.approval_id, False)
        assert out["r"].is_error and "APPROVAL_DENIED" in out["r"].content[0].text
        assert not (talon.workspace / "work" / "x.txt").exists()

    run(body())


async def _approvals(talon: Talon) -> list:
    """The approvals waiting in this test's session (other tests' sessions share the engine)."""
    async with await AdminClient.connect(talon.data) as admin:
        return [a for a in await admin.list_approvals() if a.session_id == talon.session_id]


async def _wait_approval(talon: Talon, timeout: float = 20.0):
    with anyio.fail_after(timeout):
        while True:
            waiting = await _approvals(talon)
            if waiting:
                return waiting[0]
            await anyio.sleep(0.1)


def test_call_waits_for_approval_with_progress(talon: Talon) -> None:
    async def body() -> None:
        progress: list[float] = []

        async def on_progress(p: float, total: float | None, message: str | None) -> None:
            progress.append(p)

        async with mcp_client(talon, name="Claude Desktop") as session:
            async with anyio.create_task_group() as tg:
                out: dict = {}

                async def call() -> None:
                    out["r"] = await session.call_tool(
                        "file_write",
                        {"path": "work/new.txt", "content": "approved"},
                        progress_callback=on_progress,
                    )

                tg.start_soon(call)
                approval = await _wait_approval(talon)
                with anyio.fail_after(20):  # progress ticks (every 0.2 s) while it waits
                    while not progress:
                        await anyio.sleep(0.05)
                assert not (talon.workspace / "work" / "new.txt").exists()
                async with await AdminClient.connect(talon.data) as admin:
                    await admin.decide_approval(approval.approval_id, True)
            assert not out["r"].is_error, out["r"].content[0].text
        assert (talon.workspace / "work" / "new.txt").read_text() == "approved"
        assert progress, "no notifications/progress while waiting"
        async with await AdminClient.connect(talon.data) as admin:
            runs = await admin.list_runs(talon.session_id)
            [ran] = [r for r in runs if r.run_id == approval.run_id]
            started = await admin.query_audit(run_id=ran.run_id, types=["run.started"])
        assert "Claude Desktop 9.9" in started[0]["data"]["content"]

    run(body())


def test_cancelled_call_leaves_the_approval_queue(talon: Talon) -> None:
    async def body() -> None:
        async with mcp_client(talon) as session:
            with anyio.CancelScope() as scope:
                async with anyio.create_task_group() as tg:

                    async def call() -> None:
                        await session.call_tool(
                            "file_write", {"path": "work/never.txt", "content": "no"}
                        )

                    tg.start_soon(call)
                    approval = await _wait_approval(talon)
                    scope.cancel()
            with anyio.fail_after(20):
                while await _approvals(talon):
                    await anyio.sleep(0.1)
            # the gateway still serves after a cancellation
            result = await session.call_tool("file_read", {"path": "work/a.txt"})
            assert not result.is_error
        assert not (talon.workspace / "work" / "never.txt").exists()
        async with await AdminClient.connect(talon.data) as admin:
            decided = await admin.query_audit(types=["approval.decided"])
        [d] = [e for e in decided if e["data"]["approval_id"] == approval.approval_id]
        assert d["data"]["by"] == "agent-cancel" and d["data"]["allow"] is False

    run(body())


def test_policy_change_sends_list_changed(talon: Talon) -> None:
    async def body() -> None:
        notes = Notes()
        async with mcp_client(talon, notes) as session:
            assert await _names(session) == ["file_read", "file_write"]
            policy = {
                "version": 1,
                "overrides": [
                    {
                        "tool": "shell.exec",
                        "allow": True,
                        "approval": "always",
                        "constraints": {"commands": ["/bin/echo"]},
                    }
                ],
            }
            async with await AdminClient.connect(talon.data) as admin:
                await admin.set_policy(talon.session_id, policy)
            with anyio.fail_after(20):
                await notes.changed.wait()
            tools = {t.name: t for t in (await session.list_tools()).tools}
            assert sorted(tools) == ["shell_exec"]
            assert "commands: /bin/echo" in tools["shell_exec"].description
            # the file tools are gone from the list, and calling one is refused by the engine
            result = await session.call_tool("file_read", {"path": "work/a.txt"})
            assert result.is_error and "POLICY_DENIED" in result.content[0].text

    run(body())


@pytest.mark.own_engine
def test_engine_down_fails_closed_and_recovers(talon: Talon) -> None:
    async def body() -> None:
        notes = Notes()
        async with mcp_client(talon, notes) as session:
            assert not (await session.call_tool("file_read", {"path": "work/a.txt"})).is_error
            talon.serve.terminate()
            for _ in range(2):
                result = await session.call_tool("file_read", {"path": "work/a.txt"})
                assert result.is_error
                assert "unreachable" in result.content[0].text
                assert "fail closed" in result.content[0].text
            talon.restart()
            texts = []
            with anyio.move_on_after(30):
                while True:
                    result = await session.call_tool("file_read", {"path": "work/a.txt"})
                    if not result.is_error:
                        break
                    texts.append(result.content[0].text)
                    await anyio.sleep(0.2)
            assert not result.is_error, texts[-3:]
            assert result.content[0].text == "hello from the workspace\n"
        talon.serve.stop_quietly()

    run(body())


@pytest.mark.approval_timeout("1")
def test_approval_timeout_is_an_error(talon: Talon) -> None:
    async def body() -> None:
        async with mcp_client(talon) as session:
            result = await session.call_tool("file_write", {"path": "work/t.txt", "content": "t"})
        assert result.is_error
        assert "APPROVAL_TIMEOUT" in result.content[0].text
        assert not (talon.workspace / "work" / "t.txt").exists()

    run(body())


def test_the_connection_is_one_run_ended_when_the_client_leaves(talon: Talon) -> None:
    async def body() -> None:
        async with mcp_client(talon, name="Cursor") as session:
            for _ in range(3):
                assert not (await session.call_tool("file_read", {"path": "work/a.txt"})).is_error
            await session.call_tool("file_read", {"path": "other/b.txt"})
        with anyio.fail_after(20):
            while True:
                async with await AdminClient.connect(talon.data) as admin:
                    runs = await admin.list_runs(talon.session_id)
                if runs and runs[0].status != "running":
                    break
                await anyio.sleep(0.1)
        [only] = runs
        assert only.steps == 4 and only.denied == 1
        assert only.content == "MCP client Cursor 9.9 through talon mcp"
        assert only.status == "ok"

    run(body())


@pytest.mark.own_engine
def test_engine_down_at_start_then_up(talon: Talon) -> None:
    async def body() -> None:
        talon.serve.terminate()
        notes = Notes()
        async with mcp_client(talon, notes) as session:
            assert await _names(session) == []
            result = await session.call_tool("file_read", {"path": "work/a.txt"})
            assert result.is_error and "unreachable" in result.content[0].text
            talon.restart()
            with anyio.fail_after(30):
                await notes.changed.wait()  # reconnected by itself: the list grew
            assert await _names(session) == ["file_read", "file_write"]
            result = await session.call_tool("file_read", {"path": "work/a.txt"})
            assert not result.is_error

    run(body())
