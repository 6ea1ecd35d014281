"""Verify the audit log (DESIGN section 5) in constant memory, using every core.

Each line's hash depends only on the line itself (it carries its own prev_hash), so byte
ranges of the file are checked in worker processes; the links between ranges (seq and
prev_hash continuity) are stitched together in order afterwards. When anything is wrong, the
first damaged range is re-scanned sequentially from a trusted starting point, so the report
always names the first bad seq and the kind of damage exactly as a sequential pass would.
"""

from __future__ import annotations

import base64
import gc
import hashlib
import itertools
import json
import multiprocessing
import os
import re
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from itertools import chain, repeat
from operator import add, itemgetter, methodcaller
from pathlib import Path
from typing import Any

import orjson
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from .api import VerifyReport
from .audit_index import HEAD_NAME, ZERO_HASH, AuditLogMissing, log_path, split_hash
from .canon import NotCanonical, canonical

Progress = Callable[[int, int], None]
_ORJSON_OPTS = orjson.OPT_SORT_KEYS | orjson.OPT_STRICT_INTEGER
CHECKPOINT_TYPE = "audit.checkpoint"
PARALLEL_MIN_BYTES = 8 << 20
_HASH_AT = b',"hash":"'
_ID_FIELDS = ("session_id", "run_id", "ts", "event_id")
_ID_TYPES = (str, type(None))
CHUNK_BYTES = 8 << 20
BLOCK_BYTES = 64 << 10  # lines checked together by _fast_block (small enough to stay in cache)

_loads, _dumps, sha256 = orjson.loads, orjson.dumps, hashlib.sha256
_HEAD = itemgetter(slice(None, -82))  # a line (no newline) without `,"hash":"sha256:…"}`
_TAIL = itemgetter(slice(-82, None))
# seq, prev_hash, type, data, then the fields that must be a str or null (_ID_FIELDS)
_ENVELOPE = itemgetter("seq", "prev_hash", "type", "data", "event_id", "run_id", "session_id", "ts")
_HEXDIGEST = methodcaller("hexdigest")
_DICT_ONLY, _INT_ONLY, _STR_ONLY = {dict}, {int}, {str}
_ID_TYPE_SET = {str, type(None)}
# Number shape: digits and signs become "0", "." and "E" become "e", "," and "[" become ":".
# In compact JSON a float is a number token with a fraction or an exponent, after `:` `,` or
# `[` and before `,` `}` or `]`, so it always shows up as ":0…e0…" then ":", "}" or "]". A
# match inside a string is only a false alarm: the block is then checked line by line.
_NUMBER_SHAPE = bytes.maketrans(b"0123456789+-.E,[", b"000000000000ee::")
_FLOAT_SHAPE = re.compile(rb":0+e0+(?:e0+)?[:}\]]")


def key_id(public_key: Ed25519PublicKey) -> str:
    """`sha256:` + hex sha256 of the raw 32-byte public key."""
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return "sha256:" + hashlib.sha256(raw).hexdigest()


def checkpoint_message(seq: int, hash_: str) -> bytes:
    return canonical({"seq": seq, "hash": hash_})


def b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _has_float(value: Any) -> bool:
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


class _Bad(Exception):
    def __init__(self, damage: str, seq: int | None, message: str) -> None:
        super().__init__(message)
        self.damage, self.seq, self.message = damage, seq, message


@dataclass
class _Chunk:
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


def _line_hash(line: bytes, ev: dict[str, Any]) -> str:
    """The hash the DESIGN rule gives for this event (fast path when the bytes are canonical)."""
    parts = split_hash(line)
    prev = ev["prev_hash"]
    if parts is not None and parts[1] == ev["hash"]:
        body = parts[0]
        without = dict(ev)
        del without["hash"]
        try:
            canon = orjson.dumps(without, option=_ORJSON_OPTS)
        except orjson.JSONEncodeError:
            canon = b""
        if canon == body and not _has_float(without):
            return "sha256:" + hashlib.sha256(prev.encode() + body).hexdigest()
    try:
        std = json.loads(line)
        std.pop("hash", None)
        canon = canonical(std)
    except (ValueError, NotCanonical) as exc:
        raise _Bad("modified", ev.get("seq"), f"event is not canonical JSON ({exc})") from exc
    return "sha256:" + hashlib.sha256(prev.encode() + canon).hexdigest()


