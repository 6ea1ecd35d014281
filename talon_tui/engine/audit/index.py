"""Reading the audit log: the line format, streaming iteration and the seq/run/session index.

Lines are written by `audit.AuditLog` in the canonical form of DESIGN section 5 (sorted keys,
compact, UTF-8) with `"hash"` appended last, so the top-level envelope fields that sort after
`data` can be located from the end of a line without parsing it.

The index (`audit/index.bin`) is derived and untrusted. It is kept only with an HMAC keyed from
the audit signing key (someone who can write `audit/` but cannot read `keys/` cannot make one
that is used); without the key it is rebuilt from the log on every load and never saved. Every
event loaded through it is checked (`AuditIndex.events`): the seq and the run/session ids it
was found under, its own hash, and its link to the line after it (or before it, at the end). A
mismatch rebuilds the index from the log and reads again (`read_indexed`). The engine records
every rebuild but that of an absent index as `audit.index_rebuilt`.
"""

from __future__ import annotations

import gc
import hashlib
import hmac
import json
import logging
import os
import re
import struct
from array import array
from collections.abc import Callable, Iterator
from itertools import groupby, repeat
from operator import add
from pathlib import Path
from typing import Any, TypeVar

import orjson
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from ..core import keys
from ..core.canon import NotCanonical, canonical, exact_types, reencode, sha256_tag
from ..core.paths import write_private
from ..errors import NotFound
from .errors import AuditCorrupt, AuditError, AuditLogMissing, IndexMismatch

ZERO_HASH = "sha256:" + "0" * 64
LOG_NAME = "audit.jsonl"
HEAD_NAME = "HEAD"
INDEX_NAME = "index.bin"
INDEX_MAGIC = b"TALONIDX2\n"
_MAC_BYTES = 32
_MAC_LABEL = b"talon audit index mac v1\x00"
_T = TypeVar("_T")
log = logging.getLogger(__name__)
_HASH_FIELD = b',"hash":"'
_RUN_FIELD = b',"run_id":'
_SCAN_BLOCK = 4 << 20
_Match = re.Match
# The end of a line as the writer makes it: run_id, seq, session_id, ts, type, hash (sorted
# keys, last members). Groups: run_id and session_id as raw JSON (null or a string without
# escapes). Nothing in it matches a newline, so each match lies within one line and ends it.
_TAIL_IDS = re.compile(
    rb',"run_id":(null|"[^"\\\n]*"),"seq":-?[0-9]+,"session_id":(null|"[^"\\\n]*"),'
    rb'"ts":"[^"\\\n]*","type":"[^"\\\n]*","hash":"sha256:[0-9a-f]{64}"\}\n'
)


def _groups(raw_ids: tuple[bytes, ...], first: int) -> list[tuple[str, int, int]]:
    """(id, first seq, count) for each run of equal raw JSON ids from seq `first`; null skipped."""
    out = []
    seq = first
    for raw, same in groupby(raw_ids):
        n = len(list(same))
        if raw != b"null":
            out.append((raw[1:-1].decode("utf-8"), seq, n))
        seq += n
    return out


def index_key(private_key: Ed25519PrivateKey) -> bytes:
    """The HMAC key of `index.bin`: derived from the audit signing key, with its own label."""
    raw = private_key.private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
    )
    return hashlib.sha256(_MAC_LABEL + raw).digest()


def index_key_for(audit_dir: Path) -> bytes | None:
    """`index_key` of `<data>/keys/`'s audit key next to `<data>/audit/`, or None when that key
    cannot be read here (then the index is rebuilt in memory on every load)."""
    path = keys.private_key_path(Path(audit_dir).parent / "keys", "audit")
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except (OSError, ValueError, TypeError):
        return None
    return index_key(key) if isinstance(key, Ed25519PrivateKey) else None


def log_path(audit_dir: Path) -> Path:
    return Path(audit_dir) / LOG_NAME


