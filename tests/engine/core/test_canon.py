"""Every fast path of `core.canon` writes exactly the documented stdlib form (DESIGN section 5)
or refuses: never different bytes for the same value."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from talon_tui.engine.core import canon
from talon_tui.engine.core.canon import MAX_SAFE_INT, NotCanonical


def stdlib(value: Any) -> bytes:
    """DESIGN section 5, written out: the reference every encoder must match."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode(
        "utf-8"
    )


def tag(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


CORPUS: list[Any] = [
    None,
    True,
    False,
    0,
    -1,
    MAX_SAFE_INT,
    -MAX_SAFE_INT,
    "",
    "plain",
    "ü é 中文 🦅",
    "line\u2028sep\u2029para",
    'quote " backslash \\ slash / nul \x00 tab \t del \x7f',
    "\U0001f985",
    [],
    {},
    [[], {}, [[]], {"": {}}],
    {"b": 1, "a": 2, "A": 3, "_": 4, "é": 5, "\u2028": 6, "10": 7, "9": 8},
    {"z": {"y": {"x": [1, {"w": [True, None, "v"]}]}}},
    {"deep": [[[[[[[[[[[[[[[[[[[[["bottom"]]]]]]]]]]]]]]]]]]]]]},
    ("tuple", "is", "a", "list"),
    {"k": ("a", 1)},
]

REFUSED: list[Any] = [
    1.0,
    {"x": 0.5},
    MAX_SAFE_INT + 1,
    -MAX_SAFE_INT - 1,
    2**64,
    "\ud800",
    "lone low \udc00 surrogate",
    "\ud83e\udd85",  # a surrogate pair as two code points is two lone surrogates in a str
    {"\ud800": 1},
    {1: "int key"},
    {"x": b"bytes"},
    {"x": {1, 2}},
    [float("nan")],
]


def _reencoded_or_refused(want: bytes) -> bytes | None:
    """What the verifier's fast path makes of a canonical line (None: it refuses, and the
    stdlib path decides)."""
    try:
        return canon.reencode(json.loads(want))
    except orjson.JSONEncodeError:
        return None


def _exact_or_refused(value: Any) -> bytes | None:
    if not canon.exact_types(value):
        return None
    try:
        return canon.encode_exact(value)
    except orjson.JSONEncodeError:
        return None


@pytest.mark.parametrize("value", CORPUS, ids=repr)
def test_every_encoder_agrees_with_the_stdlib_form(value):
    want = stdlib(value)
    assert canon.canonical(value) == want
    assert canon.canonical_bytes(value) == want
    assert canon.canonical_sha256(value) == tag(want)
    assert _exact_or_refused(value) == want
    assert _reencoded_or_refused(want) in (want, None)
    if abs(value) < MAX_SAFE_INT if type(value) is int else True:
        assert _reencoded_or_refused(want) == want


@pytest.mark.parametrize("value", REFUSED, ids=repr)
def test_what_has_no_canonical_form_is_refused_by_every_encoder(value):
    with pytest.raises(NotCanonical):
        canon.canonical(value)
    with pytest.raises(NotCanonical):
        canon.canonical_bytes(value)
    with pytest.raises(NotCanonical):
        canon.intent_hash("file.read", {"x": value})
    assert _exact_or_refused(value) is None


def test_exact_types_refuses_subclasses():
    class Str(str):
        pass

    class Int(int):
        pass

    for value in (Str("a"), Int(1), {"k": Str("v")}, [Int(2)]):
        assert not canon.exact_types(value)
        with pytest.raises(NotCanonical):
            canon.canonical(value)


@pytest.mark.parametrize("value", CORPUS, ids=repr)
def test_intent_hash_is_sha256_of_the_canonical_tool_and_params(value):
    params = {"v": value}
    assert canon.intent_hash("http.fetch", params) == tag(
        stdlib({"tool": "http.fetch", "params": params})
    )


def test_event_line_hashes_prev_hash_then_the_canonical_event():
    event = {
        "seq": 3,
        "event_id": "evt_0",
        "ts": "2026-11-25T17:00:00.000000Z",
        "session_id": None,
        "run_id": "run_1",
        "type": "tool.executed",
        "prev_hash": "sha256:" + "ab" * 32,
        "data": {"z": "\u2028", "a": [MAX_SAFE_INT, {}]},
    }
    line, h = canon.event_line(event)
    body = stdlib(event)
    assert h == tag(event["prev_hash"].encode() + body)
    assert line == body[:-1] + b',"hash":"' + h.encode() + b'"}\n'
    assert json.loads(line) == {**event, "hash": h}


def test_checkpoint_message_token_segments_and_base64url():
    assert canon.checkpoint_message(41, "sha256:" + "0" * 64) == stdlib(
        {"seq": 41, "hash": "sha256:" + "0" * 64}
    )
    assert canon.token_header({"typ": "x", "alg": "EdDSA"}) == b'{"alg":"EdDSA","typ":"x"}'
    payload = {"sub": "agent é", "n": 1}
    assert canon.token_payload(payload) == json.dumps(payload, separators=(",", ":")).encode()
    for raw in (b"", b"\x00", b"\xff\xfe", bytes(range(256))):
        text = canon.b64url_encode(raw)
        assert "=" not in text and "+" not in text and "/" not in text
        assert canon.b64url_decode(text) == raw
    assert canon.sha256_tag(b"abc") == tag(b"abc")


# --------------------------------------------------------------------------- property

KEYS = st.text(alphabet=st.characters(codec="utf-8"), max_size=6)
SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-MAX_SAFE_INT, max_value=MAX_SAFE_INT)
    | st.text(alphabet=st.characters(codec="utf-8"), max_size=12)
    | st.sampled_from(["\u2028", "\u2029", "\x00", "é", "\U0001f985"])
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(KEYS, inner, max_size=5),
    max_leaves=30,
)
HOSTILE = st.recursive(
    SCALARS
    | st.floats(allow_nan=False)
    | st.integers()
    | st.text(alphabet=st.characters(categories=["Cs"]), min_size=1, max_size=2),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(KEYS, inner, max_size=4),
    max_leaves=20,
)


@pytest.mark.slow
@settings(max_examples=300, deadline=None)
@given(VALUES)
def test_fast_paths_agree_on_any_canonical_value(value):
    want = stdlib(value)
    assert canon.canonical(value) == want
    assert canon.canonical_bytes(value) == want
    assert _exact_or_refused(value) == want
    assert canon.intent_hash("t", value) == tag(stdlib({"tool": "t", "params": value}))
    assert _reencoded_or_refused(want) in (want, None)  # refusing sends it to the stdlib path


@settings(max_examples=300, deadline=None)
@given(HOSTILE)
def test_fast_paths_never_disagree_on_hostile_values(value):
    try:
        want = canon.canonical(value)
    except NotCanonical:
        with pytest.raises(NotCanonical):
            canon.canonical_bytes(value)
        assert _exact_or_refused(value) is None
        return
    assert want == stdlib(value)
    assert canon.canonical_bytes(value) == want
    assert _exact_or_refused(value) == want
