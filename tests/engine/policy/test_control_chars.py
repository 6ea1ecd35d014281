"""Control and format characters in paths are refused the same whether the path is ASCII
(one regex scan) or not (a Unicode category per character): every ASCII character is tried,
and the non-ASCII ones that must still be caught."""

from __future__ import annotations

import unicodedata

import pytest

from talon_tui.engine.errors import ConstraintViolation
from talon_tui.engine.policy.checks import normalize_rel_path


@pytest.mark.parametrize("code", range(0x80))
def test_every_ascii_character(code):
    ch = chr(code)
    path = f"work/a{ch}b.txt"
    control = code < 0x20 or code == 0x7F
    assert control == (unicodedata.category(ch) in ("Cc", "Cf", "Zl", "Zp"))
    if ch in ("/", "\\") or not control and code:
        if ch == "\\":
            with pytest.raises(ConstraintViolation, match="backslash"):
                normalize_rel_path(path)
        else:
            normalize_rel_path(path)
        return
    with pytest.raises(ConstraintViolation) as info:
        normalize_rel_path(path)
    expected = "NUL byte" if code == 0 else f"control character (U+{code:04X})"
    assert expected in info.value.message


@pytest.mark.parametrize(
    "ch", ["\u0085", "\u009f", "\u200e", "\u202e", "\u2028", "\u2029", "\ufeff", "\u00ad"]
)
def test_non_ascii_control_and_format_characters(ch):
    with pytest.raises(ConstraintViolation, match=f"U\\+{ord(ch):04X}"):
        normalize_rel_path(f"work/é{ch}.txt")
    normalize_rel_path("work/é.txt")  # non-ASCII alone is fine


def test_the_first_control_character_is_named():
    with pytest.raises(ConstraintViolation, match="U\\+0009"):
        normalize_rel_path("work/a\tb\x01c")
    with pytest.raises(ConstraintViolation, match="U\\+200E"):
        normalize_rel_path("work/é\u200eb\x01c")