def split_hash(line: bytes) -> tuple[bytes, str] | None:
    """(canonical bytes without the hash field, hash) if `line` has our exact trailing layout."""
    body = line[:-1] if line.endswith(b"\n") else line
    i = body.rfind(_HASH_FIELD)
    if i < 0 or not body.endswith(b'"}'):
        return None
    h = body[i + len(_HASH_FIELD) : -2]
    if len(h) != 71 or not h.startswith(b"sha256:"):
        return None
    return body[:i] + b"}", h.decode("ascii", "replace")


def event_hash(line: bytes, ev: dict[str, Any]) -> str | None:
    """The hash DESIGN section 5 gives the event on `line` (parsed as `ev`): sha256 of its
    prev_hash and its canonical form without "hash"; None if it has no canonical form."""
    prev = ev.get("prev_hash")
    if type(prev) is not str:
        return None
    parts = split_hash(line)
    without = {k: v for k, v in ev.items() if k != "hash"}
    if parts is not None and parts[1] == ev.get("hash"):
        try:
            fast = reencode(without)
        except orjson.JSONEncodeError:
            fast = b""
        if fast == parts[0] and exact_types(without):  # no float, no big int anywhere
            return sha256_tag(prev.encode() + fast)
    try:  # the authoritative form: the standard library's parse of the very bytes
        std = json.loads(line)
        std.pop("hash", None)
        body = canonical(std)
    except (ValueError, AttributeError, NotCanonical):
        return None
    return sha256_tag(prev.encode() + body)


def iter_events(path: Path, from_offset: int = 0) -> Iterator[tuple[int, dict[str, Any]]]:
    """Yield (offset, event) for each complete line from `from_offset` (a line start).

    Streams the file; stops at a torn last line (no newline). A line that is not JSON raises
    AuditError naming its offset.
    """
    path = Path(path)
    if not path.exists():
        raise AuditLogMissing(f"no audit log at {path}")
    with open(path, "rb") as fh:
        fh.seek(from_offset)
        offset = from_offset
        for line in fh:
            if not line.endswith(b"\n"):
                return
            try:
                event = orjson.loads(line)
            except orjson.JSONDecodeError as exc:
                raise AuditError(f"{path}: line at byte {offset} is not JSON ({exc})") from exc
            yield offset, event
            offset += len(line)


def read_event_at(path: Path, offset: int) -> dict[str, Any]:
    with open(path, "rb") as fh:
        fh.seek(offset)
        line = fh.readline()
    try:
        event: dict[str, Any] = orjson.loads(line)
        return event
    except orjson.JSONDecodeError as exc:
        raise AuditError(f"{path}: line at byte {offset} is not JSON ({exc})") from exc


def _envelope_ids(line: bytes) -> tuple[int, str | None, str | None] | None:
    """(seq, run_id, session_id) read from the end of a canonical line, or None."""
    i = line.rfind(_RUN_FIELD)
    if i < 0:
        return None
    rest = line[i + len(_RUN_FIELD) :]
    try:
        run_raw, rest = _take_value(rest)
        if not rest.startswith(b',"seq":'):
            return None
        rest = rest[7:]
        j = rest.index(b",")
        seq = int(rest[:j])
        rest = rest[j:]
        if not rest.startswith(b',"session_id":'):
            return None
        sess_raw, _ = _take_value(rest[14:])
    except ValueError:
        return None
    return seq, run_raw, sess_raw


def _take_value(b: bytes) -> tuple[str | None, bytes]:
    if b.startswith(b"null"):
        return None, b[4:]
    if not b.startswith(b'"'):
        raise ValueError("not a string")
    j = b.index(b'"', 1)
    if b.find(b"\\", 1, j) >= 0:
        raise ValueError("escaped id")
    return b[1:j].decode("utf-8"), b[j + 1 :]


#: `key=` default: derive the index key from `<data>/keys/` next to `<data>/audit/` if readable
KEY_FROM_DATA_DIR: Any = object()


