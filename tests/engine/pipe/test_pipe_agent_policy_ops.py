"""Agent ops for MCP gateways: `policy.view` and `policy.watch` show an agent its own session's
policy and nothing else; `intent.cancel` withdraws only the caller's own waiting intent."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
from support.pipe import make_workspace

from talon_tui.client import (
    ApprovalDeniedError,
    AsyncAgentClient,
    BadRequestError,
    NotFoundError,
)
from talon_tui.engine.engine import Engine
from talon_tui.engine.pipe.server import PipeServer

POLICY = {
    "version": 1,
    "overrides": [
        {
            "tool": "file.write",
            "allow": True,
            "approval": "always",
            "constraints": {"roots": ["work"]},
        }
    ],
}
OTHER = {
    "version": 1,
    "overrides": [
        {"tool": "file.read", "allow": True, "approval": "never", "constraints": {"roots": ["x"]}}
    ],
}


async def _setup(tmp: Path):
    ws = make_workspace(tmp)
    engine = Engine(tmp / "data", approval_timeout=30)
    await engine.start()
    server = PipeServer(engine, engine.data.socket_path)
    await server.start()
    a, key_a = await engine.create_session("a", str(ws), POLICY)
    b, key_b = await engine.create_session("b", str(ws), OTHER)
    return engine, server, ws, (a.id, key_a), (b.id, key_b)


async def _teardown(engine: Engine, server: PipeServer) -> None:
    await server.stop()
    await engine.stop()


async def _wait_pending(engine: Engine, n: int = 1) -> None:
    for _ in range(200):
        if len(engine.approvals) >= n:
            return
        await asyncio.sleep(0.02)
    raise AssertionError("no approval appeared")


def test_policy_view_is_the_agents_own_session(tmp_path: Path) -> None:
    async def body() -> None:
        engine, server, _ws, (a, key_a), (b, key_b) = await _setup(tmp_path)
        try:
            agent = await AsyncAgentClient.connect(key_a, data_dir=engine.data.root)
            view = await agent.policy_view()
            assert view["session_id"] == a and view["version"] == 0
            assert view["policy"]["overrides"][0]["tool"] == "file.write"
            await engine.set_policy(a, OTHER)
            assert (await agent.policy_view())["version"] == 1
            other = await AsyncAgentClient.connect(key_b, data_dir=engine.data.root)
            assert (await other.policy_view())["session_id"] == b
            # a session_id field does not reach another session: the op takes none
            reply = await other.call("policy.view", session_id=a)
            assert reply["session_id"] == b
            await agent.close()
            await other.close()
        finally:
            await _teardown(engine, server)

    asyncio.run(body())


def test_policy_watch_hears_only_its_own_session(tmp_path: Path) -> None:
    async def body() -> None:
        engine, server, _ws, (a, key_a), (b, _key_b) = await _setup(tmp_path)
        try:
            agent = await AsyncAgentClient.connect(key_a, data_dir=engine.data.root)
            assert await agent.policy_watch() == 0
            with pytest.raises(BadRequestError):
                await agent.policy_watch()
            await engine.set_policy(b, POLICY)
            await asyncio.sleep(0.3)
            assert agent.events.empty()
            await engine.set_policy(a, OTHER)
            event = await asyncio.wait_for(agent.events.get(), 5)
            assert event == {"type": "policy.updated", "version": 1}
            await agent.close()
        finally:
            await _teardown(engine, server)

    asyncio.run(body())


def test_intent_cancel_withdraws_only_the_callers_own_intent(tmp_path: Path) -> None:
    async def body() -> None:
        engine, server, ws, (_a, key_a), _b = await _setup(tmp_path)
        try:
            agent = await AsyncAgentClient.connect(key_a, data_dir=engine.data.root)
            intruder = await AsyncAgentClient.connect(key_a, data_dir=engine.data.root)
            req_id, fut = await agent.send_intent(
                "file.write", {"path": "work/w.txt", "content": "w"}
            )
            await _wait_pending(engine)
            # the same request id on another connection (same session) withdraws nothing
            with pytest.raises(NotFoundError):
                await intruder.cancel_intent(req_id)
            assert len(engine.approvals) == 1
            [approval_id] = await agent.cancel_intent(req_id)
            with pytest.raises(ApprovalDeniedError) as err:
                await agent.intent_result(fut)
            assert "withdrawn by the agent" in err.value.message
            assert len(engine.approvals) == 0
            assert not (ws / "work" / "w.txt").exists()
            with pytest.raises(NotFoundError):
                await agent.cancel_intent(req_id)  # answered: nothing waits any more
            events = await engine.query_audit(types=["approval.decided"])
            [decided] = [e for e in events if e["data"]["approval_id"] == approval_id]
            assert decided["data"]["by"] == "agent-cancel"
            assert decided["data"]["allow"] is False
            await agent.close()
            await intruder.close()
        finally:
            await _teardown(engine, server)

    asyncio.run(body())


def test_closing_the_connection_withdraws_its_waiting_intents(tmp_path: Path) -> None:
    async def body() -> None:
        engine, server, ws, (_a, key_a), _b = await _setup(tmp_path)
        try:
            agent = await AsyncAgentClient.connect(key_a, data_dir=engine.data.root)
            await agent.send_intent("file.write", {"path": "work/c.txt", "content": "c"})
            await _wait_pending(engine)
            await agent.close()
            # wait for the outcome (up to 15 s on a loaded machine), then check it
            deadline = time.monotonic() + 15
            while time.monotonic() < deadline:
                events = await engine.query_audit(types=["approval.decided"])
                if not len(engine.approvals) and events:
                    break
                await asyncio.sleep(0.02)
            assert len(engine.approvals) == 0
            await asyncio.sleep(0.1)  # a second decision, if any, would be written by now
            events = await engine.query_audit(types=["approval.decided"])
            assert [e["data"]["by"] for e in events] == ["agent-cancel"]
            assert not (ws / "work" / "c.txt").exists()
        finally:
            await _teardown(engine, server)

    asyncio.run(body())
