"""Verify the audit log (DESIGN section 5) in constant memory, using every core.

Each line's hash depends only on the line itself (it carries its own prev_hash), so byte
ranges of the file are checked in worker processes; the links between ranges (seq and
prev_hash continuity) are stitched together in order afterwards. When anything is wrong, the
first damaged range is re-scanned sequentially from a trusted starting point, so the report
always names the first bad seq and the kind of damage exactly as a sequential pass would.
"""

from __future__ import annotations

import gc
import hashlib
import itertools
import json
import multiprocessing
import os
import threading
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from ..api import VerifyReport
from ..core.canon import NotCanonical, canonical, reencode, sha256_tag
from ..core.keys import key_id
from ._fastpath import Chunk, ScanState, fast_block, fast_event, has_float
from .checkpoint import (
    CHECKPOINT_INTERVAL_S,
    CHECKPOINT_TYPE,
    TS_RE,
    Damage,
    Stretch,
    check_checkpoint,
)
from .errors import AuditLogMissing
from .index import HEAD_NAME, ZERO_HASH, log_path, split_hash

__all__ = [
    "BLOCK_BYTES",
    "CHECKPOINT_TYPE",
    "CHUNK_BYTES",
    "PARALLEL_MIN_BYTES",
    "Progress",
    "parse_witness",
    "read_head",
    "verify_log",
]

Progress = Callable[[int, int], None]
PARALLEL_MIN_BYTES = 8 << 20
CHUNK_BYTES = 8 << 20
BLOCK_BYTES = 64 << 10  # lines checked together by fast_block (small enough to stay in cache)


def _line_hash(line: bytes, ev: dict[str, Any]) -> str:
    """The hash the DESIGN rule gives for this event (fast path when the bytes are canonical)."""
    parts = split_hash(line)
    prev = ev["prev_hash"]
    if parts is not None and parts[1] == ev["hash"]:
        body = parts[0]
        without = dict(ev)
        del without["hash"]
        try:
            canon = reencode(without)
        except orjson.JSONEncodeError:
            canon = b""
        if canon == body and not has_float(without):
            return sha256_tag(prev.encode() + body)
    try:
        std = json.loads(line)
        std.pop("hash", None)
        canon = canonical(std)
    except (ValueError, NotCanonical) as exc:
        raise Damage("modified", ev.get("seq"), f"event is not canonical JSON ({exc})") from exc
    return sha256_tag(prev.encode() + canon)


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
    witness_seq: int | None = None,
) -> Chunk:
    """Check every line starting in [start, end). With no expectation, trust the first link.

    Blocks of whole lines go through `fast_block`, which checks them all at once in C-level
    calls; a block it cannot vouch for (any damage, or anything unusual such as a float, a big
    integer or an escape that re-encodes differently) is re-checked line by line by
    `_check_one`, which decides exactly as the original sequential pass did.
    """
    pub = Ed25519PublicKey.from_public_bytes(pub_raw) if pub_raw else None
    kid = key_id(pub) if pub else None
    st = ScanState(Chunk(start=start, end=end), expect_seq, expect_prev, pub, kid, head)
    st.witness_seq = witness_seq
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
                    if not fast_block(lines, st):
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


def _check_one(line: bytes, offset: int, st: ScanState, path: str, file_size: int) -> bool:
    """Check one line (with its newline) the sequential way; False once damage is recorded."""
    res, expect_seq, expect_prev = st.res, st.expect_seq, st.expect_prev
    ev = fast_event(line, orjson.loads, reencode, hashlib.sha256)
    try:
        if ev is None:
            ev = _check_line(line, offset, file_size, expect_seq)
        seq = ev["seq"]
        if expect_seq is not None:
            if seq > expect_seq:
                if _find_seq(Path(path), offset + len(line), expect_seq):
                    raise Damage(
                        "reordered",
                        expect_seq,
                        f"event {seq} stands where {expect_seq} belongs; {expect_seq} comes later",
                    )
                raise Damage(
                    "gap",
                    expect_seq,
                    f"events {expect_seq}..{seq - 1} are missing",
                )
            if seq < expect_seq:
                raise Damage(
                    "reordered",
                    expect_seq,
                    f"event {seq} is where {expect_seq} belongs",
                )
            if ev["prev_hash"] != expect_prev:
                raise Damage(
                    "broken_link",
                    seq,
                    f"event {seq}'s prev_hash is not the hash of event {seq - 1} "
                    "(one of them was rewritten)",
                )
        elif seq == 0 and ev["prev_hash"] != ZERO_HASH:
            raise Damage("broken_link", 0, "event 0's prev_hash is not the zero hash")
        ts = ev.get("ts")
        if type(ts) is not str or TS_RE.fullmatch(ts) is None:
            raise Damage("modified", seq, f"event {seq} has no valid timestamp")
        if ev["type"] == CHECKPOINT_TYPE:
            res.signed_seq = check_checkpoint(ev, st.pub, st.kid)
        if st.head is not None and seq == st.head[0]:
            res.head_match = ev["hash"] == st.head[1]
        if seq == st.witness_seq:
            res.witness_hash = ev["hash"]
    except Damage as bad:
        res.error = (bad.damage, bad.seq, bad.message)
        return False
    if ev["type"] == CHECKPOINT_TYPE:
        res.closed.append(res.open)
        res.open = Stretch()
    else:
        res.open.add(seq, seq, 1, ts, ts)
    if res.first_seq is None:
        res.first_seq, res.first_prev = seq, ev["prev_hash"]
    res.last_seq, res.last_hash = seq, ev["hash"]
    res.count += 1
    st.expect_seq, st.expect_prev = seq + 1, ev["hash"]
    return True