class AuditIndex:
    """seq -> byte offset, run_id -> seqs, session_id -> seqs; persisted as `audit/index.bin`.

    `AuditIndex.load(audit_dir)` returns a fresh index: it reuses the stored one when its MAC
    verifies and the log's size, mtime and last hash still match, extends it when the log only
    grew, and rebuilds it from the log otherwise (missing, unreadable, modified, stale, or no
    key to check it with). `status` says which, and why.
    """

    def __init__(self, audit_dir: Path, key: bytes | None = None) -> None:
        self.audit_dir = Path(audit_dir)
        self.key = key
        self.status = "new"
        self.offsets = array("Q")
        self.runs: dict[str, array[int]] = {}
        self.sessions: dict[str, array[int]] = {}
        self.size = 0
        self.mtime_ns = 0
        self.last_hash: str | None = None
        self.rebuilt = False

    @property
    def path(self) -> Path:
        return self.audit_dir / INDEX_NAME

    @property
    def log(self) -> Path:
        return self.audit_dir / LOG_NAME

    def __len__(self) -> int:
        return len(self.offsets)

    @classmethod
    def load(
        cls, audit_dir: Path, *, save: bool = True, key: Any = KEY_FROM_DATA_DIR
    ) -> AuditIndex:
        """The index of the log as it is now (see the class docstring). `key` is the index
        key (`index_key`); by default it is derived from `<data>/keys/` when readable."""
        if key is KEY_FROM_DATA_DIR:
            key = index_key_for(audit_dir)
        idx = cls(audit_dir, key)
        if not idx.log.exists():
            raise AuditLogMissing(f"no audit log at {idx.log}")
        st = idx.log.stat()
        why = idx._read_stored()
        if not why:
            fresh = idx.size == st.st_size and idx.mtime_ns == st.st_mtime_ns
            if fresh and idx._last_line_matches():
                idx.status = "reused"
                return idx
            if idx.size <= st.st_size and idx._last_line_matches():
                idx._scan(idx.size)
                idx.status = "extended"
                idx._finish(save)
                return idx
            why = "stale (the log changed behind it)"
        return cls.rebuild(audit_dir, key=key, why=why, save=save)

    @classmethod
    def rebuild(
        cls, audit_dir: Path, *, key: bytes | None, why: str, save: bool = True
    ) -> AuditIndex:
        """A new index built from the log alone (saved with its MAC when there is a key)."""
        idx = cls(audit_dir, key)
        idx.rebuilt = True
        idx.status = f"rebuilt: {why}"
        idx._scan(0)
        idx._finish(save)
        return idx

    def _finish(self, save: bool) -> None:
        st = self.log.stat()
        self.mtime_ns = st.st_mtime_ns
        if save and self.key is not None:
            try:
                self.save()
            except OSError as exc:  # a cache: the index in hand is good, the next load rebuilds
                log.warning("cannot save %s: %s", self.path, exc)

    def _last_line_matches(self) -> bool:
        if not self.offsets:
            return self.size == 0
        with open(self.log, "rb") as fh:
            fh.seek(self.offsets[-1])
            line = fh.readline()
        parts = split_hash(line)
        return parts is not None and parts[1] == self.last_hash

    def _scan(self, start: int) -> None:
        """Index every complete line from `start` (a line start) to the end of the log.

        Reads big blocks; when every line of a block ends in the canonical tail
        `,"run_id":…,"seq":N,"session_id":…,"ts":"…","type":"…","hash":"…"}` (one regex pass
        finds them all), offsets and ids come from C-level calls; otherwise that block is
        indexed line by line as before (orjson for lines in any other layout).
        """
        offset = start
        last: bytes | None = None
        gc_was_enabled = gc.isenabled()
        gc.disable()
        try:
            with open(self.log, "rb") as fh:
                fd = fh.fileno()
                while True:
                    block = os.pread(fd, _SCAN_BLOCK, offset)
                    cut = block.rfind(b"\n") + 1
                    if cut == 0:
                        if len(block) < _SCAN_BLOCK:
                            break  # end of log, or a torn tail: not part of the log yet
                        fh.seek(offset)
                        line = fh.readline()  # one line longer than a block
                        if not line.endswith(b"\n"):
                            break
                        self._index_lines([line], offset)
                        offset += len(line)
                        last = line
                        continue
                    if not self._index_block(block, cut, offset):
                        lines = block[:cut].splitlines(keepends=True)
                        self._index_lines(lines, offset)
                    offset += cut
                    last = block[block.rfind(b"\n", 0, cut - 1) + 1 :]
        finally:
            if gc_was_enabled:
                gc.enable()
        if last is not None:
            parts = split_hash(last)
            self.last_hash = parts[1] if parts else None
        self.size = offset

    def _index_block(self, block: bytes, cut: int, offset: int) -> bool:
        """Index the whole lines in block[:cut] in bulk; False (nothing changed) if one differs."""
        matches = list(_TAIL_IDS.finditer(block, 0, cut))
        n = len(matches)
        if n != block.count(b"\n", 0, cut):
            return False
        first = len(self.offsets)
        runs, sessions = zip(*map(_Match.groups, matches), strict=True)
        try:
            run_groups, session_groups = _groups(runs, first), _groups(sessions, first)
        except UnicodeDecodeError:
            return False
        # each match ends its line, so line i+1 starts where match i ends
        self.offsets.append(offset)
        matches.pop()
        self.offsets.extend(map(add, map(_Match.end, matches), repeat(offset)))
        for index, groups in ((self.runs, run_groups), (self.sessions, session_groups)):
            for key, seq, count in groups:
                arr = index.get(key)
                if arr is None:
                    arr = index[key] = array("I")
                arr.extend(range(seq, seq + count))
        return True

    def _index_lines(self, lines: list[bytes], offset: int) -> None:
        offsets, runs, sessions = self.offsets, self.runs, self.sessions
        for line in lines:
            seq = len(offsets)
            ids = _envelope_ids(line)
            if ids is None:
                try:
                    ev = orjson.loads(line)
                    run_id, session_id = ev.get("run_id"), ev.get("session_id")
                except (orjson.JSONDecodeError, AttributeError):
                    run_id = session_id = None
            else:
                _, run_id, session_id = ids
            offsets.append(offset)
            if isinstance(run_id, str):
                runs.setdefault(run_id, array("I")).append(seq)
            if isinstance(session_id, str):
                sessions.setdefault(session_id, array("I")).append(seq)
            offset += len(line)

    def save(self) -> None:
        """Write `index.bin` with its MAC (only with a key: without one it would never be used)."""
        if self.key is None:
            raise AuditError("the audit index is saved only with its key")
        header = orjson.dumps(
            {
                "version": 2,
                "size": self.size,
                "mtime_ns": self.mtime_ns,
                "last_hash": self.last_hash,
                "count": len(self.offsets),
                "runs": {k: v.tolist() for k, v in self.runs.items()},
                "sessions": {k: v.tolist() for k, v in self.sessions.items()},
            }
        )
        body = INDEX_MAGIC + struct.pack("<Q", len(header)) + header + self.offsets.tobytes()
        write_private(self.path, body + hmac.new(self.key, body, hashlib.sha256).digest())

    def _read_stored(self) -> str:
        """Load `index.bin` if its MAC verifies; "" when loaded, else why it was not."""
        if self.key is None:
            return "no key to check index.bin with (the audit private key is not readable here)"
        try:
            blob = self.path.read_bytes()
        except FileNotFoundError:
            return "absent"
        except OSError as exc:
            return f"unreadable ({exc.strerror})"
        if not blob.startswith(INDEX_MAGIC):
            return "not in this version's format (an older Talon wrote it, or it was edited)"
        body, mac = blob[:-_MAC_BYTES], blob[-_MAC_BYTES:]
        if len(blob) < len(INDEX_MAGIC) + 8 + _MAC_BYTES or not hmac.compare_digest(
            mac, hmac.new(self.key, body, hashlib.sha256).digest()
        ):
            return "modified (index.bin does not match its MAC)"
        blob = body
        pos = len(INDEX_MAGIC)
        (hlen,) = struct.unpack_from("<Q", blob, pos)
        pos += 8
        try:
            meta = orjson.loads(blob[pos : pos + hlen])
            offsets = array("Q")
            offsets.frombytes(blob[pos + hlen :])
            if meta.get("version") != 2 or len(offsets) != meta["count"]:
                return "unreadable (another version)"
            self.offsets = offsets
            self.runs = {k: array("I", v) for k, v in meta["runs"].items()}
            self.sessions = {k: array("I", v) for k, v in meta["sessions"].items()}
            self.size, self.mtime_ns = int(meta["size"]), int(meta["mtime_ns"])
            self.last_hash = meta["last_hash"]
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError, OverflowError):
            return "unreadable"
        return ""

    # ---------------------------------------------------------------- lookups

    def offset_of(self, seq: int) -> int:
        if not 0 <= seq < len(self.offsets):
            raise NotFound(f"no audit event with seq {seq}")
        return self.offsets[seq]

    def seqs_for(self, *, run_id: str | None = None, session_id: str | None = None) -> list[int]:
        if run_id is not None and session_id is not None:
            a = set(self.runs.get(run_id, ()))
            return [s for s in self.sessions.get(session_id, ()) if s in a]
        if run_id is not None:
            return list(self.runs.get(run_id, ()))
        if session_id is not None:
            return list(self.sessions.get(session_id, ()))
        return list(range(len(self.offsets)))

    def events(
        self, seqs: Any, *, run_id: str | None = None, session_id: str | None = None
    ) -> Iterator[dict[str, Any]]:
        """The events at `seqs`, read by offset (one open file), each checked: IndexMismatch
        unless it carries that seq (and `run_id` / `session_id`, the lists it was found in)
        and its hash holds and links to its neighbour in the file."""
        for _line, event in self.lines(seqs, run_id=run_id, session_id=session_id):
            yield event

    def lines(
        self, seqs: Any, *, run_id: str | None = None, session_id: str | None = None
    ) -> Iterator[tuple[bytes, dict[str, Any]]]:
        """(line, event) for each of `seqs`, checked as `events` does (an index this process
        has just rebuilt from the log is checked for seq and ids only: the chain's own damage
        is `verify_log`'s to report, and replay shows what the log holds)."""
        with open(self.log, "rb") as fh:
            for seq in seqs:
                yield self._checked(fh, seq, run_id, session_id)

    def _checked(
        self, fh: Any, seq: int, run_id: str | None, session_id: str | None
    ) -> tuple[bytes, dict[str, Any]]:
        if not 0 <= seq < len(self.offsets):
            raise IndexMismatch(f"the index names seq {seq}, which it has no offset for")
        offset = self.offsets[seq]
        line, ev = self._line_at(fh, offset)
        if ev is None:
            raise IndexMismatch(f"the index puts seq {seq} at byte {offset}: no event there")
        if run_id is not None and ev.get("run_id") != run_id:
            raise IndexMismatch(f"the index lists seq {seq} under run {run_id}, not its run")
        if session_id is not None and ev.get("session_id") != session_id:
            raise IndexMismatch(f"the index lists seq {seq} under session {session_id}")
        if self.rebuilt:
            # built from the log by this process just now, line by line: it says what the log
            # says; whether the log's seqs and hashes hold is `verify_log`'s to report
            return line, ev
        if ev.get("seq") != seq:
            raise IndexMismatch(f"the index puts seq {seq} at byte {offset}, which holds another")
        if event_hash(line, ev) != ev.get("hash"):
            raise IndexMismatch(f"event {seq} at byte {offset} does not match its hash")
        after, nxt = self._line_at(fh, offset + len(line))
        if nxt is not None and after.endswith(b"\n"):
            if nxt.get("seq") != seq + 1 or nxt.get("prev_hash") != ev["hash"]:
                raise IndexMismatch(f"event {seq} at byte {offset} is not linked to the next")
        elif seq == 0:
            if ev.get("prev_hash") != ZERO_HASH:
                raise IndexMismatch("event 0 does not start the chain")
        else:  # the last complete line: check the link back instead
            before, prev = self._line_at(fh, self.offsets[seq - 1])
            if (
                prev is None
                or prev.get("seq") != seq - 1
                or event_hash(before, prev) != prev.get("hash")
                or prev.get("hash") != ev.get("prev_hash")
            ):
                raise IndexMismatch(f"event {seq} at byte {offset} is not linked to the one before")
        return line, ev

    @staticmethod
    def _line_at(fh: Any, offset: int) -> tuple[bytes, dict[str, Any] | None]:
        fh.seek(offset)
        line = fh.readline()
        if not line.endswith(b"\n"):
            return line, None
        try:
            ev = orjson.loads(line)
        except orjson.JSONDecodeError:
            return line, None
        return line, ev if type(ev) is dict else None


