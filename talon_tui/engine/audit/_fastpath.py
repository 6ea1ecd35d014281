"""The bulk fast path of `verify`: whole blocks of lines, and single lines, exactly as
our writer makes them are checked with C-level calls; anything else is left to the sequential
checks in `verify`, which decide exactly as the original pass did.
"""

from __future__ import annotations

import hashlib
import re
from collections import deque
from dataclasses import dataclass, field
from itertools import chain, repeat
from operator import add, itemgetter, methodcaller
from typing import Any

import orjson
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from ..core.canon import HASH_PREFIX, reencode
from .checkpoint import CHECKPOINT_TYPE, TS_RE, Damage, Stretch, check_checkpoint
from .index import ZERO_HASH

_HASH_AT = b',"hash":"'
_ID_FIELDS = ("session_id", "run_id", "ts", "event_id")
_ID_TYPES = (str, type(None))

_loads, sha256 = orjson.loads, hashlib.sha256
_HEAD = itemgetter(slice(None, -82))  # a line (no newline) without `,"hash":"sha256:…"}`
_TAIL = itemgetter(slice(-82, None))
# seq, prev_hash, type, data, then the fields that must be a str or null (_ID_FIELDS)
_ENVELOPE = itemgetter("seq", "prev_hash", "type", "data", "event_id", "run_id", "session_id", "ts")
_HEXDIGEST = methodcaller("hexdigest")
_DICT_ONLY, _INT_ONLY, _STR_ONLY = {dict}, {int}, {str}
_ID_TYPE_SET = {str, type(None)}
#: a block's ts values joined by newlines, every one in the writer's layout (one C-level call)
_TS_BLOCK = re.compile(rf"(?:{TS_RE.pattern}\n)*{TS_RE.pattern}").fullmatch
# Number shape: digits and signs become "0", "." and "E" become "e", "," and "[" become ":".
# In compact JSON a float is a number token with a fraction or an exponent, after `:` `,` or
# `[` and before `,` `}` or `]`, so it always shows up as ":0…e0…" then ":", "}" or "]". A
# match inside a string is only a false alarm: the block is then checked line by line.
_NUMBER_SHAPE = bytes.maketrans(b"0123456789+-.E,[", b"000000000000ee::")
_FLOAT_SHAPE = re.compile(rb":0+e0+(?:e0+)?[:}\]]")


@dataclass
class Chunk:
    start: int
    end: int
    count: int = 0
    first_seq: int | None = None
    first_prev: str | None = None
    last_seq: int | None = None
    last_hash: str | None = None
    error: tuple[str, int | None, str] | None = None
    signed_seq: int | None = None
    head_match: bool | None = None
    witness_hash: str | None = None  # the hash found at the witness's seq
    #: stretches closed by a checkpoint in this range, in order (the first may continue one
    #: that began before the range), and the stretch still open at its end
    closed: list[Stretch] = field(default_factory=list)
    open: Stretch = field(default_factory=Stretch)


class ScanState:
    """What a scan expects next and what it has found so far."""

    __slots__ = ("expect_prev", "expect_seq", "head", "kid", "pub", "res", "witness_seq")

    def __init__(
        self,
        res: Chunk,
        expect_seq: int | None,
        expect_prev: str | None,
        pub: Ed25519PublicKey | None,
        kid: str | None,
        head: tuple[int, str] | None,
    ) -> None:
        self.res, self.expect_seq, self.expect_prev = res, expect_seq, expect_prev
        self.pub, self.kid, self.head = pub, kid, head
        self.witness_seq: int | None = None


def has_float(value: Any) -> bool:
    stack = [value]
    pop, extend = stack.pop, stack.extend
    while stack:
        v = pop()
        t = type(v)
        if t is dict:
            extend(v.values())
        elif t is list:
            extend(v)
        elif t is float:
            return True
    return False


