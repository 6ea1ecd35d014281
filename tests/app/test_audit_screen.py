"""Pilot tests of the audit viewer over a real in-process Engine: live follow, pending count,
filters, the event JSON, tamper detection with `v`, and hostile text shown literally."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest
from support.audit_screen import (
    HOSTILE_ANSI,
    HOSTILE_LINK,
    HOSTILE_MARKUP,
    ScreenApp,
    screen_text,
    shown,
    wait_for,
)

from talon_tui.app.screens.audit import AuditScreen, EventDetailScreen
from talon_tui.app.widgets.audit_list import AuditList
from talon_tui.engine.audit.linescan import AuditFilter


def audit_app(tmp_path: Path, **kwargs) -> ScreenApp:
    return ScreenApp(tmp_path / "data", lambda e, s, r: AuditScreen(e), **kwargs)


async def ready(pilot) -> AuditList:
    app = pilot.app
    await wait_for(
        pilot,
        lambda: isinstance(app.screen, AuditScreen) and app.screen.query_one(AuditList).complete,
        "the audit list to index the log",
    )
    return app.screen.query_one(AuditList)


def events_shown(audit_list: AuditList) -> list[dict]:
    return [audit_list.event_at(i) for i in range(len(audit_list.offsets))]


async def test_follows_new_events_live(tmp_path):
    app = audit_app(tmp_path)
    async with app.run_test(size=(120, 40)) as pilot:
        audit_list = await ready(pilot)
        before = len(audit_list.offsets)
        assert audit_list.following
        await app.engine.create_session("late arrival", str(tmp_path))
        await wait_for(pilot, lambda: len(audit_list.offsets) >= before + 2, "the new events")
        assert audit_list.cursor == len(audit_list.offsets) - 1
        created = audit_list.event_at(before)
        assert created["type"] == "session.created" and created["data"]["label"] == "late arrival"
        assert "late arrival" in await shown(pilot, "late arrival")
        assert audit_list.pending == 0


async def test_scrolled_away_counts_pending_lines(tmp_path):
    app = audit_app(tmp_path)
    async with app.run_test(size=(120, 40)) as pilot:
        audit_list = await ready(pilot)
        await pilot.press("g")
        assert audit_list.cursor == 0 and not audit_list.following
        await app.engine.create_session("one", str(tmp_path))
        await app.engine.create_session("two", str(tmp_path))
        await wait_for(pilot, lambda: audit_list.pending >= 4, "pending lines")
        assert audit_list.cursor == 0
        text = await shown(pilot, "new below")
        assert f"{audit_list.pending} new below" in text
        await pilot.press("G")
        assert audit_list.following and audit_list.pending == 0
        assert audit_list.cursor == len(audit_list.offsets) - 1


@pytest.mark.slow
async def test_filters_by_type_text_session_and_decision(tmp_path):
    app = audit_app(tmp_path)
    async with app.run_test(size=(120, 40)) as pilot:
        audit_list = await ready(pilot)
        await pilot.press("slash")
        await pilot.press(*"type:policy.decision", "enter")
        await wait_for(pilot, lambda: audit_list.complete, "the filtered index")
        types = {e["type"] for e in events_shown(audit_list)}
        assert types == {"policy.decision"} and len(audit_list.offsets) == 2

        await pilot.press("d", "d")  # all -> ALLOW -> DENY
        await wait_for(pilot, lambda: audit_list.complete, "the decision filter")
        assert audit_list.filter.decision == "DENY"
        assert [e["data"]["decision"] for e in events_shown(audit_list)] == ["DENY"]

        await pilot.press("c", "slash")
        await pilot.press(*"secrets/key", "enter")
        await wait_for(pilot, lambda: audit_list.complete, "the text filter")
        shown_events = events_shown(audit_list)
        assert shown_events and all("secrets/key" in orjson.dumps(e).decode() for e in shown_events)
        assert "filter" in screen_text(app)

        other, _ = await app.engine.create_session("other", str(tmp_path))
        await pilot.press("c")
        await wait_for(pilot, lambda: audit_list.complete and audit_list.filter.empty, "clear")
        audit_list.rebuild(AuditFilter(session_id=other.id))
        await wait_for(pilot, lambda: audit_list.complete, "the session filter")
        assert {e["session_id"] for e in events_shown(audit_list)} == {other.id}


@pytest.mark.slow
async def test_enter_shows_the_event_json_with_hashes(tmp_path):
    app = audit_app(tmp_path)
    async with app.run_test(size=(120, 40)) as pilot:
        audit_list = await ready(pilot)
        event = audit_list.selected_event
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, EventDetailScreen), "the detail")
        text = await shown(pilot, event["hash"], event["prev_hash"])
        assert f'"seq": {event["seq"]}' in text
        await pilot.press("escape")
        await wait_for(pilot, lambda: isinstance(app.screen, AuditScreen), "back to the list")


def tamper(log: Path, seq: int, old: bytes, new: bytes) -> None:
    lines = log.read_bytes().split(b"\n")
    assert old in lines[seq]
    lines[seq] = lines[seq].replace(old, new)
    log.write_bytes(b"\n".join(lines))


@pytest.mark.slow
async def test_verify_names_the_modified_event_and_jumps_to_it(tmp_path):
    app = audit_app(tmp_path)
    async with app.run_test(size=(120, 40)) as pilot:
        audit_list = await ready(pilot)
        await pilot.press("v")
        await wait_for(pilot, lambda: app.screen.report is not None, "verification")
        assert app.screen.report.valid
        assert "✓ chain intact" in screen_text(app)

        target = next(e for e in events_shown(audit_list) if e["type"] == "run.started")
        tamper(app.engine.audit_path, target["seq"], b"read the notes", b"read the NOTES")
        app.screen.report = None
        await pilot.press("g", "v")
        await wait_for(pilot, lambda: app.screen.report is not None, "verification")
        seq = target["seq"]
        assert app.screen.report.first_bad_seq == seq
        text = await shown(pilot, f"seq {seq} was modified: its hash does not match")
        assert "✗" in text
        await wait_for(pilot, lambda: audit_list.selected_event["seq"] == seq, "the jump")


@pytest.mark.slow
async def test_hostile_strings_render_literally(tmp_path):
    app = audit_app(tmp_path, hostile=True)
    async with app.run_test(size=(200, 40)) as pilot:
        audit_list = await ready(pilot)
        rows = {
            audit_list.event_at(i)["type"]: audit_list.row_text(i).plain
            for i in range(len(audit_list.offsets))
            if audit_list.event_at(i)["run_id"] == app.runs[-1]
        }
        assert HOSTILE_MARKUP in rows["run.started"]
        assert HOSTILE_LINK + "\\x1b[2J" in rows["policy.intent.received"]
        assert HOSTILE_ANSI not in "".join(rows.values())
        assert all(len(row) < 400 for row in rows.values())  # the 1 MB output is cut
        text = screen_text(app)
        assert HOSTILE_MARKUP in text and HOSTILE_LINK in text and "\\x1b[2J" in text
        # the strips themselves carry no escape and no link style
        for strip in app.screen._compositor.render_strips():
            for seg in strip:
                assert "\x1b" not in seg.text
                assert not (seg.style and seg.style.link)

        executed = next(
            i
            for i in range(len(audit_list.offsets))
            if audit_list.event_at(i)["type"] == "tool.executed"
            and audit_list.event_at(i)["run_id"] == app.runs[-1]
        )
        audit_list.cursor = executed
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, EventDetailScreen), "the detail")
        text = await shown(pilot, "showing the first 20,000 of")
        assert '"content": "[bold' in text  # wrapped at the space, shown literally
        assert "green]ALLOW[/]\\u001b[2J[link=http://x]y[/link]BBB" in text