def _check_checkpoint(ev: dict[str, Any], pub: Ed25519PublicKey | None, kid: str | None) -> int:
    seq = ev["seq"]
    data = ev.get("data")
    if not isinstance(data, dict):
        raise _Bad("bad_signature", seq, f"checkpoint {seq} has no data")
    cseq, chash, sig = (
        data.get("checkpoint_seq"),
        data.get("checkpoint_hash"),
        data.get("signature"),
    )
    if cseq != seq - 1 or chash != ev["prev_hash"]:
        raise _Bad(
            "bad_signature",
            seq,
            f"checkpoint {seq} signs seq {cseq} / {chash}, not the event before it "
            "(the log was rewritten after it was signed)",
        )
    if pub is None:
        raise _Bad("bad_signature", seq, f"checkpoint {seq}: no public key to check it with")
    if data.get("key_id") != kid:
        raise _Bad("bad_signature", seq, f"checkpoint {seq} was signed by another key")
    try:
        pub.verify(b64url_decode(str(sig)), checkpoint_message(cseq, chash))
    except (InvalidSignature, ValueError) as exc:
        raise _Bad(
            "bad_signature",
            seq,
            f"checkpoint {seq}: signature does not verify (rewritten without the key)",
        ) from exc
    return cseq


def _find_seq(path: Path, offset: int, seq: int) -> bool:
    """Whether an event with `seq` appears at or after byte `offset` (damage diagnosis only)."""
    needle = b',"seq":%d,' % seq
    with open(path, "rb") as fh:
        fh.seek(offset)
        for line in fh:
            if needle in line:
                try:
                    if orjson.loads(line).get("seq") == seq:
                        return True
                except orjson.JSONDecodeError:
                    continue
    return False


def _scan(
    path: str,
    start: int,
    end: int,
    expect_seq: int | None,
    expect_prev: str | None,
    pub_raw: bytes | None,
    head: tuple[int, str] | None,
    file_size: int,
    progress: Progress | None = None,
) -> _Chunk:
    """Check every line starting in [start, end). With no expectation, trust the first link.

    Blocks of whole lines go through `_fast_block`, which checks them all at once in C-level
    calls; a block it cannot vouch for (any damage, or anything unusual such as a float, a big
    integer or an escape that re-encodes differently) is re-checked line by line by
    `_check_one`, which decides exactly as the original sequential pass did.
    """
    pub = Ed25519PublicKey.from_public_bytes(pub_raw) if pub_raw else None
    kid = key_id(pub) if pub else None
    st = _ScanState(_Chunk(start=start, end=end), expect_seq, expect_prev, pub, kid, head)
    gc_was_enabled = gc.isenabled()
    gc.disable()  # parsed events hold no cycles; collection passes only cost time here
    try:
        with open(path, "rb") as fh:
            offset = start
            next_report = start + (1 << 20)
            while offset < end:
                block = os.pread(fh.fileno(), min(BLOCK_BYTES, end - offset), offset)
                if not block:
                    break
                cut = block.rfind(b"\n") + 1
                if cut == 0:
                    # a line longer than a block, or the last line without a newline (it may
                    # have grown since the size was taken: read it whole, as readline would)
                    fh.seek(offset)
                    line = fh.readline()
                    if not line or not _check_one(line, offset, st, path, file_size):
                        return st.res
                    offset += len(line)
                else:
                    lines = block.split(b"\n")
                    del lines[-1]  # after the last newline: the start of the next block
                    if not _fast_block(lines, st):
                        for line in lines:
                            line += b"\n"
                            if not _check_one(line, offset, st, path, file_size):
                                return st.res
                            offset += len(line)
                    else:
                        offset += cut
                if progress is not None and offset >= next_report:
                    progress(offset, file_size)
                    next_report = offset + (1 << 20)
    finally:
        if gc_was_enabled:
            gc.enable()
    return st.res


class _ScanState:
    """What a scan expects next and what it has found so far."""

    __slots__ = ("expect_prev", "expect_seq", "head", "kid", "pub", "res")

    def __init__(
        self,
        res: _Chunk,
        expect_seq: int | None,
        expect_prev: str | None,
        pub: Ed25519PublicKey | None,
        kid: str | None,
        head: tuple[int, str] | None,
    ) -> None:
        self.res, self.expect_seq, self.expect_prev = res, expect_seq, expect_prev
        self.pub, self.kid, self.head = pub, kid, head


