"""The replay screen marks the steps of a tool the agent ran itself (agent hooks)."""

from __future__ import annotations

from pathlib import Path

from support.audit_screen import POLICY, make_workspace, shown, wait_for
from textual.app import App

from talon_tui.app.screens.replay import ReplayScreen
from talon_tui.engine.engine import Engine


class AgentRunApp(App[None]):
    def __init__(self, data_dir: Path) -> None:
        super().__init__()
        self.data_dir = data_dir
        self.engine: Engine | None = None

    async def on_mount(self) -> None:
        self.engine = Engine(self.data_dir)
        await self.engine.start()
        ws = make_workspace(self.data_dir)
        session, _ = await self.engine.create_session("hooks", str(ws), POLICY)
        done = await self.engine.decide(
            session.id,
            "agent",
            "file.read",
            {"path": f"{ws}/work/notes.txt"},
            native="Read",
            ref="toolu_1",
        )
        await self.engine.report(
            session.id,
            "agent",
            ref="toolu_1",
            native="Read",
            status="ok",
            output_sha256="sha256:" + "ab" * 32,
            size=12,
        )
        await self.push_screen(ReplayScreen(self.engine, done["run_id"]))

    async def on_unmount(self) -> None:
        if self.engine is not None:
            await self.engine.stop()


async def test_agent_run_steps_are_marked(tmp_path):
    app = AgentRunApp(tmp_path / "data")
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_for(
            pilot,
            lambda: isinstance(app.screen, ReplayScreen) and app.screen.result is not None,
            "the replay",
        )
        text = await shown(pilot, "·agent", "tool.reported")
        assert "policy.decision ·agent" in text
        screen = app.screen
        agent_steps = [s.type for s in screen.result.steps if s.executor == "agent"]
        assert agent_steps == ["policy.intent.received", "policy.decision", "tool.reported"]
        await pilot.press("down", "down")
        await shown(pilot, "run by the agent itself")