def read_indexed(
    audit_dir: Path,
    read: Callable[[AuditIndex], _T],
    *,
    key: Any = KEY_FROM_DATA_DIR,
    on_rebuild: Callable[[str], None] | None = None,
) -> _T:
    """`read(index)` with a fresh index; if an event read through it does not check out, the
    index is rebuilt from the log and `read` runs again. The rebuilt index says what the log
    says, so a mismatch then is a bug or a log changing underneath: AuditCorrupt."""
    if key is KEY_FROM_DATA_DIR:
        key = index_key_for(audit_dir)
    idx = AuditIndex.load(audit_dir, key=key)
    if on_rebuild is not None and idx.rebuilt:
        on_rebuild(idx.status)
    try:
        return read(idx)
    except IndexMismatch as exc:
        idx = AuditIndex.rebuild(audit_dir, key=key, why=f"an event did not check out: {exc}")
    if on_rebuild is not None:
        on_rebuild(idx.status)
    try:
        return read(idx)
    except IndexMismatch as exc:
        raise AuditCorrupt(
            f"{idx.log}: {exc} even in an index rebuilt from the log: the log is damaged "
            "(run `talon audit verify`)"
        ) from exc


def query(
    audit_dir: Path,
    session_id: str | None = None,
    run_id: str | None = None,
    types: list[str] | None = None,
    from_seq: int = 0,
    limit: int = 1000,
    *,
    key: Any = KEY_FROM_DATA_DIR,
    on_rebuild: Callable[[str], None] | None = None,
) -> list[dict[str, Any]]:
    """Events matching every given filter, in seq order, at most `limit` (read through the
    index, every event checked)."""
    wanted = set(types) if types else None
    if limit <= 0:
        return []

    def read(idx: AuditIndex) -> list[dict[str, Any]]:
        if session_id is None and run_id is None:
            seqs: Any = range(max(0, from_seq), len(idx))
        else:
            seqs = [s for s in idx.seqs_for(run_id=run_id, session_id=session_id) if s >= from_seq]
        out: list[dict[str, Any]] = []
        for ev in idx.events(seqs, run_id=run_id, session_id=session_id):
            if wanted is None or ev.get("type") in wanted:
                out.append(ev)
                if len(out) >= limit:
                    break
        return out

    return read_indexed(audit_dir, read, key=key, on_rebuild=on_rebuild)


