"""Reading the audit log: the line format, streaming iteration and the seq/run/session index.

Lines are written by `audit.AuditLog` in the canonical form of DESIGN section 5 (sorted keys,
compact, UTF-8) with `"hash"` appended last, so the top-level envelope fields that sort after
`data` can be located from the end of a line without parsing it.

The index (`audit/index.bin`) is derived and untrusted. Besides seq -> offset and run/session ->
seqs it keeps, per session, its runs in order and the seqs of its marks (denials, approvals'
ends, policy changes, its creation), so a session replay opens without scanning the session; a
reader checks each mark it uses (`AuditIndex.check_mark`) like any other event. It is kept
only with an HMAC keyed from the audit signing key (someone who can write `audit/` but cannot
read `keys/` cannot make one that is used); without the key it is rebuilt from the log on
every load and never saved. Every event loaded through it is checked (`AuditIndex.events`):
the seq and the run/session ids it was found under, its own hash, and its link to the line
after it (or before it, at the end). A mismatch rebuilds the index from the log and reads
again (`read_indexed`). The engine records every rebuild but that of an absent index as
`audit.index_rebuilt`. `IndexCache` keeps one index in memory between reads, refreshed
against the log before each.
"""

from __future__ import annotations

import bisect
import gc
import hashlib
import hmac
import json
import logging
import os
import re
import struct
import threading
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
INDEX_MAGIC = b"TALONIDX3\n"
INDEX_VERSION = 3
#: the marks kept per session: a denial (policy.decision DENY), an approval's end
#: (approval.decided), a policy change (policy.updated), the session's start (session.created)
MARK_KINDS = ("denial", "approval", "policy", "created")
_MARK_TYPES = {
    "policy.updated": "policy",
    "approval.decided": "approval",
    "session.created": "created",
}
_MARK_TYPES_RAW = {k.encode(): v for k, v in _MARK_TYPES.items()}
_DENY = b'"decision":"DENY"'
_MARK_FINDS = (
    (b'"type":"policy.updated"', b"policy.updated"),
    (b'"type":"approval.decided"', b"approval.decided"),
    (b'"type":"session.created"', b"session.created"),
    (_DENY, b"policy.decision"),
)
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
# escapes), the type's text. Nothing in it matches a newline, so each match lies within one
# line and ends it.
_TAIL_IDS = re.compile(
    rb',"run_id":(null|"[^"\\\n]*"),"seq":-?[0-9]+,"session_id":(null|"[^"\\\n]*"),'
    rb'"ts":"[^"\\\n]*","type":"([^"\\\n]*)","hash":"sha256:[0-9a-f]{64}"\}\n'
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


def _mark_of(ev: Any) -> str | None:
    """The mark kind of a parsed event (see MARK_KINDS), or None."""
    if type(ev) is not dict:
        return None
    etype = ev.get("type")
    if etype == "policy.decision":
        data = ev.get("data")
        return "denial" if type(data) is dict and data.get("decision") == "DENY" else None
    return _MARK_TYPES.get(etype) if isinstance(etype, str) else None


class AuditIndex:
    """seq -> byte offset, run_id -> seqs, session_id -> seqs, and per session its runs in
    order and its marks (MARK_KINDS -> seqs); persisted as `audit/index.bin`.

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
        #: session_id -> its runs' ids in the order of their first event
        self.session_runs: dict[str, list[str]] = {}
        #: session_id -> mark kind -> seqs, ascending
        self.marks: dict[str, dict[str, array[int]]] = {}
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

    def refreshed(self, *, save: bool = False) -> AuditIndex:
        """This index brought up to the log as it is now, as `load` would do it from disk:
        kept if the log is unchanged, extended if it only grew (saved only with `save`),
        else loaded again (`load`: the stored index if it fits, or rebuilt). Either way the
        events read through it are checked in full (`rebuilt` is cleared: it no longer says
        what this process just read from the log)."""
        if not self.log.exists():
            raise AuditLogMissing(f"no audit log at {self.log}")
        st = self.log.stat()
        if self.size == st.st_size and self.mtime_ns == st.st_mtime_ns:
            if self._last_line_matches():
                self.status, self.rebuilt = "reused", False
                return self
        elif self.size <= st.st_size and self._last_line_matches():
            self._scan(self.size)
            self.status, self.rebuilt = "extended", False
            self._finish(save)
            return self
        return AuditIndex.load(self.audit_dir, save=True, key=self.key)

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
        runs, sessions, types = zip(*map(_Match.groups, matches), strict=True)
        try:
            run_groups, session_groups = _groups(runs, first), _groups(sessions, first)
            marks = self._block_marks(block, cut, list(map(_Match.end, matches)), types)
            for seq, _kind in marks:
                sessions[seq].decode("utf-8")
        except UnicodeDecodeError:
            return False
        # each match ends its line, so line i+1 starts where match i ends
        self.offsets.append(offset)
        matches.pop()
        self.offsets.extend(map(add, map(_Match.end, matches), repeat(offset)))
        for key, seq, _count in run_groups:
            raw = sessions[seq - first]
            if key not in self.runs:
                self.runs[key] = array("I")
                if raw != b"null":
                    self.session_runs.setdefault(raw[1:-1].decode("utf-8"), []).append(key)
        for index, groups in ((self.runs, run_groups), (self.sessions, session_groups)):
            for key, seq, count in groups:
                arr = index.get(key)
                if arr is None:
                    arr = index[key] = array("I")
                arr.extend(range(seq, seq + count))
        for i, kind in marks:
            if sessions[i] != b"null":
                self._mark(sessions[i][1:-1].decode("utf-8"), kind, first + i)
        return True

    @staticmethod
    def _block_marks(
        block: bytes, cut: int, ends: list[int], types: tuple[bytes, ...]
    ) -> list[tuple[int, str]]:
        """(line number in the block, mark kind) of the block's marked lines, in line order.

        A line's own type (from its canonical tail) decides; a policy.decision line is a
        possible denial only when the literal `"decision":"DENY"` lies in it, and is then
        parsed to read its decision."""
        by_type = _MARK_TYPES_RAW.get
        found = [(i, kind) for i, t in enumerate(types) if (kind := by_type(t)) is not None]
        pos = block.find(_DENY, 0, cut)
        while pos >= 0:
            i = bisect.bisect_right(ends, pos)
            if types[i] == b"policy.decision":
                start = ends[i - 1] if i else 0
                try:
                    if _mark_of(orjson.loads(block[start : ends[i]])) == "denial":
                        found.append((i, "denial"))
                except orjson.JSONDecodeError:
                    pass  # not JSON: not a denial (verify reports the line)
            pos = block.find(_DENY, ends[i], cut)
        found.sort()
        return found

    def _mark(self, session_id: str, kind: str, seq: int) -> None:
        kinds = self.marks.get(session_id)
        if kinds is None:
            kinds = self.marks[session_id] = {}
        arr = kinds.get(kind)
        if arr is None:
            arr = kinds[kind] = array("I")
        arr.append(seq)

    def _index_lines(self, lines: list[bytes], offset: int) -> None:
        offsets, runs, sessions = self.offsets, self.runs, self.sessions
        for line in lines:
            seq = len(offsets)
            ids = _envelope_ids(line)
            ev: Any = None
            if ids is None or any(needle in line for needle, _t in _MARK_FINDS):
                try:
                    ev = orjson.loads(line)
                except orjson.JSONDecodeError:
                    ev = None
            if ids is None:
                try:
                    run_id, session_id = ev.get("run_id"), ev.get("session_id")
                except AttributeError:
                    run_id = session_id = None
            else:
                _, run_id, session_id = ids
            offsets.append(offset)
            if isinstance(run_id, str):
                if run_id not in runs and isinstance(session_id, str):
                    self.session_runs.setdefault(session_id, []).append(run_id)
                runs.setdefault(run_id, array("I")).append(seq)
            if isinstance(session_id, str):
                sessions.setdefault(session_id, array("I")).append(seq)
                kind = _mark_of(ev)
                if kind is not None:
                    self._mark(session_id, kind, seq)
            offset += len(line)

    def save(self) -> None:
        """Write `index.bin` with its MAC (only with a key: without one it would never be used)."""
        if self.key is None:
            raise AuditError("the audit index is saved only with its key")
        header = orjson.dumps(
            {
                "version": INDEX_VERSION,
                "size": self.size,
                "mtime_ns": self.mtime_ns,
                "last_hash": self.last_hash,
                "count": len(self.offsets),
                "runs": [[k, len(v)] for k, v in self.runs.items()],
                "sessions": [[k, len(v)] for k, v in self.sessions.items()],
                "session_runs": self.session_runs,
                "marks": {
                    sid: {kind: v.tolist() for kind, v in kinds.items()}
                    for sid, kinds in self.marks.items()
                },
            }
        )
        body = b"".join(
            [
                INDEX_MAGIC,
                struct.pack("<Q", len(header)),
                header,
                self.offsets.tobytes(),
                *(v.tobytes() for v in self.runs.values()),
                *(v.tobytes() for v in self.sessions.values()),
            ]
        )
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
        # views, not copies: the index of a large log is tens of MB
        body, mac = memoryview(blob)[:-_MAC_BYTES], blob[-_MAC_BYTES:]
        if len(blob) < len(INDEX_MAGIC) + 8 + _MAC_BYTES or not hmac.compare_digest(
            mac, hmac.new(self.key, body, hashlib.sha256).digest()
        ):
            return "modified (index.bin does not match its MAC)"
        view = body
        pos = len(INDEX_MAGIC)
        (hlen,) = struct.unpack_from("<Q", view, pos)
        pos += 8
        try:
            meta = orjson.loads(view[pos : pos + hlen])
            if meta.get("version") != INDEX_VERSION:
                return "unreadable (another version)"
            pos += hlen
            count = int(meta["count"])
            offsets = array("Q")
            offsets.frombytes(view[pos : pos + 8 * count])
            seqs = array("I")
            seqs.frombytes(view[pos + 8 * count :])
            view.release()
            del blob  # the file's bytes are in the arrays now: not held while they are split
            tables: list[dict[str, array[int]]] = [{}, {}]
            at = 0
            for table, name in zip(tables, ("runs", "sessions"), strict=True):
                for key, n in meta[name]:
                    table[str(key)] = seqs[at : at + int(n)]
                    at += int(n)
            if len(offsets) != count or at != len(seqs):
                return "unreadable (its parts do not add up)"
            self.offsets = offsets
            self.runs, self.sessions = tables
            self.session_runs = {
                str(k): [str(r) for r in v] for k, v in meta["session_runs"].items()
            }
            self.marks = {
                str(sid): {str(kind): array("I", v) for kind, v in kinds.items()}
                for sid, kinds in meta["marks"].items()
            }
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

    def runs_of(self, session_id: str) -> list[str]:
        """The session's runs (those whose first event is the session's), oldest first."""
        return self.session_runs.get(session_id, [])

    def marked(self, session_id: str, kind: str) -> array[int]:
        """The seqs of the session's marks of `kind` (MARK_KINDS), ascending; an event read
        from here is checked with `check_mark`."""
        return self.marks.get(session_id, {}).get(kind, array("I"))

    def check_mark(self, ev: dict[str, Any], kind: str) -> None:
        """IndexMismatch unless `ev` (read through this index) is a mark of `kind`."""
        if _mark_of(ev) != kind:
            raise IndexMismatch(f"the index marks seq {ev.get('seq')} as a {kind}; it is not")

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
        # the line after an event is read to check its link: for consecutive seqs it is the
        # next event: its line and parse are kept and used for it (read once, handed out once)
        ahead: list[Any] = [-1, b"", None]
        with open(self.log, "rb") as fh:
            for seq in seqs:
                yield self._checked(fh, seq, run_id, session_id, ahead)

    def _checked(
        self, fh: Any, seq: int, run_id: str | None, session_id: str | None, ahead: list[Any]
    ) -> tuple[bytes, dict[str, Any]]:
        if not 0 <= seq < len(self.offsets):
            raise IndexMismatch(f"the index names seq {seq}, which it has no offset for")
        offset = self.offsets[seq]
        if ahead[0] == offset and ahead[2] is not None:
            line, ev = ahead[1], ahead[2]
        else:
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
        ahead[:] = offset + len(line), after, nxt
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
    cache: IndexCache | None = None,
) -> _T:
    """`read(index)` with a fresh index; if an event read through it does not check out, the
    index is rebuilt from the log and `read` runs again. The rebuilt index says what the log
    says, so a mismatch then is a bug or a log changing underneath: AuditCorrupt. With a
    `cache`, its index is used (and refreshed) instead of one loaded for this read."""
    if cache is not None:
        return cache.read(read, on_rebuild=on_rebuild)
    if key is KEY_FROM_DATA_DIR:
        key = index_key_for(audit_dir)
    return _read_retrying(AuditIndex.load(audit_dir, key=key), read, on_rebuild)[0]


def _read_retrying(
    idx: AuditIndex, read: Callable[[AuditIndex], _T], on_rebuild: Callable[[str], None] | None
) -> tuple[_T, AuditIndex]:
    """`read(idx)`; on IndexMismatch, once more with an index rebuilt from the log."""
    if on_rebuild is not None and idx.rebuilt:
        on_rebuild(idx.status)
    try:
        return read(idx), idx
    except IndexMismatch as exc:
        why = f"an event did not check out: {exc}"
        idx = AuditIndex.rebuild(idx.audit_dir, key=idx.key, why=why)
    if on_rebuild is not None:
        on_rebuild(idx.status)
    try:
        return read(idx), idx
    except IndexMismatch as exc:
        raise AuditCorrupt(
            f"{idx.log}: {exc} even in an index rebuilt from the log: the log is damaged "
            "(run `talon audit verify`)"
        ) from exc


class IndexCache:
    """One audit index kept in memory between reads, so that a reader asking again and again
    (the session replay's windows and jumps, the CLI's pages) does not load `index.bin` each
    time. Each read refreshes it first (`AuditIndex.refreshed`: kept, extended or loaded
    again as `AuditIndex.load` decides), checks every event it reads as `read_indexed` does,
    and keeps the rebuilt index after a mismatch. Reads through one cache run one at a time."""

    def __init__(self, audit_dir: Path, *, key: Any = KEY_FROM_DATA_DIR) -> None:
        self.audit_dir = Path(audit_dir)
        self.key = index_key_for(self.audit_dir) if key is KEY_FROM_DATA_DIR else key
        self._index: AuditIndex | None = None
        self._lock = threading.Lock()

    def read(
        self, read: Callable[[AuditIndex], _T], *, on_rebuild: Callable[[str], None] | None = None
    ) -> _T:
        with self._lock:
            if self._index is None:
                idx = AuditIndex.load(self.audit_dir, key=self.key)
            else:
                idx = self._index.refreshed()
            self._index = idx
            out, self._index = _read_retrying(idx, read, on_rebuild)
            return out


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
    if agrees:
        agrees = _summaries_agree(stored, fresh, n)
    if not agrees:
        return "does not match the log (its MAC verifies: was the log rewritten?)"
    return f"ok (covers {n} of {len(fresh.offsets)} events)"


def _summaries_agree(stored: AuditIndex, fresh: AuditIndex, n: int) -> bool:
    """The stored per-session runs and marks are those of the log's first `n` events."""
    for sid in set(stored.session_runs) | set(fresh.session_runs):
        runs = [r for r in fresh.session_runs.get(sid, []) if fresh.runs[r][0] < n]
        if stored.session_runs.get(sid, []) != runs:
            return False
    for sid in set(stored.marks) | set(fresh.marks):
        for kind in MARK_KINDS:
            want = [s for s in fresh.marked(sid, kind) if s < n]
            if list(stored.marked(sid, kind)) != want:
                return False
    return True


def file_size(path: Path) -> int:
    return os.stat(path).st_size