def _check_one(line: bytes, offset: int, st: _ScanState, path: str, file_size: int) -> bool:
    """Check one line (with its newline) the sequential way; False once damage is recorded."""
    res, expect_seq, expect_prev = st.res, st.expect_seq, st.expect_prev
    ev = _fast_event(line, orjson.loads, orjson.dumps, hashlib.sha256)
    try:
        if ev is None:
            ev = _check_line(line, offset, file_size, expect_seq)
        seq = ev["seq"]
        if expect_seq is not None:
            if seq > expect_seq:
                if _find_seq(Path(path), offset + len(line), expect_seq):
                    raise _Bad(
                        "reordered",
                        expect_seq,
                        f"event {seq} stands where {expect_seq} belongs; {expect_seq} comes later",
                    )
                raise _Bad(
                    "gap",
                    expect_seq,
                    f"events {expect_seq}..{seq - 1} are missing",
                )
            if seq < expect_seq:
                raise _Bad(
                    "reordered",
                    expect_seq,
                    f"event {seq} is where {expect_seq} belongs",
                )
            if ev["prev_hash"] != expect_prev:
                raise _Bad(
                    "broken_link",
                    seq,
                    f"event {seq}'s prev_hash is not the hash of event {seq - 1} "
                    "(one of them was rewritten)",
                )
        elif seq == 0 and ev["prev_hash"] != ZERO_HASH:
            raise _Bad("broken_link", 0, "event 0's prev_hash is not the zero hash")
        if ev["type"] == CHECKPOINT_TYPE:
            res.signed_seq = _check_checkpoint(ev, st.pub, st.kid)
        if st.head is not None and seq == st.head[0]:
            res.head_match = ev["hash"] == st.head[1]
    except _Bad as bad:
        res.error = (bad.damage, bad.seq, bad.message)
        return False
    if res.first_seq is None:
        res.first_seq, res.first_prev = seq, ev["prev_hash"]
    res.last_seq, res.last_hash = seq, ev["hash"]
    res.count += 1
    st.expect_seq, st.expect_prev = seq + 1, ev["hash"]
    return True


def _fast_block(lines: list[bytes], st: _ScanState) -> bool:
    """Check whole lines (newlines stripped) in bulk; True only if every one is good and linked.

    Accepts a block only when each line would pass `_fast_event` and the sequential link
    checks, so its verdict never differs from the line-by-line pass; False changes nothing
    in `st` and sends the block back to `_check_one`. The argument, step by step:

    * every line parses (orjson) as an object; popping "hash" leaves its other members;
    * D = orjson.dumps([those objects], sorted keys, 53-bit integers) equals
      T = "[" + ",".join(line[:-82] + "}") + "]": each line minus its last 82 bytes, closed.
      Both are JSON arrays and a JSON text has one parse, so element i of D (the canonical
      form of event i without its hash) is byte-for-byte the raw body of line i;
    * the last 82 bytes of each line are `,"hash":"sha256:` + the sha256 of prev_hash + body
      + `"}`, so the hash member is the line's last, top-level member and holds that value;
    * no float anywhere (they have no single canonical form; see `_FLOAT_SHAPE`), envelope
      types as `_fast_event` requires, seq consecutive and prev_hash linked.
    """
    n = len(lines)
    try:
        evs = list(map(_loads, lines))
        if set(map(type, evs)) != _DICT_ONLY:
            return False
        deque(map(dict.pop, evs, repeat("hash", n)), maxlen=0)  # KeyError if one is missing
        bodies = list(map(add, map(_HEAD, lines), repeat(b"}", n)))
        text = b",".join(bodies)
        if _dumps(evs, option=_ORJSON_OPTS) != b"[" + text + b"]":
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
    digests = list(map(_HEXDIGEST, map(sha256, map(add, prev_b, bodies))))
    tails = ',"hash":"sha256:' + '"},"hash":"sha256:'.join(digests) + '"}'
    if b"".join(map(_TAIL, lines)) != tails.encode():
        return False
    hashes = tuple(map(add, repeat("sha256:", n), digests))
    if prevs[1:] != hashes[:-1]:
        return False
    if st.expect_seq is not None:
        if first != st.expect_seq or prevs[0] != st.expect_prev:
            return False
    elif first == 0 and prevs[0] != ZERO_HASH:
        return False
    res = st.res
    signed = res.signed_seq
    if CHECKPOINT_TYPE in types:
        for i, t in enumerate(types):
            if t == CHECKPOINT_TYPE:
                try:
                    signed = _check_checkpoint(evs[i], st.pub, st.kid)
                except _Bad:
                    return False
    head = st.head
    if head is not None and first <= head[0] < first + n:
        res.head_match = hashes[head[0] - first] == head[1]
    res.signed_seq = signed
    if res.first_seq is None:
        res.first_seq, res.first_prev = first, prevs[0]
    res.last_seq, res.last_hash = first + n - 1, hashes[-1]
    res.count += n
    st.expect_seq, st.expect_prev = first + n, hashes[-1]
    return True


