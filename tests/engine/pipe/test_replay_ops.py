"""session.timeline, run.compare and approval.preview over the real pipe (an attached console
gets the same answers as the in-process engine)."""

from __future__ import annotations

import asyncio

from support.session_log import record

from talon_tui.client import AdminClient
from talon_tui.engine.core.paths import DataDir
from talon_tui.engine.engine import Engine
from talon_tui.engine.pipe.server import PipeServer
from talon_tui.engine.policy.models import ToolIntent


async def test_replay_ops_over_the_pipe(tmp_path):
    data = tmp_path / "data"
    engine = Engine(data, approval_timeout=10)
    await engine.start()
    pipe = PipeServer(engine, DataDir(data).socket_path)
    await pipe.start()
    try:
        rec = await record(engine, tmp_path / "ws")
        admin = await AdminClient.connect(data)
        try:
            local = await engine.session_timeline(rec.session_id, max_markers=5)
            remote = await admin.session_timeline(rec.session_id, max_markers=5)
            assert remote == local and remote.next_seq is not None
            page = await admin.session_timeline(
                rec.session_id, from_seq=remote.next_seq, summary=False
            )
            assert page.markers[0].seq == remote.next_seq
            # a further window: its runs' lanes, only its own policy changes
            assert {r.run_id for r in page.runs} == set(rec.runs)
            assert all(p.seq >= remote.next_seq for p in page.policies)
            for kind in ("denial", "approval", "policy"):
                assert await admin.session_jump(rec.session_id, kind, -1) == (
                    await engine.session_jump(rec.session_id, kind, -1)
                )
            assert await admin.compare_runs(*rec.runs) == await engine.compare_runs(*rec.runs)

            intent = ToolIntent(
                tool="file.write", params={"path": "drafts/d.md", "content": "new\n"}
            )
            await engine.set_policy(
                rec.session_id,
                {
                    "version": 1,
                    "overrides": [
                        {
                            "tool": "file.write",
                            "allow": True,
                            "approval": "always",
                            "constraints": {"roots": ["drafts"]},
                        }
                    ],
                },
            )
            task = asyncio.ensure_future(engine.submit(rec.session_id, "agent:a", intent))
            for _ in range(300):
                if len(engine.approvals):
                    break
                await asyncio.sleep(0.01)
            (pending,) = await engine.list_approvals()
            preview = await admin.approval_preview(pending.approval_id)
            assert preview.lines[-2:] == ["-d", "+new"]
            await engine.decide_approval(pending.approval_id, False)
            await asyncio.gather(task, return_exceptions=True)
        finally:
            await admin.close()
    finally:
        await pipe.stop(grace=1.0)
        await engine.stop()
