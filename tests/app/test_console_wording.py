"""Wording the operator reads (issue 12, friction): counts say "1 step", the step detail says
what the log recorded of a result instead of "the real result was N bytes"."""

from __future__ import annotations

from talon_tui.app.screens.run_timeline import Step, no_fix_reason, step_document
from talon_tui.app.widgets.summaries import counted


def test_counts_are_singular_for_one():
    assert counted(1, "step") == "1 step"
    assert counted(0, "step") == "0 steps"
    assert counted(4, "event") == "4 events"


def _read_step(**extra) -> Step:
    return Step(
        intent_id="int_1",
        seq=3,
        ts="2026-11-25T17:00:00Z",
        tool="file.read",
        params={"path": "notes/plan.md"},
        decision="ALLOW",
        status="ok",
        output={"bytes": 42, "content": "x" * 42, "path": "notes/plan.md"},
        output_bytes=176,
        **extra,
    )


def test_the_step_detail_says_what_was_recorded():
    doc = step_document(_read_step(), "run_1")
    assert "real result" not in doc
    assert "read 42 bytes of notes/plan.md" in doc  # what the tool did
    assert "returned a result of 176 bytes (as JSON)" in doc
    assert "recorded all of it, shown below" in doc


def test_the_step_detail_says_when_the_log_kept_a_shortened_output():
    doc = step_document(_read_step(output_truncated=True, output_redacted=True), "run_1")
    assert "recorded it shortened, shown below" in doc
    assert "«secret:name»" in doc


def test_no_fix_reasons_name_the_cause():
    allowed = _read_step()
    assert "nothing to fix" in (no_fix_reason(allowed) or "")
    by_operator = _read_step(by="operator")
    by_operator.decision = "DENY"
    assert "not by the policy" in (no_fix_reason(by_operator) or "")
    no_override = _read_step(reason="no override allows file.read (path x)")
    no_override.decision = "DENY"
    assert "no narrow override" in (no_fix_reason(no_override) or "")
    assert no_fix_reason(None) == "Select a denied step first."