def _fast_event(line: bytes, loads: Any, dumps: Any, sha256: Any) -> dict[str, Any] | None:
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
        canon = dumps(ev, option=_ORJSON_OPTS)
    except orjson.JSONEncodeError:
        return None
    if canon[:-1] != line[: n - 83] or _has_float(ev):  # floats anywhere, as _line_hash
        return None
    if "sha256:" + sha256(prev.encode() + canon).hexdigest() != h:
        return None
    ev["hash"] = h
    return ev


def _check_line(line: bytes, offset: int, file_size: int, expect_seq: int | None) -> dict[str, Any]:
    is_last = offset + len(line) >= file_size
    if not line.endswith(b"\n"):
        raise _Bad("torn", expect_seq, f"the last line ({len(line)} bytes) is torn: no newline")
    try:
        ev = orjson.loads(line)
    except orjson.JSONDecodeError as exc:
        if is_last:
            raise _Bad("torn", expect_seq, f"the last line is not complete JSON ({exc})") from exc
        raise _Bad("modified", expect_seq, f"line at byte {offset} is not JSON ({exc})") from exc
    if not (
        type(ev) is dict
        and type(ev.get("seq")) is int
        and type(ev.get("prev_hash")) is str
        and type(ev.get("hash")) is str
        and type(ev.get("type")) is str
        and type(ev.get("data")) is dict
    ):
        raise _Bad("modified", expect_seq, f"line at byte {offset} is not an audit event")
    if _line_hash(line, ev) != ev["hash"]:
        bad_seq = expect_seq if expect_seq is not None else ev["seq"]
        raise _Bad("modified", bad_seq, f"event {bad_seq} does not match its hash")
    return ev


def _scan_star(args: tuple[Any, ...]) -> _Chunk:
    return _scan(*args)


def _read_head(audit_dir: Path, pub: Ed25519PublicKey | None) -> tuple[dict[str, Any] | None, str]:
    """(HEAD event, problem) — problem is "" when HEAD is absent or good."""
    path = audit_dir / HEAD_NAME
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return None, ""
    try:
        ev = json.loads(raw)
        h = ev["hash"]
        body = {k: v for k, v in ev.items() if k != "hash"}
        if "sha256:" + hashlib.sha256(ev["prev_hash"].encode() + canonical(body)).hexdigest() != h:
            return ev, "HEAD does not match its own hash"
        if ev.get("type") != CHECKPOINT_TYPE:
            return ev, "HEAD is not a checkpoint event"
        _check_checkpoint(ev, pub, key_id(pub) if pub else None)
    except _Bad as bad:
        return ev, f"HEAD: {bad.message}"
    except (ValueError, KeyError, TypeError, AttributeError, NotCanonical) as exc:
        return None, f"HEAD is unreadable ({exc})"
    return ev, ""


def _pool_context() -> multiprocessing.context.BaseContext:
    # fork is fastest, but forking a process with other threads running is unsafe
    if threading.active_count() == 1:
        return multiprocessing.get_context("fork")
    return multiprocessing.get_context("forkserver")


def _workers() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:
        return max(1, os.cpu_count() or 1)


