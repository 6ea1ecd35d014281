"""An attached console notices that its engine is gone and comes back (issues 12.2 and 15.2).

Driven with Pilot over a real `talon serve` subprocess (and over an engine hosted by another
console in this process): stop the engine and every screen shows the "disconnected" banner
over its last data, marked stale; start it again and the console reconnects by itself,
resumes the event stream after the last event it saw, and shows current data.
"""

from __future__ import annotations

import asyncio

import pytest
from support.app import screen_text, settle
from support.pipe import READ_POLICY, Serve, make_workspace
from textual.widgets import DataTable
from textual.worker import WorkerCancelled

from talon_tui.app.screens.dashboard import DashboardScreen
from talon_tui.app.screens.sessions import SessionsScreen
from talon_tui.app.widgets.link_banner import LinkBanner
from talon_tui.cli.commands.console_cmd import console_app, hosted_engine
from talon_tui.client import AsyncAgentClient, PolicyDeniedError

SIZE = (80, 24)


async def wait_until(pilot, condition, seconds: float = 60.0) -> None:
    """Process messages and workers until `condition()` holds; a wall-clock bound, since the
    engine here is another process (stopping and starting it takes real time)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while not condition():
        if loop.time() > deadline:
            raise AssertionError("condition not reached")
        try:
            await settle(pilot)
        except WorkerCancelled:
            pass  # a screen load replaced by a newer one (exclusive reloads): keep waiting
        await asyncio.sleep(0.02)


def banner_up(app) -> bool:
    """The banner is up and on the terminal (it is mounted when first needed)."""
    banners = list(app.screen.query(LinkBanner).results())
    return (
        bool(banners)
        and banners[0].has_class("-down")
        and "Engine disconnected" in screen_text(app)
    )


def sessions_rows(app) -> int:
    if not isinstance(app.screen, SessionsScreen):
        return -1
    return app.screen.query_one(DataTable).row_count


def record_bus(app) -> list:
    """Every bus message the app dispatches to its screens, in order."""
    seen: list = []
    forward = app.dispatch_bus

    def dispatch(msg) -> None:
        seen.append(msg)
        forward(msg)

    app.dispatch_bus = dispatch
    return seen


def audit_types(seen) -> list[str]:
    return [m.payload.get("type") for m in seen if m.kind == "audit"]


async def agent_denied(socket_path, key: str) -> None:
    agent = await AsyncAgentClient.connect(key, socket_path=socket_path)
    try:
        with pytest.raises(PolicyDeniedError):
            await agent.intent("file.read", {"path": "other/b.txt"})
    finally:
        await agent.close()


@pytest.mark.slow
async def test_serve_stops_and_restarts_under_an_attached_console(tmp_path):
    data = tmp_path / "data"
    ws = make_workspace(tmp_path)
    serve = Serve(data).start()
    try:
        async with hosted_engine(data) as hosted:
            assert hosted.mode == "attached"
            _session, key = await hosted.api.create_session("kept", str(ws), READ_POLICY)
            app = await console_app(hosted, data)
            app.refresh_interval = 0
            app.reconnect_delays = (0.1, 0.2)
            seen = record_bus(app)
            async with app.run_test(size=SIZE) as pilot:
                await wait_until(pilot, lambda: "1 open" in screen_text(app))
                assert not banner_up(app)
                await pilot.press("2")
                await wait_until(pilot, lambda: sessions_rows(app) == 1)

                code, _err = await asyncio.to_thread(serve.terminate)
                assert code == 0
                await wait_until(pilot, lambda: banner_up(app))
                text = screen_text(app)
                assert "Engine disconnected — reconnecting" in text
                assert "STALE" in text
                # the sessions are still listed, marked stale, never an empty table
                assert sessions_rows(app) == 1 and "kept" in text
                assert app.screen.has_class("-stale")
                assert "ENGINE DISCONNECTED" in app.sub_title  # also above modal screens
                # every screen says so: the dashboard too
                await pilot.press("1")
                await wait_until(
                    pilot, lambda: isinstance(app.screen, DashboardScreen) and banner_up(app)
                )
                assert app.screen.has_class("-stale")
                assert all(len(line) <= SIZE[0] for line in screen_text(app).splitlines())

                serve = await asyncio.to_thread(Serve(data).start)
                await wait_until(pilot, lambda: not banner_up(app))
                assert not app.screen.has_class("-stale")
                assert "DISCONNECTED" not in app.sub_title
                # the stream resumed after the last event seen: what the engine wrote while
                # the console was cut off (its own shutdown) arrives from the log
                await wait_until(pilot, lambda: "engine.stopped" in audit_types(seen))
                assert audit_types(seen).count("engine.stopped") == 1
                seqs = [m.payload["seq"] for m in seen if m.kind == "audit"]
                assert seqs == sorted(set(seqs))

                await pilot.press("2")
                await wait_until(pilot, lambda: sessions_rows(app) == 1)
                assert not banner_up(app) and "kept" in screen_text(app)

                # new events arrive live
                before = len(seen)
                await agent_denied(serve.socket_path, key)
                await wait_until(pilot, lambda: "policy.decision" in audit_types(seen[before:]))
    finally:
        serve.stop_quietly()


async def test_the_hosting_console_quits_under_an_attached_console(tmp_path):
    data = tmp_path / "data"
    ws = make_workspace(tmp_path)
    serve = None
    host = hosted_engine(data)
    hosting = await host.__aenter__()
    assert hosting.mode == "in-process"
    try:
        _session, key = await hosting.api.create_session("kept", str(ws), READ_POLICY)
        async with hosted_engine(data) as attached:
            assert attached.mode == "attached"
            app = await console_app(attached, data)
            app.refresh_interval = 0
            app.reconnect_delays = (0.1, 0.2)
            seen = record_bus(app)
            async with app.run_test(size=SIZE) as pilot:
                await wait_until(pilot, lambda: "1 open" in screen_text(app))
                # the hosting console quits: its engine and pipe stop
                await host.__aexit__(None, None, None)
                host = None
                await wait_until(pilot, lambda: banner_up(app))
                assert "Engine disconnected" in screen_text(app)

                serve = await asyncio.to_thread(Serve(data).start)
                await wait_until(pilot, lambda: not banner_up(app))
                await wait_until(pilot, lambda: "1 open" in screen_text(app))
                before = len(seen)
                await agent_denied(serve.socket_path, key)
                await wait_until(pilot, lambda: "policy.decision" in audit_types(seen[before:]))
    finally:
        if host is not None:
            await host.__aexit__(None, None, None)
        if serve is not None:
            serve.stop_quietly()


@pytest.mark.slow
async def test_an_attached_console_shows_a_megabyte_approval_as_a_marked_preview(tmp_path):
    from support.admin_link import BIG, WRITE_APPROVAL

    from talon_tui.app.screens.approvals import ApprovalsScreen

    data = tmp_path / "data"
    ws = make_workspace(tmp_path)
    serve = Serve(data).start()
    try:
        async with hosted_engine(data) as hosted:
            _session, key = await hosted.api.create_session("big", str(ws), WRITE_APPROVAL)
            app = await console_app(hosted, data)
            app.refresh_interval = 0
            seen = record_bus(app)
            async with app.run_test(size=(120, 40)) as pilot:
                await wait_until(pilot, lambda: "1 open" in screen_text(app))
                agent = await AsyncAgentClient.connect(key, socket_path=serve.socket_path)
                waiting = asyncio.ensure_future(
                    agent.intent("file.write", {"path": "work/big.txt", "content": BIG})
                )
                await wait_until(pilot, lambda: "approval.requested" in audit_types(seen))
                await pilot.press("3")
                await wait_until(
                    pilot,
                    lambda: (
                        isinstance(app.screen, ApprovalsScreen)
                        and app.screen.query_one(DataTable).row_count == 1
                    ),
                )
                text = screen_text(app)
                assert "work/big.txt" in text and "preview only" in text
                assert not banner_up(app)
                await pilot.press("n")
                with pytest.raises(Exception, match="denied"):
                    await waiting
                # the stream still delivers after the large frames
                await wait_until(pilot, lambda: "approval.decided" in audit_types(seen))
                await agent.close()
    finally:
        serve.stop_quietly()


@pytest.mark.slow
async def test_a_replaced_log_is_followed_from_its_own_head(tmp_path):
    """The engine comes back on a log that ends before the last event the console saw (a
    restored or replaced data dir): the console follows the new log instead of waiting for
    seqs it already passed."""
    import shutil

    data = tmp_path / "data"
    ws = make_workspace(tmp_path)
    serve = Serve(data).start()
    try:
        async with hosted_engine(data) as hosted:
            for label in ("a", "b", "c", "d"):
                await hosted.api.create_session(label, str(ws), READ_POLICY)
            app = await console_app(hosted, data)
            app.refresh_interval = 0
            app.reconnect_delays = (0.1, 0.2)
            seen = record_bus(app)
            async with app.run_test(size=SIZE) as pilot:
                await wait_until(pilot, lambda: "4 open" in screen_text(app))
                await asyncio.to_thread(serve.terminate)
                await wait_until(pilot, lambda: banner_up(app))
                token = (data / "admin.token").read_bytes()
                shutil.rmtree(data)
                data.mkdir(mode=0o700)
                (data / "admin.token").write_bytes(token)
                (data / "admin.token").chmod(0o600)
                serve = await asyncio.to_thread(Serve(data).start)
                await wait_until(pilot, lambda: not banner_up(app))
                await wait_until(pilot, lambda: "0 open" in screen_text(app))
                _s, key = await hosted.api.create_session("new", str(ws), READ_POLICY)
                before = len(seen)
                await agent_denied(serve.socket_path, key)
                await wait_until(pilot, lambda: "policy.decision" in audit_types(seen[before:]))
    finally:
        serve.stop_quietly()
