"""Coloured badges used on every screen: ALLOW green, DENY red, APPROVAL amber, always.

The colours are fixed (not theme variables) so a decision reads the same in every theme and on
every screen; each badge also carries its word, so nothing depends on colour alone.
"""

from __future__ import annotations

from rich.text import Text

from .safe_text import safe_text

ALLOW_STYLE = "bold #0b1f0f on #3fb950"
DENY_STYLE = "bold #ffffff on #d1242f"
APPROVAL_STYLE = "bold #1f1300 on #e3a008"
NEUTRAL_STYLE = "bold #ffffff on #57606a"
INFO_STYLE = "bold #ffffff on #1f6feb"

# foreground-only variants for counts and sparklines
ALLOW_COLOR = "#3fb950"
DENY_COLOR = "#f85149"
APPROVAL_COLOR = "#e3a008"

_DECISIONS = {
    "ALLOW": ("ALLOW", ALLOW_STYLE),
    "DENY": ("DENY", DENY_STYLE),
    "REQUIRE_APPROVAL": ("APPROVAL", APPROVAL_STYLE),
    "APPROVAL": ("APPROVAL", APPROVAL_STYLE),
}

_RUN_STATUS = {
    "running": INFO_STYLE,
    "ok": ALLOW_STYLE,
    "done": ALLOW_STYLE,
    "completed": ALLOW_STYLE,
    "error": DENY_STYLE,
    "failed": DENY_STYLE,
    "denied": DENY_STYLE,
    "waiting": APPROVAL_STYLE,
    "open": ALLOW_STYLE,
    "closed": NEUTRAL_STYLE,
}

_SIGNATURE = {
    "verified": ("✓ verified", ALLOW_STYLE),
    "unsigned": ("unsigned", APPROVAL_STYLE),
    "bad": ("✗ BAD SIGNATURE", DENY_STYLE),
}


def _pill(word: str, style: str) -> Text:
    return Text(f" {word} ", style=style, end="")


def decision_badge(decision: str | None) -> Text:
    """ALLOW / DENY / APPROVAL pill; anything else is shown literally in grey."""
    if not decision:
        return Text("")
    word, style = _DECISIONS.get(decision.upper(), (None, NEUTRAL_STYLE))
    if word is None:
        return Text.assemble(" ", safe_text(decision, 16), " ", style=NEUTRAL_STYLE)
    return _pill(word, style)


def status_badge(status: str | None) -> Text:
    """Run or session status pill (running blue, ok green, error/denied red, closed grey)."""
    status = status or "?"
    style = _RUN_STATUS.get(status.lower(), NEUTRAL_STYLE)
    return Text.assemble(" ", safe_text(status, 16), " ", style=style)


def signature_badge(status: str | None) -> Text:
    word, style = _SIGNATURE.get(status or "", (status or "?", NEUTRAL_STYLE))
    return _pill(word, style)


def decision_color(decision: str | None) -> str:
    return {
        "ALLOW": ALLOW_COLOR,
        "DENY": DENY_COLOR,
        "REQUIRE_APPROVAL": APPROVAL_COLOR,
        "APPROVAL": APPROVAL_COLOR,
    }.get((decision or "").upper(), "#8b949e")
