"""The pipe's frame parser: the orjson fast path must accept and refuse exactly what the
strict reference parser (stdlib json, duplicate keys and NaN refused) does, with the same
values and the same messages."""

from __future__ import annotations

import json
import random

import pytest

from talon_tui.engine.errors import BadRequest
from talon_tui.engine.pipe.server import MAX_DEPTH, fast_frame, parse_frame, strict_frame


def outcome(fn, line: bytes):
    try:
        return ("ok", repr(fn(line)))
    except BadRequest as exc:
        return ("err", str(exc))


def same(line: bytes) -> None:
    assert outcome(parse_frame, line) == outcome(strict_frame, line), line


HOSTILE = [
    b'{"a":1,"a":2}',
    b'{"a":1,"\\u0061":2}',
    b'{"\\u0061":1,"a":2}',
    b'{"a\\u0062":1,"ab":2}',
    b'{"\\/":1,"/":2}',
    b'{"x":{"b":1,"b":2}}',
    b'{"x":[{"k":1},{"k":1,"k":2}]}',
    b'{"x":[[[[{"deep":1,"deep":1}]]]]}',
    b'{"a" : 1 , "a"\t:\n2}',
    b'{"a":"\\"a\\":1","a":2}',
    b'{"a":"a:","b":"\\\\","c":"\\\\\\"","c":1}',
    b'{"k":"\\u00e9","\\u00e9":1,"\xc3\xa9":2}',
    b'{"a":"\\ud800"}',
    b'{"a":"\\udc00\\ud800"}',
    b'{"a":"\\ud83d\\ude00","b":"\xf0\x9f\x98\x80"}',
    b'{"a":1e400}',
    b'{"a":1.5}',
    b'{"a":-0.0,"b":-0}',
    b'{"a":123456789012345678901234567890}',
    b'{"a":18446744073709551615,"b":18446744073709551616,"c":-9223372036854775809}',
    b'{"a":9007199254740993}',
    b'{"a":NaN}',
    b'{"a":Infinity}',
    b'{"a":-Infinity}',
    b'\xef\xbb\xbf{"a":1}',
    b'{"a":"\xed\xa0\x80"}',
    b'{"a":"\xff"}',
    b'{"a":"x\x01"}',
    b'{"a":"\x7f"}',
    b'{"a":"\\u0000"}',
    b'{"a":1}\x00',
    b'{"a":1,}',
    b'{"a":[1,]}',
    b'{"a":01}',
    b"{'a':1}",
    b"[1,2]",
    b'"x"',
    b"1",
    b"null",
    b"{}",
    b' {"a":1} ',
    b'{"":1,"":2}',
    b'{"":{"":{}}}',
    b'{"op":"intent","tool":"file.read","params":{"path":"work/a.txt"},"id":3}',
    b'{"a":true,"b":false,"c":null,"d":[],"e":{}}',
    b'{"a":[{"b":[{"c":[{"d":1}]}]}]}',
]


@pytest.mark.parametrize("line", HOSTILE)
def test_hostile_frames_same_as_strict(line: bytes) -> None:
    same(line)


def test_duplicates_are_refused_however_spelt_or_deep() -> None:
    for line in (
        b'{"a":1,"\\u0061":2}',
        b'{"x":{"y":[{"z":{"q":1,"\\u0071":2}}]}}',
        b'{"a":"\\u0061","b":{"c":1,"c":1}}',
    ):
        with pytest.raises(BadRequest, match="duplicate key"):
            parse_frame(line)
        assert fast_frame(line) is None


def nest(depth: int) -> bytes:
    return b'{"a":' * (depth - 1) + b"{}" + b"}" * (depth - 1)


def test_depth_limit_same_as_strict() -> None:
    for depth in (MAX_DEPTH - 1, MAX_DEPTH, MAX_DEPTH + 1, 200, 2000):
        same(nest(depth))
        same(b'{"a":' + b"[" * depth + b"]" * depth + b"}")
    assert parse_frame(nest(MAX_DEPTH))
    with pytest.raises(BadRequest, match="nests deeper"):
        parse_frame(nest(MAX_DEPTH + 1))


def test_fast_path_is_taken_for_ordinary_frames() -> None:
    line = b'{"id":1,"op":"intent","tool":"file.read","params":{"path":"a:b","n":[1,{"k":"v"}]}}'
    assert fast_frame(line) == json.loads(line)


KEYS = ["a", "b", "\\u0061", "\\u0062", "a\\\\", 'a\\"', "\\/", "/", "", "\u00e9", "\\u00e9"]
SCALARS = [
    "1",
    "-0",
    "0.5",
    "1e3",
    '"s"',
    '"a:b"',
    '"\\\\"',
    '"\\""',
    "true",
    "null",
    '"\\ud800"',
    "99999999999999999999",
    "NaN",
    '"\u00e9"',
]


def random_doc(rng: random.Random, depth: int = 0) -> str:
    if depth > 4 or rng.random() < 0.3:
        return rng.choice(SCALARS)
    if rng.random() < 0.3:
        return "[" + ",".join(random_doc(rng, depth + 1) for _ in range(rng.randint(0, 3))) + "]"
    n = rng.randint(0, 4)
    ws = rng.choice(["", " ", "\t", "\n ", "\r\n"])
    members = [f'"{rng.choice(KEYS)}"{ws}:{ws}{random_doc(rng, depth + 1)}' for _ in range(n)]
    return "{" + ",".join(members) + "}"


def test_random_documents_same_as_strict() -> None:
    rng = random.Random(4)
    for _ in range(5000):
        doc = random_doc(rng).encode("utf-8")
        same(b'{"x":' + doc + b"}")
        same(doc)
        if doc and rng.random() < 0.3:  # and some byte-level damage
            i = rng.randrange(len(doc))
            same(doc[:i] + bytes([rng.randrange(256)]) + doc[i + 1 :])
