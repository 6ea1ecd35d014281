"""One audit event as one screen line: seq, time, type, decision badge, session, run, summary.

Every value that came from an agent (params, paths, outputs, reasons, labels) goes through
`safe_text`, so it is literal, control characters are visible and long values end in `…`.
"""

from __future__ import annotations

from typing import Any

from rich.text import Text

from ...engine.console_api import event_decision
from .badges import decision_badge
from .safe_text import safe_text
from .summaries import intent_target, result_summary

SUMMARY_MAX = 160
SEQ_W, TIME_W, TYPE_W, SESSION_W, RUN_W, BADGE_W = 7, 8, 22, 16, 16, 10
# under this many columns a row drops the run id and the "policy." of the type, and the session
# column narrows, so that the tool and its target stay on screen at 80 columns
NARROW_BELOW = 110
NARROW_SEQ_W, NARROW_TYPE_W, NARROW_SESSION_W, NARROW_BADGE_W = 6, 14, 10, 10


def _cell(value: Any, width: int, style: str = "") -> Text:
    text = safe_text(value if value not in (None, "") else "—", width, style=style)
    text.pad_right(width - text.cell_len)
    return text


def short_id(value: Any) -> Any:
    """`sess_3f9c…`/`run_…` without the prefix (the column says which it is)."""
    if isinstance(value, str):
        return value.partition("_")[2] or value
    return value


def summary(event: dict[str, Any]) -> Text:
    """A few words on what the event says (agent data literal)."""
    data = event.get("data")
    data = data if isinstance(data, dict) else {}
    etype = event.get("type")
    tool = data.get("tool")
    out = Text(end="")
    if etype == "policy.intent.received":
        out.append_text(safe_text(tool, 20, style="bold"))
        out.append(" ")
        out.append_text(safe_text(intent_target(data.get("params")), SUMMARY_MAX))
    elif etype == "policy.decision":
        out.append_text(safe_text(tool, 20, style="bold"))
        out.append(f" by {data.get('by', 'policy')}: ", style="dim")
        out.append_text(safe_text(data.get("reason"), SUMMARY_MAX))
    elif etype == "tool.executed":
        out.append_text(safe_text(tool, 20, style="bold"))
        out.append(" ")
        status = data.get("status")
        words = result_summary(tool, None, data.get("output"), status if status != "ok" else None)
        if data.get("message"):
            words = f"{words}: {data.get('message')}" if words else str(data.get("message"))
        out.append_text(safe_text(words, SUMMARY_MAX))
    elif etype in ("approval.requested", "approval.decided"):
        out.append_text(safe_text(tool or data.get("approval_id"), 30, style="bold"))
        out.append(" ")
        if etype == "approval.requested":
            out.append_text(safe_text(intent_target(data.get("params")), SUMMARY_MAX))
        else:
            how = "timed out" if data.get("timed_out") else f"by {data.get('by')}"
            out.append_text(safe_text(how, 40))
    elif etype == "capability.issued":
        out.append_text(safe_text(tool, 20, style="bold"))
        out.append(" token ", style="dim")
        out.append_text(safe_text(data.get("token_sha256"), 24))
    elif etype == "run.started":
        out.append_text(safe_text(data.get("subject"), 30, style="bold"))
        out.append(" ")
        out.append_text(safe_text(data.get("content"), SUMMARY_MAX))
    elif etype == "run.finished":
        steps = data.get("steps")
        noun = "step" if steps == 1 else "steps"
        out.append_text(safe_text(f"{data.get('status')} after {steps} {noun}", 60))
    elif etype == "session.created":
        out.append_text(safe_text(data.get("label"), 40, style="bold"))
        out.append(" ")
        out.append_text(safe_text(data.get("workspace"), SUMMARY_MAX, style="dim"))
    elif etype == "audit.checkpoint":
        out.append(f"signed through seq {data.get('checkpoint_seq')}", style="dim")
    elif etype == "engine.started":
        out.append_text(safe_text(f"version {data.get('version')}", 40, style="dim"))
    else:
        out.append_text(safe_text(data, SUMMARY_MAX, style="dim"))
    return out


def session_name(session_id: Any, labels: dict[str, str] | None) -> Any:
    """The session's label when it is known, else its id without the `sess_` prefix."""
    if isinstance(session_id, str) and labels and session_id in labels:
        return labels[session_id]
    return short_id(session_id)


def event_row(
    event: dict[str, Any],
    *,
    show_session: bool = True,
    labels: dict[str, str] | None = None,
    narrow: bool = False,
) -> Text:
    """The whole line, unstyled background (the list adds the cursor style). Sessions show by
    label (`labels`: id -> label); `narrow` fits 80 columns (no run id, shorter type)."""
    seq = event.get("seq")
    ts = event.get("ts")
    time = ts[11:19] if isinstance(ts, str) and len(ts) >= 19 else ts
    row = Text(no_wrap=True, end="")
    row.append_text(
        _cell(seq if isinstance(seq, int) else "?", NARROW_SEQ_W if narrow else SEQ_W, "bold")
    )
    row.append(" ")
    row.append_text(_cell(time, TIME_W, "dim"))
    row.append(" ")
    etype = event.get("type")
    if narrow and isinstance(etype, str) and etype.startswith("policy."):
        etype = etype[len("policy.") :]
    row.append_text(_cell(etype, NARROW_TYPE_W if narrow else TYPE_W, "cyan"))
    row.append(" ")
    # The decision comes before the ids so that a narrow terminal (80 columns) cuts ids, not it.
    badge = decision_badge(event_decision(event))
    badge.pad_right((NARROW_BADGE_W if narrow else BADGE_W) - badge.cell_len)
    row.append_text(badge)
    row.append(" ")
    if show_session:
        name = session_name(event.get("session_id"), labels)
        row.append_text(_cell(name, NARROW_SESSION_W if narrow else SESSION_W, "dim"))
        row.append(" ")
    if not narrow:  # the run id is in the event's JSON (enter)
        row.append_text(_cell(short_id(event.get("run_id")), RUN_W, "dim"))
        row.append(" ")
    row.append_text(summary(event))
    return row


def unreadable_row(offset: int, problem: str) -> Text:
    return Text.assemble(
        (f"{'?':>{SEQ_W}} ", "bold red"),
        (f"line at byte {offset} is not an audit event: ", "red"),
        safe_text(problem, 80, style="red"),
        no_wrap=True,
        end="",
    )
