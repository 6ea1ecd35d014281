"""Approval previews (issue 16, item 3): what allowing a waiting intent would do, taken by the
engine through the broker at the moment it is asked for. The file.write diff reads the file as
it is now, through the confinement (never a symlink, never outside the roots), and never
changes it."""

from __future__ import annotations

import asyncio
import os

from talon_tui.engine.policy.models import ToolIntent

IMAGE = "sha256:" + "a" * 64


def _policy(tool: str, constraints: dict) -> dict:
    return {
        "version": 1,
        "overrides": [
            {"tool": tool, "allow": True, "approval": "always", "constraints": constraints}
        ],
    }


async def _waiting(engine, sid: str, tool: str, params: dict) -> tuple[str, asyncio.Task]:
    task = asyncio.ensure_future(
        engine.submit(sid, "agent:t", ToolIntent(tool=tool, params=params, origin="agent"))
    )
    for _ in range(200):
        pending = await engine.list_approvals()
        if pending:
            return pending[0].approval_id, task
        await asyncio.sleep(0.01)
    raise AssertionError("no approval appeared")


async def _finish(engine, approval_id: str, task: asyncio.Task) -> None:
    await engine.decide_approval(approval_id, False)
    await asyncio.gather(task, return_exceptions=True)


async def test_write_preview_is_a_diff_taken_now(engine, workspace):
    policy = _policy("file.write", {"roots": ["work"], "max_bytes": 4096})
    session, _key = await engine.create_session("w", str(workspace), policy)
    target = workspace / "work" / "a.txt"
    target.write_text("one\ntwo\nthree\n")
    aid, task = await _waiting(
        engine, session.id, "file.write", {"path": "work/a.txt", "content": "one\nTWO\nthree\n"}
    )
    first = await engine.approval_preview(aid)
    assert "-two" in first.lines and "+TWO" in first.lines
    assert ("current size", "14 bytes") in first.fields
    # the file changes between the request and the decision: the preview follows it
    target.write_text("one\ntwo\nthree\nfour\n")
    second = await engine.approval_preview(aid)
    assert "-four" in second.lines and "-four" not in first.lines
    assert ("current size", "19 bytes") in second.fields
    assert target.read_text() == "one\ntwo\nthree\nfour\n"  # read-only
    await _finish(engine, aid, task)
    assert target.read_text() == "one\ntwo\nthree\nfour\n"


async def test_write_preview_of_a_new_file_and_its_size(engine, workspace):
    policy = _policy("file.write", {"roots": ["work"], "max_bytes": 4096})
    session, _key = await engine.create_session("w", str(workspace), policy)
    aid, task = await _waiting(
        engine, session.id, "file.write", {"path": "work/new.txt", "content": "a\nb\n"}
    )
    p = await engine.approval_preview(aid)
    assert ("current", "new file") in p.fields
    assert p.lines == ["+a", "+b"] and p.bytes == 4
    assert not (workspace / "work" / "new.txt").exists()
    await _finish(engine, aid, task)


async def test_write_preview_never_follows_a_symlink_out(engine, workspace, tmp_path):
    outside = tmp_path / "outside.txt"
    outside.write_text("TOP SECRET CONTENT\n")
    policy = _policy("file.write", {"roots": ["work"], "max_bytes": 4096})
    session, _key = await engine.create_session("w", str(workspace), policy)
    aid, task = await _waiting(
        engine, session.id, "file.write", {"path": "work/link.txt", "content": "x\n"}
    )
    # swapped for a symlink after the request: the preview refuses it, shows nothing of it
    os.symlink(outside, workspace / "work" / "link.txt")
    p = await engine.approval_preview(aid)
    shown = "\n".join([*p.lines, p.note, *(v for _, v in p.fields)])
    assert "TOP SECRET" not in shown
    assert "symlink" in p.note
    await _finish(engine, aid, task)


async def test_write_preview_is_capped(engine, workspace, monkeypatch):
    from talon_tui.engine.broker import preview

    monkeypatch.setattr(preview, "PREVIEW_READ_CAP", 10)
    policy = _policy("file.write", {"roots": ["work"], "max_bytes": 4096})
    session, _key = await engine.create_session("w", str(workspace), policy)
    (workspace / "work" / "big.txt").write_text("x" * 100)
    aid, task = await _waiting(
        engine, session.id, "file.write", {"path": "work/big.txt", "content": "y\n"}
    )
    p = await engine.approval_preview(aid)
    assert ("current", "over 10 bytes: not read, no diff") in p.fields
    await _finish(engine, aid, task)


async def test_http_preview_names_secrets_and_the_address(engine, workspace):
    await engine.set_secret("api_token", "s3cr3t-value-123456")
    policy = _policy(
        "http.fetch",
        {
            "domains": ["127.0.0.1"],
            "methods": ["POST"],
            "secrets": ["api_token"],
            "allow_private_addresses": True,
            "schemes": ["http", "https"],
            "ports": [8080],
        },
    )
    session, _key = await engine.create_session("h", str(workspace), policy)
    params = {
        "url": "http://127.0.0.1:8080/x?q=1",
        "method": "POST",
        "headers": {"Authorization": {"secret_ref": "api_token"}, "X-Plain": "v"},
        "body": "hello",
    }
    aid, task = await _waiting(engine, session.id, "http.fetch", params)
    p = await engine.approval_preview(aid)
    fields = dict(p.fields)
    assert fields["url"] == "http://127.0.0.1:8080/x?q=1" and fields["method"] == "POST"
    assert fields["connects to"] == "127.0.0.1 port 8080"
    assert "Authorization: «secret:api_token» (value not shown)" in p.lines
    assert "s3cr3t" not in repr(p.model_dump())
    await _finish(engine, aid, task)


async def test_shell_preview_lists_argv_one_per_line(engine, workspace):
    policy = _policy("shell.exec", {"commands": ["/bin/echo"]})
    session, _key = await engine.create_session("s", str(workspace), policy)
    aid, task = await _waiting(
        engine, session.id, "shell.exec", {"argv": ["/bin/echo", "a b", "--x"], "cwd": "work"}
    )
    p = await engine.approval_preview(aid)
    assert p.lines == ["argv[0] /bin/echo", "argv[1] a b", "argv[2] --x"]
    assert ("cwd", "work") in p.fields
    await _finish(engine, aid, task)


async def test_docker_preview_shows_mounts_network_limits(engine, workspace):
    policy = _policy(
        "docker.run",
        {
            "images": [IMAGE],
            "mounts": [{"source": str(workspace), "target": "/w"}],
            "memory_mb": 256,
        },
    )
    session, _key = await engine.create_session("d", str(workspace), policy)
    aid, task = await _waiting(
        engine, session.id, "docker.run", {"image": IMAGE, "command": ["ls", "/w"]}
    )
    p = await engine.approval_preview(aid)
    assert ("image", IMAGE) in p.fields
    assert "command: ls" in p.lines and "network: none" in p.lines
    assert f"mount: {workspace} -> /w (ro)" in p.lines
    assert "limit memory_mb: 256" in p.lines
    await _finish(engine, aid, task)
