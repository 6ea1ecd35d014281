"""Checkpoint signatures in the audit log (DESIGN section 5): the check `verify` applies to
every checkpoint event, with the damage it reports, and the coverage rule (a log is valid only
while it is signed): no stretch of more than `MAX_UNSIGNED_EVENTS` events, or spanning more
than `CHECKPOINT_INTERVAL_S` (+ grace) by its timestamps, goes without a checkpoint.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from ..core.canon import b64url_decode, checkpoint_message

CHECKPOINT_TYPE = "audit.checkpoint"

#: the writer signs a checkpoint after at most this many events (checkpoint_every is capped
#: here), and `verify` names a longer stretch without one as damage
MAX_UNSIGNED_EVENTS = 1000
#: the writer signs a checkpoint before an event whose ts lies more than this after the first
#: unsigned event of the stretch (or before it), and a timer signs a quiet tail this long after
#: its first event
CHECKPOINT_INTERVAL_S = 10
#: what `verify` tolerates beyond the interval in a stretch's ts span (the writer never needs it)
CHECKPOINT_GRACE_S = 2
MAX_UNSIGNED_SPAN_US = (CHECKPOINT_INTERVAL_S + CHECKPOINT_GRACE_S) * 1_000_000
#: the one ts layout the writer produces (`ids.iso`): fixed width, so text order is time order
TS_RE = re.compile(
    r"[0-9]{4}-(?:0[1-9]|1[0-2])-(?:0[1-9]|[12][0-9]|3[01])"
    r"T(?:[01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9]\.[0-9]{6}Z"
)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def ts_micros(ts: object) -> int | None:
    """Microseconds since the epoch of a ts in the writer's layout, else None."""
    if type(ts) is not str or TS_RE.fullmatch(ts) is None:
        return None
    try:  # fields by position (the layout is checked above); not strptime, which imports
        # `_strptime` lazily: an engine that has dropped privileges may no longer read it
        dt = datetime(
            int(ts[0:4]),
            int(ts[5:7]),
            int(ts[8:10]),
            int(ts[11:13]),
            int(ts[14:16]),
            int(ts[17:19]),
            int(ts[20:26]),
            tzinfo=UTC,
        )
    except ValueError:  # a day the month does not have
        return None
    delta = dt - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


class Stretch:
    """Events between two checkpoints (or the log's start / end): where they start and end,
    how many, and their earliest and latest ts (text: the layout sorts in time order)."""

    __slots__ = ("count", "first", "last", "max_ts", "min_ts")

    def __init__(self) -> None:
        self.first: int | None = None
        self.last: int | None = None
        self.count = 0
        self.min_ts: str | None = None
        self.max_ts: str | None = None

    def add(self, first: int, last: int, count: int, min_ts: str, max_ts: str) -> None:
        if self.first is None:
            self.first = first
        self.last = last
        self.count += count
        if self.min_ts is None or min_ts < self.min_ts:
            self.min_ts = min_ts
        if self.max_ts is None or max_ts > self.max_ts:
            self.max_ts = max_ts

    def merge(self, other: Stretch) -> Stretch:
        """This stretch followed directly by `other` (no checkpoint between them)."""
        out = Stretch()
        for part in (self, other):
            if part.count:
                assert part.first is not None and part.last is not None
                assert part.min_ts is not None and part.max_ts is not None
                out.add(part.first, part.last, part.count, part.min_ts, part.max_ts)
        return out

    def span_us(self) -> int | None:
        """Latest minus earliest ts; None if either is no real date (say, February 31)."""
        lo, hi = ts_micros(self.min_ts), ts_micros(self.max_ts)
        if self.count and (lo is None or hi is None):
            return None
        return 0 if lo is None or hi is None else hi - lo

    def problem(self) -> str | None:
        """Why this stretch is too long to go unsigned, or None."""
        span = self.span_us()
        if self.count > MAX_UNSIGNED_EVENTS:
            why = f"{self.count} events; a checkpoint is due every {MAX_UNSIGNED_EVENTS}"
        elif span is None:
            why = "their timestamps are not all real times"
        elif span > MAX_UNSIGNED_SPAN_US:
            why = (
                f"their timestamps span {span / 1e6:.1f} s; a checkpoint is due "
                f"every {CHECKPOINT_INTERVAL_S} s"
            )
        else:
            return None
        return f"events {self.first}\u2013{self.last} carry no checkpoint ({why})"


class Damage(Exception):
    def __init__(self, damage: str, seq: int | None, message: str) -> None:
        super().__init__(message)
        self.damage, self.seq, self.message = damage, seq, message


def check_checkpoint(ev: dict[str, Any], pub: Ed25519PublicKey | None, kid: str | None) -> int:
    seq = ev["seq"]
    data = ev.get("data")
    if not isinstance(data, dict):
        raise Damage("bad_signature", seq, f"checkpoint {seq} has no data")
    cseq, chash, sig = (
        data.get("checkpoint_seq"),
        data.get("checkpoint_hash"),
        data.get("signature"),
    )
    if cseq != seq - 1 or chash != ev["prev_hash"]:
        raise Damage(
            "bad_signature",
            seq,
            f"checkpoint {seq} signs seq {cseq} / {chash}, not the event before it "
            "(the log was rewritten after it was signed)",
        )
    if pub is None:
        raise Damage("bad_signature", seq, f"checkpoint {seq}: no public key to check it with")
    if data.get("key_id") != kid:
        raise Damage("bad_signature", seq, f"checkpoint {seq} was signed by another key")
    try:
        pub.verify(b64url_decode(str(sig)), checkpoint_message(cseq, chash))
    except (InvalidSignature, ValueError) as exc:
        raise Damage(
            "bad_signature",
            seq,
            f"checkpoint {seq}: signature does not verify (rewritten without the key)",
        ) from exc
    return int(cseq)