def fast_block(lines: list[bytes], st: ScanState) -> bool:
    """Check whole lines (newlines stripped) in bulk; True only if every one is good and linked.

    Accepts a block only when each line would pass `fast_event` and the sequential link
    checks, so its verdict never differs from the line-by-line pass; False changes nothing
    in `st` and sends the block back to `_check_one`. The argument, step by step:

    * every line parses (orjson) as an object; popping "hash" leaves its other members;
    * D = canon.reencode([those objects]) (sorted keys, 53-bit integers) equals
      T = "[" + ",".join(line[:-82] + "}") + "]": each line minus its last 82 bytes, closed.
      Both are JSON arrays and a JSON text has one parse, so element i of D (the canonical
      form of event i without its hash) is byte-for-byte the raw body of line i;
    * the last 82 bytes of each line are `,"hash":"sha256:` + the sha256 of prev_hash + body
      + `"}`, so the hash member is the line's last, top-level member and holds that value;
    * no float anywhere (they have no single canonical form; see `_FLOAT_SHAPE`), envelope
      types as `fast_event` requires, seq consecutive and prev_hash linked.
    """
    n = len(lines)
    try:
        evs = list(map(_loads, lines))
        if set(map(type, evs)) != _DICT_ONLY:
            return False
        deque(map(dict.pop, evs, repeat("hash", n)), maxlen=0)  # KeyError if one is missing
        bodies = list(map(add, map(_HEAD, lines), repeat(b"}", n)))
        text = b",".join(bodies)
        if reencode(evs) != b"[" + text + b"]":
            return False
        seqs, prevs, types, datas, *ids = zip(*map(_ENVELOPE, evs), strict=True)
        prev_b = list(map(str.encode, prevs))  # TypeError unless every prev_hash is a str
    except (orjson.JSONDecodeError, orjson.JSONEncodeError, KeyError, TypeError):
        return False
    first = seqs[0]
    if (
        set(map(type, seqs)) != _INT_ONLY
        or seqs != tuple(range(first, first + n))
        or set(map(type, types)) != _STR_ONLY
        or set(map(type, datas)) != _DICT_ONLY
        or not set(map(type, chain.from_iterable(ids))) <= _ID_TYPE_SET
        or _FLOAT_SHAPE.search(text.translate(_NUMBER_SHAPE)) is not None
    ):
        return False
    stamps = ids[3]  # ts, in _ENVELOPE order: every one in the writer's layout
    if set(map(type, stamps)) != _STR_ONLY or _TS_BLOCK("\n".join(stamps)) is None:
        return False
    digests = list(map(_HEXDIGEST, map(sha256, map(add, prev_b, bodies))))
    tails = ',"hash":"sha256:' + '"},"hash":"sha256:'.join(digests) + '"}'
    if b"".join(map(_TAIL, lines)) != tails.encode():
        return False
    hashes = tuple(map(add, repeat(HASH_PREFIX, n), digests))
    if prevs[1:] != hashes[:-1]:
        return False
    if st.expect_seq is not None:
        if first != st.expect_seq or prevs[0] != st.expect_prev:
            return False
    elif first == 0 and prevs[0] != ZERO_HASH:
        return False
    res = st.res
    signed = res.signed_seq
    cuts: list[int] = []
    if CHECKPOINT_TYPE in types:
        for i, t in enumerate(types):
            if t == CHECKPOINT_TYPE:
                try:
                    signed = check_checkpoint(evs[i], st.pub, st.kid)
                except Damage:
                    return False
                cuts.append(i)
    head = st.head
    if head is not None and first <= head[0] < first + n:
        res.head_match = hashes[head[0] - first] == head[1]
    witness = st.witness_seq
    if witness is not None and first <= witness < first + n:
        res.witness_hash = hashes[witness - first]
    start = 0
    for cut in (*cuts, n):  # the stretches between the checkpoints of this block
        if cut > start:
            piece = stamps[start:cut]
            res.open.add(first + start, first + cut - 1, cut - start, min(piece), max(piece))
        if cut < n:
            res.closed.append(res.open)
            res.open = Stretch()
        start = cut + 1
    res.signed_seq = signed
    if res.first_seq is None:
        res.first_seq, res.first_prev = first, prevs[0]
    res.last_seq, res.last_hash = first + n - 1, hashes[-1]
    res.count += n
    st.expect_seq, st.expect_prev = first + n, hashes[-1]
    return True


def fast_event(line: bytes, loads: Any, dumps: Any, sha256: Any) -> dict[str, Any] | None:
    """The event if `line` is exactly as our writer makes it and its hash holds, else None.

    None means "look closer": `_check_line` then decides, with the stdlib canonical form.
    """
    n = len(line)
    if line[n - 83 : n - 74] != _HASH_AT or line[n - 3 :] != b'"}\n':
        return None
    try:
        ev = loads(line)
    except orjson.JSONDecodeError:
        return None
    if type(ev) is not dict:
        return None
    h = ev.pop("hash", None)
    prev, data = ev.get("prev_hash"), ev.get("data")
    if not (
        type(h) is str
        and type(prev) is str
        and type(ev.get("seq")) is int
        and type(ev.get("type")) is str
        and type(data) is dict
        and all(type(ev.get(k)) in _ID_TYPES for k in _ID_FIELDS)
        and line[n - 74 : n - 3] == h.encode()
    ):
        return None
    try:
        canon = dumps(ev)
    except orjson.JSONEncodeError:
        return None
    if canon[:-1] != line[: n - 83] or has_float(ev):  # floats anywhere, as _line_hash
        return None
    if HASH_PREFIX + sha256(prev.encode() + canon).hexdigest() != h:
        return None
    ev["hash"] = h
    return ev