def _check_line(line: bytes, offset: int, file_size: int, expect_seq: int | None) -> dict[str, Any]:
    is_last = offset + len(line) >= file_size
    if not line.endswith(b"\n"):
        raise Damage("torn", expect_seq, f"the last line ({len(line)} bytes) is torn: no newline")
    try:
        ev = orjson.loads(line)
    except orjson.JSONDecodeError as exc:
        if is_last:
            raise Damage("torn", expect_seq, f"the last line is not complete JSON ({exc})") from exc
        raise Damage("modified", expect_seq, f"line at byte {offset} is not JSON ({exc})") from exc
    if not (
        type(ev) is dict
        and type(ev.get("seq")) is int
        and type(ev.get("prev_hash")) is str
        and type(ev.get("hash")) is str
        and type(ev.get("type")) is str
        and type(ev.get("data")) is dict
    ):
        raise Damage("modified", expect_seq, f"line at byte {offset} is not an audit event")
    if _line_hash(line, ev) != ev["hash"]:
        bad_seq = expect_seq if expect_seq is not None else ev["seq"]
        raise Damage("modified", bad_seq, f"event {bad_seq} does not match its hash")
    return ev


def read_head(audit_dir: Path, pub: Ed25519PublicKey | None) -> tuple[dict[str, Any] | None, str]:
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
        if sha256_tag(ev["prev_hash"].encode() + canonical(body)) != h:
            return ev, "HEAD does not match its own hash"
        if ev.get("type") != CHECKPOINT_TYPE:
            return ev, "HEAD is not a checkpoint event"
        check_checkpoint(ev, pub, key_id(pub) if pub else None)
    except Damage as bad:
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


def _coverage(scanned: list[Chunk]) -> tuple[Stretch | None, Stretch]:
    """(first stretch too long to go unsigned, or None; the stretch open at the end)."""
    current = Stretch()
    for chunk in scanned:
        for closed in chunk.closed:
            whole = current.merge(closed)
            if whole.problem() is not None:
                return whole, current
            current = Stretch()
        current = current.merge(chunk.open)
    if current.problem() is not None:
        return current, current
    return None, current


def parse_witness(text: str) -> tuple[int, str]:
    """`SEQ:HASH` (as `talon audit head` prints it) -> (seq, hash); ValueError if malformed."""
    seq_text, sep, hash_ = text.strip().partition(":")
    if (
        not sep
        or not seq_text.isdigit()
        or not hash_.startswith("sha256:")
        or len(hash_) != 71
        or any(c not in "0123456789abcdef" for c in hash_[7:])
    ):
        raise ValueError(f"{text!r} is not SEQ:sha256:<64 hex digits>")
    return int(seq_text), hash_