def _boundaries(path: Path, size: int, chunk: int) -> list[tuple[int, int]]:
    """Byte ranges that start at line starts."""
    cuts = [0]
    with open(path, "rb") as fh:
        pos = chunk
        while pos < size:
            fh.seek(pos - 1)
            fh.readline()
            at = fh.tell()
            if at >= size:
                break
            if at > cuts[-1]:
                cuts.append(at)
            pos = at + chunk
    cuts.append(size)
    return list(itertools.pairwise(cuts))


def verify_log(
    audit_dir: Path,
    public_key: Ed25519PublicKey | None,
    *,
    progress: Progress | None = None,
    workers: int | None = None,
) -> VerifyReport:
    """Check the whole chain, the checkpoint signatures and HEAD; name the first damage."""
    audit_dir = Path(audit_dir)
    path = log_path(audit_dir)
    if not path.exists():
        raise AuditLogMissing(f"no audit log at {path}")
    size = path.stat().st_size
    pub_raw = (
        public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        if public_key is not None
        else None
    )
    head_ev, head_problem = _read_head(audit_dir, public_key)
    head = (head_ev["seq"], head_ev["hash"]) if head_ev and not head_problem else None
    nworkers = workers if workers is not None else _workers()

    def report(chunks: list[_Chunk], bad: _Chunk | None) -> VerifyReport:
        events = sum(c.count for c in chunks) + (bad.count if bad else 0)
        scanned = [*chunks, bad] if bad is not None else chunks
        signed = [c.signed_seq for c in scanned if c.signed_seq is not None]
        signed_seq = signed[-1] if signed else None
        if bad is not None and bad.error is not None:
            damage, seq, message = bad.error
            return VerifyReport(
                valid=False,
                events=events,
                first_bad_seq=seq,
                damage=damage,
                message=message,
                signed_head_seq=signed_seq,
            )
        last_seq = chunks[-1].last_seq if chunks and chunks[-1].last_seq is not None else -1
        if head_problem:
            seq = head_ev["seq"] if head_ev and isinstance(head_ev.get("seq"), int) else None
            return VerifyReport(
                valid=False,
                events=events,
                first_bad_seq=seq,
                damage="bad_signature",
                message=head_problem,
                signed_head_seq=signed_seq,
            )
        if head is not None:
            if head[0] > last_seq:
                return VerifyReport(
                    valid=False,
                    events=events,
                    first_bad_seq=last_seq + 1,
                    damage="truncated",
                    message=f"the log ends at seq {last_seq} but HEAD was signed at seq {head[0]}",
                    signed_head_seq=signed_seq,
                )
            if not any(c.head_match for c in chunks):
                return VerifyReport(
                    valid=False,
                    events=events,
                    first_bad_seq=head[0],
                    damage="modified",
                    message=f"event {head[0]} differs from the checkpoint kept in HEAD",
                    signed_head_seq=signed_seq,
                )
        msg = f"{events} events, chain intact"
        msg += f", signed through seq {signed_seq}" if signed_seq is not None else ", no checkpoint"
        return VerifyReport(valid=True, events=events, message=msg, signed_head_seq=signed_seq)

    def sequential(start: int, exp_seq: int, exp_prev: str, done: list[_Chunk]) -> VerifyReport:
        res = _scan(str(path), start, size, exp_seq, exp_prev, pub_raw, head, size, progress)
        if progress is not None:
            progress(size, size)
        if res.error is not None:
            return report(done, res)
        return report([*done, res], None)

    if size < PARALLEL_MIN_BYTES or nworkers < 2:
        return sequential(0, 0, ZERO_HASH, [])

    ranges = _boundaries(path, size, max(CHUNK_BYTES, size // (nworkers * 64)))
    tasks = [(str(path), s, e, None, None, pub_raw, head, size) for s, e in ranges]
    done: list[_Chunk] = []
    exp_seq, exp_prev = 0, ZERO_HASH
    with _pool_context().Pool(nworkers) as pool:
        for chunk in pool.imap(_scan_star, tasks):
            linked = chunk.count == 0 or (
                chunk.first_seq == exp_seq and chunk.first_prev == exp_prev
            )
            if chunk.error is not None or not linked:
                pool.terminate()
                return sequential(chunk.start, exp_seq, exp_prev, done)
            done.append(chunk)
            if chunk.count:
                exp_seq, exp_prev = chunk.last_seq + 1, chunk.last_hash
            if progress is not None:
                progress(chunk.end, size)
    return report(done, None)
