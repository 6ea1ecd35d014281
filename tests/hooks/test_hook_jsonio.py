"""The hook's JSON (`talon_tui/hooks/jsonio.py`) against the standard `json`, input by input:
the same value or the same kind of refusal, the same bytes out."""

from __future__ import annotations

import json
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from talon_tui.hooks import jsonio

DOCS = [
    "{}",
    "[]",
    '{"a": 1, "b": [true, false, null], "c": {"d": "e"}}',
    '  \t\n{"padded": 1}\r\n ',
    '{"dup": 1, "dup": 2}',
    '"just a string"',
    "12",
    "-0",
    "1e400",
    "-1.5e-7",
    "NaN",
    "[Infinity, -Infinity, NaN]",
    '{"big": ' + "9" * 5000 + "}",  # over int's 4300-digit limit: ValueError in both
    "9" * 4300,
    '"\\ud800"',  # a lone surrogate escape
    '"\\ud83d\\ude00"',
    '"caf\u00e9 \u2603"',
    '"tab\there"',  # a raw control character: refused (strict)
    '"bad \\x escape"',
    '{"a": 1,}',
    "[1, 2",
    '{"a" 1}',
    "",
    "   ",
    "{} {}",
    "{}x",
    "nul",
    "\ufeff{}",  # a BOM in a str: refused by json
    "[" * 50 + "]" * 50,
    '{"hook_event_name": "PreToolUse", "tool_input": {"command": "rm -rf / # \\u0000"}}',
]

RAW = [
    b"\xef\xbb\xbf{}",  # UTF-8 BOM: json.loads(bytes) accepts it
    '{"a": "\u00e9"}'.encode("utf-16"),
    '{"a": 1}'.encode("utf-16-le"),
    '{"a": 1}'.encode("utf-32-be"),
    b'{"a": "\xff"}',  # invalid UTF-8
    b'{"a": "\xed\xa0\x80"}',  # an encoded surrogate (surrogatepass)
    b"\x00\x00",
    b"{}\x00",
]


def outcome(fn, arg):
    try:
        return ("ok", repr(fn(arg)))
    except (ValueError, RecursionError) as exc:
        return ("error", type(exc).__name__)


@pytest.mark.parametrize("doc", DOCS)
def test_loads_matches_json_on_text_and_bytes(doc):
    assert outcome(jsonio.loads, doc) == outcome(json.loads, doc)
    raw = doc.encode("utf-8", "surrogatepass")
    assert outcome(jsonio.loads, raw) == outcome(json.loads, raw)


@pytest.mark.parametrize("raw", RAW)
def test_loads_matches_json_on_other_encodings(raw):
    assert outcome(jsonio.loads, raw) == outcome(json.loads, raw)


def test_a_parse_error_is_a_value_error_with_jsons_message():
    with pytest.raises(ValueError, match="Expecting"):
        jsonio.loads(b'{"a": }')
    with pytest.raises(ValueError, match="Extra data"):
        jsonio.loads(b"{} []")


class Odd:
    pass


VALUES = [
    {"id": 1, "op": "decide", "params": {"path": "/tmp/caf\u00e9", "n": [1, 2.5, None, True]}},
    {"s": "\ud800 lone", "ctl": "\x00\x1f\x7f", "quote": '"\\'},
    {1: "int key", 2.5: "float key", False: "bool key", None: "none key"},
    [math.nan, math.inf, -math.inf, 1e400, -0.0, 10**30],
    "top-level string \u2603",
    12,
    None,
    [[[[]]]],
    {"nested": {"deeper": [{"x": "y"}]}},
]


@pytest.mark.parametrize("value", VALUES)
@pytest.mark.parametrize("ensure_ascii", [True, False])
def test_dumps_matches_json(value, ensure_ascii):
    assert jsonio.dumps(value, ensure_ascii=ensure_ascii) == json.dumps(
        value, ensure_ascii=ensure_ascii
    )


@pytest.mark.parametrize("bad", [{"x": Odd()}, [b"bytes"], {("tuple",): 1}, {1, 2}])
def test_dumps_refuses_what_json_refuses(bad):
    with pytest.raises(TypeError):
        json.dumps(bad)
    with pytest.raises(TypeError):
        jsonio.dumps(bad)


def test_a_circular_value_is_refused_and_the_next_call_is_clean():
    loop: list = []
    loop.append(loop)
    with pytest.raises(ValueError, match="Circular"):
        jsonio.dumps(loop)
    shared = [1]
    assert jsonio.dumps([shared, shared]) == "[[1], [1]]"  # shared is not circular
    with pytest.raises(TypeError):
        jsonio.dumps({"a": [Odd()]})
    assert jsonio.dumps({"a": [shared]}) == '{"a": [[1]]}'


_json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.text(), _json_values.map(json.dumps), st.binary()))
def test_loads_agrees_with_json_on_any_input(raw):
    """Arbitrary text, arbitrary JSON documents and arbitrary bytes: the hook decides on what
    it parses, so its parser may never see another value than `json` would."""
    assert outcome(jsonio.loads, raw) == outcome(json.loads, raw)


@settings(max_examples=200, deadline=None)
@given(_json_values, st.booleans())
def test_dumps_agrees_with_json_on_any_value(value, ensure_ascii):
    assert jsonio.dumps(value, ensure_ascii=ensure_ascii) == json.dumps(
        value, ensure_ascii=ensure_ascii
    )
