"""The append-only, hash-chained audit log (DESIGN section 5).

`AuditLog` writes one canonical JSON line per event with `os.write` on an O_APPEND descriptor,
chains each line to the one before it, and makes writes durable with a group commit: callers
of `sync()` that arrive while an fsync is running wait for the next one, so concurrent
writers share fsyncs. It appends a signed `audit.checkpoint` and replaces `HEAD` atomically
after every `checkpoint_every` (at most 1,000) events, before an event whose ts lies more than
`checkpoint_interval` (10 s) from the first unsigned one, from a timer once the first unsigned
event is that old (a quiet tail after a burst), at `open()` over a tail a previous run left
unsigned, and at a clean `close()`. Reading, indexing and verification
live in `index` and `verify`; their public names are re-exported here.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import weakref
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, NamedTuple, TypedDict, Unpack

import orjson
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from ..core import ids
from ..core.canon import b64url_encode, check_canonical, checkpoint_message, event_line, exact_types
from ..core.clock import Clock
from ..core.keys import key_id
from ..core.paths import write_private
from ..policy.models import AUDIT_EVENT_TYPES
from .checkpoint import CHECKPOINT_INTERVAL_S, CHECKPOINT_TYPE, MAX_UNSIGNED_EVENTS, ts_micros
from .errors import (
    AuditClosed,
    AuditCorrupt,
    AuditError,
    AuditLogMissing,
    AuditWriteError,
    UnknownEventType,
)
from .index import (
    HEAD_NAME,
    LOG_NAME,
    ZERO_HASH,
    AuditIndex,
    iter_events,
    query,
    read_event_at,
    split_hash,
)
from .verify import verify_log

__all__ = [
    "CHECKPOINT_TYPE",
    "ZERO_HASH",
    "AuditClosed",
    "AuditCorrupt",
    "AuditError",
    "AuditHead",
    "AuditIndex",
    "AuditLog",
    "AuditLogMissing",
    "AuditWriteError",
    "UnknownEventType",
    "encode_event",
    "iter_events",
    "query",
    "read_event_at",
    "verify_log",
]

log = logging.getLogger(__name__)
Listener = Callable[[dict[str, Any]], None]
_TAIL_BLOCK = 1 << 16
_KNOWN_TYPES = frozenset(AUDIT_EVENT_TYPES)


class AuditHead(NamedTuple):
    """The newest event written: its seq (-1 for an empty log) and hash."""

    seq: int
    hash: str


def encode_event(event: dict[str, Any]) -> tuple[bytes, str]:
    """(line bytes with newline, hash) for an event without `hash` (checked canonical first).

    orjson with sorted keys gives the same bytes as the stdlib canonical form for exactly the
    values `check_canonical` lets through (str, bool, None, int within +/-2**53, list, dict).
    """
    check_canonical(event)
    return event_line(event)


#: one event to write: (type, session_id, run_id, data)
EventSpec = tuple[str, "str | None", "str | None", "dict[str, Any] | None"]


class EventFields(TypedDict, total=False):
    """`append`'s keyword arguments, for `append_durable` (which passes them on)."""

    session_id: str | None
    run_id: str | None
    data: dict[str, Any] | None


def _check_event(type: str, session_id: Any, run_id: Any, data: Any) -> None:
    """What `append` refuses before anything is written (NotCanonical names the value)."""
    if type not in _KNOWN_TYPES:
        raise UnknownEventType(f"unknown audit event type {type!r}")
    if type == CHECKPOINT_TYPE:
        raise AuditError("audit.checkpoint events are written and signed by the log itself")
    if not exact_types(data):
        check_canonical(data, "$.data")
    for name, value in (("session_id", session_id), ("run_id", run_id)):
        if value is not None and value.__class__ is not str:
            raise AuditError(f"{name} must be a string or None, not {value!r}")


def _explain(exc: orjson.JSONEncodeError, spec: EventSpec) -> BaseException:
    """orjson refused an event `_check_event` let through: the precise NotCanonical if the
    full check finds one (a lone surrogate, a key that is not exactly a str), else orjson's."""
    _type, session_id, run_id, data = spec
    check_canonical(data, "$.data")
    for name, value in (("session_id", session_id), ("run_id", run_id)):
        if value is not None:
            check_canonical(value, f"$.{name}")
    return exc


