"""A session too big for one frame, replayed by an admin attached to a real `talon serve`
(issue 16): `session.timeline` pages its markers (`next_seq`) and `replay` pages its steps
(`offset`, `more`) instead of answering TOO_LARGE, and the pages put together are exactly what
the engine holds."""

from __future__ import annotations

import asyncio
import json

import pytest
from support.pipe import Serve, make_workspace, new_session

from talon_tui.client import AdminClient
from talon_tui.client.agent import AsyncAgentClient
from talon_tui.engine.audit.session_replay import session_timeline
from talon_tui.engine.core.frames import MAX_LINE_BYTES
from talon_tui.engine.errors import TalonError

INTENTS = 700
# a long path (the marker's target) and content (the replay step's params): ~2.5 KB an intent
PATH = "work/" + "/".join(c * 200 for c in "abcd")
CONTENT = "x" * 1200


@pytest.fixture(scope="module")
def big(tmp_path_factory):
    root = tmp_path_factory.mktemp("paging")
    serve = Serve(root / "data").start()
    try:
        sid, key = asyncio.run(new_session(serve, make_workspace(root)))
        run_id = asyncio.run(record(serve, key))
        yield serve, sid, run_id
    finally:
        serve.stop_quietly()


async def record(serve: Serve, key: str) -> str:
    """One run of INTENTS denied writes (no override allows file.write)."""
    async with await AsyncAgentClient.connect(key, data_dir=serve.data) as agent:
        run_id = await agent.begin_run("a big run")

        async def one(i: int) -> None:
            params = {"path": f"{PATH}/{i}.txt", "content": CONTENT}
            with pytest.raises(TalonError):
                await agent.intent("file.write", params, run_id=run_id)

        for start in range(0, INTENTS, 50):
            await asyncio.gather(*(one(i) for i in range(start, start + 50)))
        await agent.end_run(run_id)
    return run_id


def test_session_timeline_pages_instead_of_too_large(big):
    serve, sid, _run_id = big
    local = session_timeline(serve.data / "audit", sid, max_markers=50_000)
    whole = local.model_dump()
    assert len(json.dumps(whole)) > MAX_LINE_BYTES  # one reply could not carry it
    denials = [m.seq for m in local.markers if m.kind == "denial"]
    assert len(denials) == INTENTS and local.next_seq is None

    async def read() -> tuple[int, list[dict]]:
        async with await AdminClient.connect(serve.data) as admin:
            first = await admin.session_timeline(sid, max_markers=50_000)
            assert first.next_seq is not None and len(first.markers) < len(local.markers)
            assert first.run_count == 1 and first.counts["denial"] == INTENTS
            markers = [m.model_dump() for m in first.markers]
            page, pages = first, 1
            while page.next_seq is not None:
                page = await admin.session_timeline(
                    sid, from_seq=page.next_seq, max_markers=50_000, summary=False
                )
                markers.extend(m.model_dump() for m in page.markers)
                pages += 1
            # the last denial is one jump away, and reads as the local engine has it
            last = await admin.session_jump(sid, "denial", 10**9, -1)
            assert last == denials[-1]
            return pages, markers

    pages, markers = asyncio.run(read())
    assert pages >= 2
    assert markers == [m.model_dump() for m in local.markers]


def test_replay_pages_its_steps(big):
    serve, _sid, run_id = big

    async def read():
        async with await AdminClient.connect(serve.data) as admin:
            raw = await admin.call("replay", run_id=run_id)  # the first page, as sent
            whole = await admin.replay(run_id)
            return raw, whole

    raw, whole = asyncio.run(read())
    assert raw["more"] is True and raw["offset"] == 0
    assert 0 < len(raw["replay"]["steps"]) < len(whole.steps)
    seqs = [s.seq for s in whole.steps]
    assert seqs == sorted(set(seqs))  # every step once, in order
    intents = [s for s in whole.steps if s.type == "policy.intent.received"]
    assert len(intents) == INTENTS
    assert all(s.params["path"].startswith(PATH) for s in intents)
    assert whole.steps[-1].type == "run.finished"


def test_session_what_if_lists_what_fits_and_counts_all(big):
    """Every denied write would be allowed by this policy: more changes than one frame holds.
    The reply lists those that fit (previews) and counts them all."""
    serve, sid, _run_id = big
    allow = {
        "version": 1,
        "overrides": [{"tool": "file.write", "allow": True, "constraints": {"roots": ["work"]}}],
    }

    async def read():
        async with await AdminClient.connect(serve.data) as admin:
            return await admin.session_timeline(sid, allow, max_markers=1)

    remote = asyncio.run(read())
    (group,) = remote.what_if
    assert group.total == INTENTS and 0 < len(group.changes) < INTENTS
    assert all(c.after == "ALLOW" and c.before == "DENY" for c in group.changes)


async def test_replay_pages_come_from_one_replay(tmp_path, monkeypatch):
    """The pages of one replay are cut from the replay made for the first page (a replay
    verifies the whole log): one replay per paged read, and a fresh one for the next read."""
    from talon_tui.engine.core.paths import DataDir
    from talon_tui.engine.engine import Engine
    from talon_tui.engine.pipe.server import PipeServer
    from talon_tui.engine.policy.models import ToolIntent

    data = tmp_path / "data"
    engine = Engine(data)
    await engine.start()
    pipe = PipeServer(engine, DataDir(data).socket_path)
    await pipe.start()
    try:
        session, _key = await engine.create_session("big", str(tmp_path), None)
        run_id = await engine.begin_run(session.id, "agent:a", "big")
        for i in range(INTENTS):
            params = {"path": f"{PATH}/{i}.txt", "content": CONTENT}
            intent = ToolIntent(tool="file.write", params=params)
            with pytest.raises(TalonError):
                await engine.submit(session.id, "agent:a", intent, run_id=run_id)
        await engine.end_run(session.id, "agent:a", run_id, "ok")
        calls = []
        real = engine.replay

        async def counted(*args, **kwargs):
            calls.append(args)
            return await real(*args, **kwargs)

        monkeypatch.setattr(engine, "replay", counted)
        async with await AdminClient.connect(data) as admin:
            raw = await admin.call("replay", run_id=run_id)
            assert raw["more"] is True and len(calls) == 1  # more than one page
            first = await admin.replay(run_id)
            assert len(calls) == 2 and len(first.steps) == INTENTS * 2 + 2
            assert (await admin.replay(run_id)) == first
            assert len(calls) == 3  # each read replays once, whatever its pages
    finally:
        await pipe.stop(grace=1.0)
        await engine.stop()
