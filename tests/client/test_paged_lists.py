"""`AdminClient` joins the listings the engine sends in pages (each page fits one frame,
`more` set while some are left): all of them, in order, none twice, cut at `limit`. Against a
real `talon serve` whose audit log holds more than one frame of events."""

from __future__ import annotations

import asyncio

import pytest
from support.pipe import READ_POLICY, Serve, make_workspace

from talon_tui.client import AdminClient
from talon_tui.engine.core import frames

pytestmark = pytest.mark.slow

NOTE = "n" * 6000  # a policy.set event previews to about this much: ~170 fill a frame


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    root = tmp_path_factory.mktemp("paged")
    serve = Serve(root / "data").start()
    ws = make_workspace(root)

    async def fill() -> str:
        async with await AdminClient.connect(serve.data) as admin:
            session, _key = await admin.create_session("paged", str(ws), READ_POLICY)
            for i in range(240):
                override = {**READ_POLICY["overrides"][0], "note": f"{i} {NOTE}"}
                await admin.set_policy(session.id, {"version": 1, "overrides": [override]})
            return session.id

    sid = asyncio.run(fill())
    yield serve, sid
    serve.stop_quietly()


def test_audit_query_joins_every_page_in_order(served):
    serve, sid = served

    async def main():
        async with await AdminClient.connect(serve.data) as admin:
            first = await admin.call("audit.query", session_id=sid, limit=10_000)
            assert first["more"] and len(first["events"]) < 240  # the engine did page it
            events = await admin.query_audit(session_id=sid, limit=10_000)
            seqs = [e["seq"] for e in events]
            assert seqs == sorted(set(seqs)) and seqs[0] == first["events"][0]["seq"]
            assert len(events) > 240
            cut = await admin.query_audit(session_id=sid, limit=200)
            assert [e["seq"] for e in cut] == seqs[:200]
            later = await admin.query_audit(session_id=sid, from_seq=seqs[150], limit=10_000)
            assert [e["seq"] for e in later] == seqs[150:]
            assert frames.LIST_BUDGET_BYTES < sum(len(str(e)) for e in events)

    asyncio.run(main())