def check_index(audit_dir: Path, key: Any = KEY_FROM_DATA_DIR) -> str:
    """What `talon audit verify` says about `index.bin`: whether its MAC verifies and every
    entry it holds agrees with an index rebuilt from the log (nothing is written)."""
    if key is KEY_FROM_DATA_DIR:
        key = index_key_for(audit_dir)
    if key is None:
        return "not checked: the audit private key is not readable here"
    stored = AuditIndex(audit_dir, key)
    why = stored._read_stored()
    if why == "absent":
        return "absent (built from the log on the next read)"
    if why:
        return f"{why}: readers ignore it and rebuild it from the log"
    fresh = AuditIndex(audit_dir, key)
    fresh._scan(0)
    n = len(stored.offsets)
    agrees = n <= len(fresh.offsets) and stored.offsets == fresh.offsets[:n]
    for mine, theirs in ((stored.runs, fresh.runs), (stored.sessions, fresh.sessions)):
        if not agrees:
            break
        keys_ = set(mine) | {k for k, v in theirs.items() if v[0] < n}
        for k in keys_:
            have = list(mine.get(k, ()))
            want = [s for s in theirs.get(k, ()) if s < n]
            if have != want:
                agrees = False
                break
    if not agrees:
        return "does not match the log (its MAC verifies: was the log rewritten?)"
    return f"ok (covers {n} of {len(fresh.offsets)} events)"


def file_size(path: Path) -> int:
    return os.stat(path).st_size
