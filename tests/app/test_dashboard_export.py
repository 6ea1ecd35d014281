"""The dashboard's audit tile shows the exporters' lag (`talon serve --export`), red while one
backs off: a real ExportManager follows the real engine's log to a syslog TCP port where
nothing listens, then to a receiver that takes everything."""

from __future__ import annotations

import pytest
from support.app import frozen, screen_text, settle, talon_app, wait_until  # noqa: F401
from support.receivers import SyslogTcp, free_port

from talon_tui.engine.export import ExportManager, parse_spec


@pytest.mark.usefixtures("frozen")
async def test_dashboard_shows_export_lag(tmp_path):
    managers: list[ExportManager] = []
    port = free_port("127.0.0.1")

    async def setup(hosted) -> None:
        data = hosted.engine.data
        spec = parse_spec(f"syslog=127.0.0.1:{port}/tcp")
        manager = ExportManager([spec], data.audit_log, data.root / "export")
        manager.start()
        managers.append(manager)
        hosted.engine.export_status = manager.status

    app, _hosted = talon_app(tmp_path / "data", setup)
    try:
        async with app.run_test(size=(120, 40)) as pilot:
            await settle(pilot)
            await wait_until(
                pilot,
                lambda: managers and managers[0].status(0)[0]["state"] == "backing off",
            )
            app.screen.reload()
            await settle(pilot)
            text = screen_text(app)
            assert "export lag" in text
            lag = int(text.split("export lag ")[1].split()[0])
            assert lag > 0

            receiver = SyslogTcp("127.0.0.1", port)
            try:
                await wait_until(
                    pilot, lambda: managers[0].status(0)[0]["state"] == "ok", rounds=4000
                )
                app.screen.reload()
                await settle(pilot)
                assert receiver.messages
            finally:
                receiver.close()
    finally:
        for manager in managers:
            manager.stop()