class AuditLog:
    """Append-only writer. Thread-safe; one instance per data directory (engine.lock)."""

    def __init__(
        self,
        audit_dir: Path,
        signing_key: Ed25519PrivateKey,
        *,
        checkpoint_every: int = MAX_UNSIGNED_EVENTS,
        clock: Clock | None = None,
        checkpoint_interval: float = CHECKPOINT_INTERVAL_S,
        timer_tick: float = 1.0,
    ) -> None:
        if not 1 <= checkpoint_every <= MAX_UNSIGNED_EVENTS:
            raise ValueError(f"checkpoint_every must be from 1 to {MAX_UNSIGNED_EVENTS}")
        if not 0 < checkpoint_interval <= CHECKPOINT_INTERVAL_S:
            raise ValueError(f"checkpoint_interval must be in (0, {CHECKPOINT_INTERVAL_S}] s")
        self.audit_dir = Path(audit_dir)
        self.path = self.audit_dir / LOG_NAME
        self.head_path = self.audit_dir / HEAD_NAME
        self.checkpoint_every = checkpoint_every
        self._key = signing_key
        self._key_id = key_id(signing_key.public_key())
        self._fd: int | None = None
        self._lock = threading.RLock()
        self._sync_lock = threading.Lock()  # guards the group commit's state below
        self._running: _Fsync | None = None
        self._heir: threading.Lock | None = None  # the caller that leads the next fsync waits here
        self._next_latch = _closed_latch()  # the callers the next fsync covers wait here
        self._written = 0  # events appended (next seq)
        self._durable = 0  # events known to be on disk
        self.fsyncs = 0  # fsyncs done by sync(), and the events they made durable
        self.fsynced_events = 0
        self._prev = ZERO_HASH
        self._failed: str | None = None
        self._last_type: str | None = None
        self._since_checkpoint = 0
        self._interval_us = int(checkpoint_interval * 1_000_000)
        self._first_us: int | None = None  # ts of the first event not yet signed
        self._first_mono = 0.0  # time.monotonic() when that event was written
        self._timer_tick = timer_tick
        self._timer: threading.Thread | None = None
        self._stop = threading.Event()
        self._ts_second: tuple[str, int] = ("", 0)  # (ts up to the second, its epoch us)
        self._clock = clock  # None: the clock installed in `ids` when an event is written
        self._listeners: list[Listener] = []
        self.last_checkpoint: dict[str, Any] | None = None
        self.recovered: dict[str, Any] | None = None

    # ---------------------------------------------------------------- lifecycle

    def open(self) -> AuditLog:
        """Open for appending; move a torn last line aside and record that it happened."""
        with self._lock:
            if self._fd is not None:
                return self
            self.audit_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o600)
            try:
                cut, torn, reason, last = self._find_tail(fd)
            except BaseException:
                os.close(fd)
                raise
            if last is not None:
                self._written, self._prev = last["seq"] + 1, last["hash"]
                self._last_type = last.get("type")
            self._durable = self._written
            self._fd = fd
            self.last_checkpoint = self._read_head()
            if torn:
                side = self.audit_dir / f"torn-{ids.utcnow().strftime('%Y%m%dT%H%M%S%fZ')}.jsonl"
                write_private(side, torn)
                os.ftruncate(fd, cut)
                os.fsync(fd)
                self.recovered = {"side_file": side.name, "bytes": len(torn), "reason": reason}
                self.append("audit.recovered", data=self.recovered)
                self.sync()
            if self._written and self._last_type != CHECKPOINT_TYPE:
                # a previous run died with its tail unsigned: sign it now, so the tail of a
                # log this engine writes never spans more than one run
                self._write_checkpoint()
            self._since_checkpoint, self._first_us = 0, None
            self._stop.clear()
            self._timer = threading.Thread(
                target=self._tick,
                args=(weakref.ref(self), self._stop, self._timer_tick),
                name="talon-audit-checkpoint",
                daemon=True,
            )
            self._timer.start()
        return self

    @staticmethod
    def _tick(ref: weakref.ReferenceType[AuditLog], stop: threading.Event, tick: float) -> None:
        """The checkpoint timer: sign the unsigned tail once its first event is
        `checkpoint_interval` old by the writer's clock (the clock that stamps `ts`). Holds
        the log only weakly, so a log dropped without `close()` ends its timer."""
        while not stop.wait(tick):
            self = ref()
            if self is None:
                return
            if not self._tail_due():
                del self
                continue
            with self._lock:
                if self._fd is None or self._failed is not None:
                    return
                if not self._tail_due():
                    continue
                try:
                    self._write_checkpoint()
                except AuditError:
                    log.exception("the audit checkpoint timer could not sign the tail")
                    return
            del self

    def _tail_due(self) -> bool:
        first = self._first_us
        # the monotonic clock first (the writer's clock is read only when it may be due: a
        # test's stepped clock then ticks exactly as often as events are written)
        if first is None or time.monotonic() - self._first_mono < self._interval_us / 1e6:
            return False
        clock = self._clock or ids.clock()
        return self._due(first, self._ts_us(clock.now_iso()))

    def _due(self, first_us: int, now_us: int | None) -> bool:
        """Whether an event stamped `now_us` may no longer join the stretch that began at
        `first_us` (more than the interval after it, or before it: the clock went back)."""
        if now_us is None:
            return False
        return now_us - first_us > self._interval_us or now_us < first_us

    def _ts_us(self, ts: str) -> int | None:
        """`ts_micros(ts)`, parsing the date and time only when the second changes."""
        second, base = self._ts_second
        if ts[:19] == second and len(ts) == 27 and ts[26] == "Z" and ts[20:26].isdigit():
            return base + int(ts[20:26])
        us = ts_micros(ts)
        if us is not None:
            self._ts_second = (ts[:19], us - int(ts[20:26]))
        return us

    def _find_tail(self, fd: int) -> tuple[int, bytes, str, dict[str, Any] | None]:
        """(cut offset, torn bytes, reason, last good event), reading backwards from the end."""
        size = os.fstat(fd).st_size
        if size == 0:
            return 0, b"", "", None
        cut, torn, reason = size, b"", ""
        if os.pread(fd, 1, size - 1) != b"\n":
            block = self._read_back(fd, size)
            torn = block[block.rfind(b"\n") + 1 :]
            cut = size - len(torn)
            reason = "last line has no newline (torn write)"
        for attempt in range(2):
            if cut == 0:
                return 0, torn, reason, None
            block = self._read_back(fd, cut - 1)
            start = cut - 1 - len(block)
            line = os.pread(fd, cut - start, start)
            try:
                ev = orjson.loads(line)
                if type(ev) is dict and type(ev.get("seq")) is int and split_hash(line):
                    return cut, torn, reason, ev
            except orjson.JSONDecodeError:
                pass
            if attempt == 1:
                break
            torn = line + torn
            cut = start
            reason = "last line is not a complete event (torn write)"
        raise AuditCorrupt(
            f"{self.path}: the last two lines are not valid events; refusing to cut more "
            "than one line (run `talon audit verify` to see the damage)"
        )

    @staticmethod
    def _read_back(fd: int, end: int) -> bytes:
        """Bytes before `end` back to (not including) the newline before them, or to byte 0."""
        size = _TAIL_BLOCK
        while True:
            start = max(0, end - size)
            data = os.pread(fd, end - start, start)
            nl = data.rfind(b"\n")
            if nl >= 0:
                return data[nl + 1 :]
            if start == 0:
                return data
            size *= 4

    def _read_head(self) -> dict[str, Any] | None:
        try:
            head: dict[str, Any] | None = orjson.loads(self.head_path.read_bytes())
            return head
        except (FileNotFoundError, orjson.JSONDecodeError):
            return None

    def close(self) -> None:
        """Stop the checkpoint timer, write the final checkpoint, make everything durable,
        update HEAD, close."""
        timer, self._timer = self._timer, None
        if timer is not None:
            self._stop.set()
            timer.join()
        with self._lock:
            if self._fd is None:
                return
            if self._failed is None and self._written > 0 and self._last_type != CHECKPOINT_TYPE:
                self._write_checkpoint()
            else:
                self.sync()
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> AuditLog:
        return self.open()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---------------------------------------------------------------- writing

    @property
    def head(self) -> AuditHead:
        with self._lock:
            return AuditHead(self._written - 1, self._prev)

    @property
    def next_seq(self) -> int:
        return self._written

    def add_listener(self, fn: Listener) -> None:
        self._listeners.append(fn)

    def remove_listener(self, fn: Listener) -> None:
        if fn in self._listeners:
            self._listeners.remove(fn)

    def append(
        self,
        type: str,
        *,
        session_id: str | None = None,
        run_id: str | None = None,
        data: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Write one event (not yet durable: call `sync()` before acknowledging it)."""
        return self.append_many(((type, session_id, run_id, data),))[0]

    def append_many(self, specs: Iterable[EventSpec]) -> list[dict[str, Any]]:
        """Write several events, in order, as consecutive seqs (not yet durable: call `sync()`
        before acknowledging them): each is checked and hashed as `append` would, then all go
        to the file in one `os.write` under one lock acquisition. The lines are byte for byte
        what one `append` per event writes (a checkpoint falls due inside the batch: it is
        written at its seq). All or nothing: an event that is refused writes none of them.
        Returns the written events (without checkpoints)."""
        items: list[EventSpec] = [
            (t, sid, rid, {} if data is None else data) for t, sid, rid, data in specs
        ]
        for item in items:
            _check_event(*item)
        if not items:
            return []
        with self._lock:
            return self._emit(items)

    def append_durable(self, type: str, **fields: Unpack[EventFields]) -> dict[str, Any]:
        """`append`, then `sync()`: the event is on disk when this returns."""
        event = self.append(type, **fields)
        self.sync()
        return event

    def _emit(self, items: list[EventSpec], *, checkpoint: bool = False) -> list[dict[str, Any]]:
        """Under the lock: encode `items` and each checkpoint falling due among them (with
        `checkpoint`, one after the last item; `close` passes no items), write all the lines
        with one `os.write`, then advance the chain, tell the listeners in order and, after a
        checkpoint, sync and replace HEAD. Returns the events of `items`."""
        if self._fd is None:
            raise AuditClosed(f"audit log {self.path} is not open")
        if self._failed is not None:
            raise AuditWriteError(f"audit log refuses appends after a failed write: {self._failed}")
        seq, prev, since = self._written, self._prev, self._since_checkpoint
        first_us = self._first_us
        every = self.checkpoint_every
        clock = self._clock or ids.clock()
        now = clock.now_iso
        # each event may need a checkpoint before it (time) or after it (count)
        next_id = clock.id_batch("evt", 2 * len(items) + 1)
        lines: list[bytes] = []
        written: list[dict[str, Any]] = []
        last_cp: dict[str, Any] | None = None
        for n, spec in enumerate(items):
            etype, session_id, run_id, data = spec
            ts = now()
            ts_us = self._ts_us(ts)
            if since and first_us is not None and self._due(first_us, ts_us):
                # this event would make the stretch span more than the interval: sign first
                last_cp, line = self._checkpoint_event(seq, prev, next_id(), ts)
                prev = last_cp["hash"]
                lines.append(line)
                written.append(last_cp)
                seq += 1
                since = 0
            if since == 0:
                first_us = ts_us
            event = {
                "seq": seq,
                "event_id": next_id(),
                "ts": ts,
                "session_id": session_id,
                "run_id": run_id,
                "type": etype,
                "data": data,
                "prev_hash": prev,
            }
            try:
                line, prev = event_line(event)
            except orjson.JSONEncodeError as exc:
                raise _explain(exc, spec) from None
            event["hash"] = prev
            lines.append(line)
            written.append(event)
            seq += 1
            since += 1
            if since < every and not (checkpoint and n == len(items) - 1):
                continue
            last_cp, line = self._checkpoint_event(seq, prev, next_id(), now())
            prev = last_cp["hash"]
            lines.append(line)
            written.append(last_cp)
            seq += 1
            since = 0
            first_us = None
        mine = [e for e in written if e["type"] != CHECKPOINT_TYPE] if last_cp else written
        if checkpoint and not items:
            last_cp, line = self._checkpoint_event(seq, prev, next_id(), now())
            prev = last_cp["hash"]
            lines.append(line)
            written.append(last_cp)
            seq += 1
            since = 0
            first_us = None
        try:
            view = memoryview(b"".join(lines))
            while view:
                n = os.write(self._fd, view)
                view = view[n:]
        except OSError as exc:
            self._failed = f"{exc.strerror} writing {self.path}"
            raise AuditWriteError(f"cannot write the audit log: {self._failed}") from exc
        self._written, self._prev, self._since_checkpoint = seq, prev, since
        if first_us != self._first_us:
            self._first_mono = time.monotonic()
            self._first_us = first_us
        self._last_type = written[-1]["type"]
        listeners = self._listeners
        if listeners:
            for event in written:
                for fn in list(listeners):
                    try:
                        fn(event)
                    except Exception:  # a broken listener must never stop auditing
                        log.exception("audit listener %r failed on event %d", fn, event["seq"])
        if last_cp is not None:
            self.sync()  # HEAD must never name an event that is not on disk
            write_private(
                self.head_path, orjson.dumps(last_cp, option=orjson.OPT_SORT_KEYS) + b"\n"
            )
            self.last_checkpoint = last_cp
        return mine

    def _checkpoint_event(
        self, seq: int, prev: str, event_id: str, ts: str
    ) -> tuple[dict[str, Any], bytes]:
        """The `audit.checkpoint` at `seq`, signing {seq, hash} of the event before it, with
        its `hash` set, and its line."""
        sig = self._key.sign(checkpoint_message(seq - 1, prev))
        event: dict[str, Any] = {
            "seq": seq,
            "event_id": event_id,
            "ts": ts,
            "session_id": None,
            "run_id": None,
            "type": CHECKPOINT_TYPE,
            "data": {
                "checkpoint_seq": seq - 1,
                "checkpoint_hash": prev,
                "signature": b64url_encode(sig),
                "key_id": self._key_id,
            },
            "prev_hash": prev,
        }
        line, event["hash"] = event_line(event)
        return event, line

    def _write_checkpoint(self) -> dict[str, Any]:
        self._emit([], checkpoint=True)
        assert self.last_checkpoint is not None
        return self.last_checkpoint

    def sync(self) -> None:
        """Return once every event appended before this call is on disk (group commit).

        One fsync runs at a time, started by a caller (the leader) and covering every line
        written when it starts. A caller whose events the running fsync covers waits for it
        to end; the first caller it does not cover waits to lead the next one (the heir);
        later callers wait for that one. So concurrent writers share fsyncs, a lone caller
        fsyncs at once with no other thread involved, and every wait is a plain lock (a
        latch per fsync, opened once; each waiter it wakes wakes the next), which costs
        about half the context switches of a condition variable's wake-all.

        Fails closed: after a failed (or interrupted) fsync every caller not yet durable,
        and every later append, raises `AuditWriteError`.
        """
        target = self._written
        lock = self._sync_lock
        lock.acquire()
        while True:
            if self._durable >= target:
                lock.release()
                return
            if self._failed is not None:
                lock.release()
                raise AuditWriteError(f"the audit log failed earlier: {self._failed}")
            running = self._running
            if running is None:
                break  # lead: start the fsync
            if running.upto >= target:
                latch = running.latch  # the running fsync covers this caller's events
            elif self._heir is None:
                heir = self._heir = _closed_latch()
                lock.release()
                heir.acquire()  # opened when the running fsync ends: look again, lead
                lock.acquire()
                continue
            else:
                latch = self._next_latch  # the heir's fsync will cover this caller
            lock.release()
            latch.acquire()  # opened when that fsync ends; pass the wake on
            latch.release()
            lock.acquire()
        fd = self._fd
        if fd is None:
            waiting, self._next_latch = self._next_latch, _closed_latch()
            lock.release()
            waiting.release()  # those who waited for this caller's fsync find out themselves
            raise AuditClosed(f"audit log {self.path} is not open")
        # every line counted here is already written; whoever waits on the next latch read
        # its target before this, so this fsync covers them all
        running = self._running = _Fsync(self._next_latch, self._written)
        self._next_latch = _closed_latch()
        lock.release()
        error: str | None = "the fsync was interrupted"
        try:
            os.fdatasync(fd)
            error = None
        except OSError as exc:
            error = f"{exc.strerror} syncing {self.path}"
            raise AuditWriteError(f"cannot sync the audit log: {error}") from exc
        finally:
            with lock:
                if error is None:
                    self.fsyncs += 1
                    self.fsynced_events += running.upto - self._durable
                    self._durable = running.upto
                else:
                    if self._failed is None:
                        self._failed = error
                    self._next_latch.release()  # no next fsync: its waiters find the failure
                    self._next_latch = _closed_latch()
                self._running = None
                next_leader, self._heir = self._heir, None
            running.latch.release()
            if next_leader is not None:
                next_leader.release()


class _Fsync(NamedTuple):
    """The running fsync: its waiters' latch and the count of events it makes durable."""

    latch: threading.Lock
    upto: int


def _closed_latch() -> threading.Lock:
    latch = threading.Lock()
    latch.acquire()
    return latch
