"""`safe_text`: the one place agent-controlled values become screen text. Hostile inputs render
literally (no markup, no links, no styles taken from the input), control and invisible
characters are written out, and long values are cut to terminal cells with an ellipsis."""

from __future__ import annotations

import time

import pytest
from rich.cells import cell_len
from rich.console import Console

from talon_tui.app.widgets.safe_text import (
    ELLIPSIS,
    cut,
    labelled,
    safe_plain,
    safe_text,
    visible,
)


def rendered(text) -> str:
    """What a terminal would show for `text`, as plain characters (styles dropped)."""
    console = Console(width=400, color_system=None, record=True, legacy_windows=False)
    console.print(text, end="")
    return console.export_text(styles=False)


def assert_no_input_styles(text) -> None:
    """No span and no link may come from the input: the only style is the one we pass."""
    assert text.spans == []
    assert not any("link" in str(span.style) for span in text.spans)


@pytest.mark.parametrize(
    "hostile",
    ["[bold green]ALLOW[/]", "[link=http://x]y[/link]", "[red]DENY[/red] [@click=app.quit]x[/]"],
)
def test_markup_is_shown_literally(hostile):
    text = safe_text(hostile)
    assert text.plain == hostile
    assert rendered(text) == hostile
    assert_no_input_styles(text)
    assert text.style == ""


def test_our_style_is_the_only_style():
    text = safe_text("[bold green]ALLOW[/]", style="dim")
    assert text.style == "dim"
    assert text.spans == []


def test_ansi_escape_is_written_out():
    text = safe_text("before\x1b[2Jafter\x1b]8;;http://x\x07link")
    assert text.plain == "before\\x1b[2Jafter\\x1b]8;;http://x\\x07link"
    assert "\x1b" not in rendered(text)
    assert_no_input_styles(text)


def test_c0_and_c1_controls_and_delete_are_written_out():
    assert safe_plain("a\x00b\x07c\x7fd") == "a\\x00b\\x07c\\x7fd"
    # C1: CSI (0x9b) can start an escape sequence on some terminals, NEL (0x85) moves lines
    assert safe_plain("x\x9b2Jy\x85z") == "x\\x9b2Jy\\x85z"


@pytest.mark.parametrize(
    ("hostile", "shown"),
    [
        ("abc\u202edef", "abc\\u202edef"),  # right-to-left override
        ("a\u2066b\u2069c", "a\\u2066b\\u2069c"),  # isolates
        ("\u200fx\u200e", "\\u200fx\\u200e"),  # RLM / LRM
        ("pass\u200bword", "pass\\u200bword"),  # zero-width space
        ("a\u200cb\u200dc\u2060d\ufeffe", "a\\u200cb\\u200dc\\u2060d\\ufeffe"),
        ("soft\u00adhyphen", "soft\\xadhyphen"),
        ("tag\U000e0041s", "tag\\U000e0041s"),  # invisible tag characters
        ("line\u2028sep", "line\\u2028sep"),
    ],
)
def test_bidi_and_invisible_characters_are_written_out(hostile, shown):
    assert safe_plain(hostile) == shown


def test_tabs_and_newlines():
    assert safe_plain("a\tb\nc\rd") == "a\\tb\\nc\\rd"
    text = safe_text("one\ntwo\tthree", multiline=True)
    assert text.plain == "one\ntwo\\tthree"  # multiline keeps real line breaks only
    assert not text.no_wrap


def test_ordinary_text_is_untouched():
    for value in ("notes/plan.md", "Grüße", "日本語", "emoji 🙂", "a b  c"):
        assert safe_plain(value) == value
        assert visible(value) == value


def test_non_strings_are_compact_json():
    assert safe_plain({"b": 1, "a": "[x]"}) == '{"a": "[x]", "b": 1}'
    assert safe_plain(None) == ""
    assert safe_plain(["\x1b"]) == '["\\u001b"]'  # json.dumps escapes it already


def test_one_megabyte_is_cut_fast_with_an_ellipsis():
    big = "A" * (1 << 20)
    start = time.perf_counter()
    for _ in range(100):
        text = safe_text(big, 80)
    elapsed = time.perf_counter() - start
    assert text.plain == "A" * 79 + ELLIPSIS
    assert text.cell_len == 80
    assert elapsed < 0.5, f"100 cuts of 1 MB took {elapsed:.3f}s"


def test_one_megabyte_of_controls_is_cut_fast():
    big = "\x1b" * (1 << 20)
    start = time.perf_counter()
    text = safe_text(big, 40)
    assert time.perf_counter() - start < 0.05
    assert text.cell_len <= 40
    assert text.plain.endswith(ELLIPSIS)
    assert "\x1b" not in text.plain


def test_wide_characters_are_cut_at_cell_width():
    text = safe_text("漢字漢字漢字", 7)  # 12 cells
    assert text.plain == "漢字漢" + ELLIPSIS
    assert text.cell_len == 7
    text = safe_text("漢字漢字漢字", 8)
    assert text.cell_len <= 8
    assert text.plain == "漢字漢" + ELLIPSIS  # never half a wide character
    assert safe_plain("漢字", 4) == "漢字"  # fits exactly: not cut


def test_cut_counts_cells():
    assert cut("abcdef", 4) == "abc" + ELLIPSIS
    assert cut("abc", 3) == "abc"
    assert cut("日本語テキスト", 5) == "日本" + ELLIPSIS
    assert cell_len(cut("x日本語", 4)) <= 4


def test_escapes_count_towards_the_length():
    text = safe_text("\x1b" * 10, 12)
    assert text.cell_len == 12
    assert text.plain.endswith(ELLIPSIS)


def test_value_longer_than_its_visible_prefix_still_gets_an_ellipsis():
    # combining marks take no cell: the prefix fits, but the value was cut
    value = "e\u0301" * 100
    text = safe_text(value, 10)
    assert text.plain.endswith(ELLIPSIS)
    assert text.cell_len <= 10


def test_labelled_keeps_the_value_literal():
    text = labelled("path", "[bold]x[/bold]\x1b")
    assert text.plain == "path: [bold]x[/bold]\\x1b"
    # only our own label carries a style
    assert all(span.end <= len("path: ") for span in text.spans)
