"""Pilot tests of the replay screen over a real in-process Engine: choose a run, step, output
hash ✓ and a tampered output ✗, what-if marks, and hostile output shown literally."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from support.audit_screen import (
    STRICT,
    ScreenApp,
    shown,
    wait_for,
)
from textual.widgets import DataTable

from talon_tui.app.screens.replay import BANNER, ReplayScreen, WhatIfScreen


def replay_app(tmp_path: Path, run_index: int | None = 0, **kwargs) -> ScreenApp:
    def make(engine, session_id, runs):
        return ReplayScreen(engine, None if run_index is None else runs[run_index])

    return ScreenApp(tmp_path / "data", make, **kwargs)


async def replayed(pilot) -> ReplayScreen:
    app = pilot.app
    await wait_for(
        pilot,
        lambda: isinstance(app.screen, ReplayScreen) and app.screen.result is not None,
        "the replay",
    )
    return app.screen


def cursor(screen: ReplayScreen) -> int:
    return screen.query_one("#steps", DataTable).cursor_row


@pytest.mark.slow
async def test_choose_a_run_then_step_forward_and_back(tmp_path):
    app = replay_app(tmp_path, run_index=None)
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_for(
            pilot, lambda: isinstance(app.screen, ReplayScreen) and app.screen.loads, "runs"
        )
        text = await shown(pilot, BANNER, app.runs[0])
        assert "3 recorded runs" not in text  # two runs without hostile data
        runs = app.screen.query_one("#runs", DataTable)
        keys = [r.key.value for r in runs.ordered_rows]
        await pilot.press(*["down"] * keys.index(app.runs[0]), "enter")
        screen = await replayed(pilot)
        assert screen.result.run_id == app.runs[0]
        assert [s.type for s in screen.result.steps][:3] == [
            "run.started",
            "policy.intent.received",
            "policy.decision",
        ]
        await pilot.press("right", "j")
        assert cursor(screen) == 2
        await shown(pilot, "decision:", "ALLOW", "allowed by override 0")
        await pilot.press("left")
        assert cursor(screen) == 1
        await pilot.press("k", "k")
        assert cursor(screen) == 0
        await pilot.press("t")
        await pilot.pause()
        await pilot.press(*["down"] * 4, "enter")  # tool.executed, the 5th type
        await wait_for(pilot, lambda: cursor(screen) == 4, "the jump to a type")
        text = await shown(pilot, "✓ the recorded output matches its sha256")
        assert "chain ✓ valid" in text
        await pilot.press("left")  # capability.issued
        await shown(pilot, "token sha256:", "sha256:abababab")


@pytest.mark.slow
async def test_play_steps_on_a_timer_and_stops_at_the_end(tmp_path):
    app = replay_app(tmp_path)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await replayed(pilot)
        await pilot.press("space")
        assert screen.playing
        last = len(screen.result.steps) - 1
        await wait_for(pilot, lambda: cursor(screen) == last and not screen.playing, "the end")


def tamper_output(log: Path) -> None:
    lines = log.read_bytes().split(b"\n")
    for i, line in enumerate(lines):
        if b'"type":"tool.executed"' in line:
            lines[i] = line.replace(b'"content":"hello\\n"', b'"content":"HELLO\\n"')
            break
    log.write_bytes(b"\n".join(lines))


async def test_tampered_output_is_marked_and_the_chain_broken(tmp_path):
    app = ScreenApp(
        tmp_path / "data",
        lambda e, s, r: ReplayScreen(e, r[0]),
        before=lambda e, s, r: tamper_output(e.audit_path),
    )
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await replayed(pilot)
        step = next(s for s in screen.result.steps if s.type == "tool.executed")
        assert step.output_matches is False
        await pilot.press(*["right"] * screen.result.steps.index(step))
        text = await shown(pilot, "✗ the recorded output does NOT match its sha256")
        assert f"chain ✗ broken at seq {step.seq}" in text
        assert "HELLO" in text


@pytest.mark.slow
async def test_what_if_marks_the_decision_another_policy_changes(tmp_path):
    strict = tmp_path / "strict.json"
    strict.write_text(json.dumps(STRICT))
    app = replay_app(tmp_path)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await replayed(pilot)
        await pilot.press("w")
        await wait_for(pilot, lambda: isinstance(app.screen, WhatIfScreen), "the what-if form")
        await pilot.press(*str(tmp_path / "missing.json"), "enter")
        await shown(pilot, "cannot read")
        app.screen.query_one("Input").value = str(strict)
        await pilot.press("enter")
        await wait_for(pilot, lambda: screen.result.changed_by_policy, "the what-if replay")
        changed = [s for s in screen.result.steps if s.changed_by_policy]
        assert [(s.decision, s.what_if_decision) for s in changed] == [("ALLOW", "DENY")]
        text = await shown(pilot, "1 decision would change", "≠")
        assert "what if:" in text

        await pilot.press("w")
        await wait_for(pilot, lambda: isinstance(app.screen, WhatIfScreen), "the what-if form")
        await pilot.press("ctrl+o")
        await shown(pilot, "0 decisions would change")


async def test_hostile_output_renders_literally(tmp_path):
    app = replay_app(tmp_path, run_index=2, hostile=True)
    async with app.run_test(size=(160, 40)) as pilot:
        screen = await replayed(pilot)
        await pilot.press(*["right"] * 4)
        text = await shown(pilot, "recorded output:")
        assert '"content": "[bold' in text  # wrapped at its space, literal
        assert "green]ALLOW[/]\\u001b[2J[link=http://x]y[/link]" in text
        for strip in app.screen._compositor.render_strips():
            for seg in strip:
                assert "\x1b" not in seg.text
                assert not (seg.style and seg.style.link)
        assert screen.current.output_matches is True
        await pilot.press("left", "left", "left")  # the intent: params with controls visible
        await shown(pilot, 'params: {"path": "[link=http://x]y[/link]\\u001b[2J"}')