def verify_log(
    audit_dir: Path,
    public_key: Ed25519PublicKey | None,
    *,
    progress: Progress | None = None,
    workers: int | None = None,
    expect_head: tuple[int, str] | None = None,
) -> VerifyReport:
    """Check the whole chain, the checkpoint signatures, their coverage and HEAD; name the
    first damage. With `expect_head` (seq, hash), a witness kept elsewhere: valid only if the
    log holds exactly that event and a valid checkpoint signs through it."""
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
    head_ev, head_problem = read_head(audit_dir, public_key)
    head = (head_ev["seq"], head_ev["hash"]) if head_ev and not head_problem else None
    nworkers = workers if workers is not None else _workers()
    witness_seq = expect_head[0] if expect_head is not None else None

    def report(chunks: list[Chunk], bad: Chunk | None) -> VerifyReport:
        events = sum(c.count for c in chunks) + (bad.count if bad else 0)
        scanned = [*chunks, bad] if bad is not None else chunks
        signed = [c.signed_seq for c in scanned if c.signed_seq is not None]
        signed_seq = signed[-1] if signed else None
        unsigned, tail = _coverage(scanned)

        def damaged(seq: int | None, damage: str, message: str) -> VerifyReport:
            return VerifyReport(
                valid=False,
                events=events,
                first_bad_seq=seq,
                damage=damage,
                message=message,
                signed_head_seq=signed_seq,
            )

        if unsigned is not None:
            message = str(unsigned.problem())
            if bad is None or bad.error is None or (bad.error[1] or 0) > (unsigned.first or 0):
                return damaged(unsigned.first, "unsigned", message)
        if bad is not None and bad.error is not None:
            return damaged(bad.error[1], bad.error[0], bad.error[2])
        last_seq = chunks[-1].last_seq if chunks and chunks[-1].last_seq is not None else -1
        if head_problem:
            seq = head_ev["seq"] if head_ev and isinstance(head_ev.get("seq"), int) else None
            return damaged(seq, "bad_signature", head_problem)
        if head is not None:
            if head[0] > last_seq:
                return damaged(
                    last_seq + 1,
                    "truncated",
                    f"the log ends at seq {last_seq} but HEAD was signed at seq {head[0]}",
                )
            if not any(c.head_match for c in chunks):
                return damaged(
                    head[0], "modified", f"event {head[0]} differs from the checkpoint kept in HEAD"
                )
        if expect_head is not None:
            wseq, whash = expect_head
            found = next((c.witness_hash for c in chunks if c.witness_hash is not None), None)
            if found is None:
                return damaged(
                    min(wseq, last_seq + 1),
                    "witness",
                    f"the witness names seq {wseq} but the log ends at seq {last_seq} "
                    "(cut or rewritten since the witness was taken)",
                )
            if found != whash:
                return damaged(
                    wseq,
                    "witness",
                    f"event {wseq} has hash {found}, the witness says {whash} "
                    "(the log was rewritten since the witness was taken)",
                )
            if signed_seq is None or signed_seq < wseq:
                return damaged(
                    wseq,
                    "witness",
                    f"event {wseq} is not covered by a signed checkpoint",
                )
        msg = f"{events} events, chain intact"
        msg += f", signed through seq {signed_seq}" if signed_seq is not None else ", no checkpoint"
        if tail.count:
            msg += f", {tail.count} unsigned at the tail (signed within {CHECKPOINT_INTERVAL_S} s)"
        if expect_head is not None:
            msg += f", witness seq {expect_head[0]} matches"
        return VerifyReport(
            valid=True,
            events=events,
            message=msg,
            signed_head_seq=signed_seq,
            unsigned_tail=tail.count,
        )

    def sequential(start: int, exp_seq: int, exp_prev: str, done: list[Chunk]) -> VerifyReport:
        res = _scan(
            str(path), start, size, exp_seq, exp_prev, pub_raw, head, size, progress, witness_seq
        )
        if progress is not None:
            progress(size, size)
        if res.error is not None:
            return report(done, res)
        return report([*done, res], None)

    if size < PARALLEL_MIN_BYTES or nworkers < 2:
        return sequential(0, 0, ZERO_HASH, [])

    ranges = _boundaries(path, size, max(CHUNK_BYTES, size // (nworkers * 64)))
    tasks = [
        (str(path), s, e, None, None, pub_raw, head, size, None, witness_seq) for s, e in ranges
    ]
    done: list[Chunk] = []
    exp_seq, exp_prev = 0, ZERO_HASH
    # A few ranges in flight at a time, and the pool is never terminated: on damage nothing
    # more is queued and the ranges in flight are let finish (close + join). Pool.terminate()
    # while its task thread is feeding workers can hang for good (CPython's Pool).
    pool = _pool_context().Pool(nworkers)
    bad: Chunk | None = None
    try:
        pending = deque(pool.apply_async(_scan, task) for task in tasks[: 2 * nworkers])
        queued = len(pending)
        while pending:
            chunk = pending.popleft().get()
            linked = chunk.count == 0 or (
                chunk.first_seq == exp_seq and chunk.first_prev == exp_prev
            )
            if chunk.error is not None or not linked:
                bad = chunk
                break
            if queued < len(tasks):
                pending.append(pool.apply_async(_scan, tasks[queued]))
                queued += 1
            done.append(chunk)
            if chunk.count:
                assert chunk.last_seq is not None and chunk.last_hash is not None  # count > 0
                exp_seq, exp_prev = chunk.last_seq + 1, chunk.last_hash
            if progress is not None:
                progress(chunk.end, size)
        for rest in pending:
            rest.wait()
    finally:
        pool.close()
        pool.join()
    if bad is not None:
        return sequential(bad.start, exp_seq, exp_prev, done)
    return report(done, None)
