"""Reading the audit log: the line format, streaming iteration and the seq/run/session index.

Lines are written by `audit.AuditLog` in the canonical form of DESIGN section 5 (sorted keys,
compact, UTF-8) with `"hash"` appended last, so the top-level envelope fields that sort after
`data` can be located from the end of a line without parsing it. The index is only a locator:
readers re-check each event they load, and `verify_log` is what vouches for the chain.
"""

from __future__ import annotations

import gc
import os
import re
import struct
from array import array
from collections.abc import Iterator
from itertools import groupby, repeat
from operator import add
from pathlib import Path
from typing import Any

import orjson

from ..core.paths import write_private
from ..errors import NotFound
from .errors import AuditError, AuditLogMissing

ZERO_HASH = "sha256:" + "0" * 64
LOG_NAME = "audit.jsonl"
HEAD_NAME = "HEAD"
INDEX_NAME = "index.bin"
INDEX_MAGIC = b"TALONIDX1\n"
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


class AuditIndex:
    """seq -> byte offset, run_id -> seqs, session_id -> seqs; persisted as `audit/index.bin`.

    `AuditIndex.load(audit_dir)` returns a fresh index: it reuses the stored one when the log's
    size, mtime and last hash still match, extends it when the log only grew, and rebuilds it
    from the log otherwise (missing, unreadable or stale).
    """

    def __init__(self, audit_dir: Path) -> None:
        self.audit_dir = Path(audit_dir)
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
    def load(cls, audit_dir: Path, *, save: bool = True) -> AuditIndex:
        idx = cls(audit_dir)
        if not idx.log.exists():
            raise AuditLogMissing(f"no audit log at {idx.log}")
        st = idx.log.stat()
        if idx._read_stored():
            fresh = idx.size == st.st_size and idx.mtime_ns == st.st_mtime_ns
            if fresh and idx._last_line_matches():
                return idx
            if idx.size <= st.st_size and idx._last_line_matches():
                idx._scan(idx.size)
                idx._finish(save)
                return idx
        idx = cls(audit_dir)
        idx.rebuilt = True
        idx._scan(0)
        idx._finish(save)
        return idx

    def _finish(self, save: bool) -> None:
        st = self.log.stat()
        self.mtime_ns = st.st_mtime_ns
        if save:
            self.save()

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
        header = orjson.dumps(
            {
                "version": 1,
                "size": self.size,
                "mtime_ns": self.mtime_ns,
                "last_hash": self.last_hash,
                "count": len(self.offsets),
                "runs": {k: v.tolist() for k, v in self.runs.items()},
                "sessions": {k: v.tolist() for k, v in self.sessions.items()},
            }
        )
        write_private(
            self.path,
            INDEX_MAGIC + struct.pack("<Q", len(header)) + header + self.offsets.tobytes(),
        )

    def _read_stored(self) -> bool:
        try:
            blob = self.path.read_bytes()
        except OSError:
            return False
        if not blob.startswith(INDEX_MAGIC) or len(blob) < len(INDEX_MAGIC) + 8:
            return False
        pos = len(INDEX_MAGIC)
        (hlen,) = struct.unpack_from("<Q", blob, pos)
        pos += 8
        try:
            meta = orjson.loads(blob[pos : pos + hlen])
            offsets = array("Q")
            offsets.frombytes(blob[pos + hlen :])
            if meta.get("version") != 1 or len(offsets) != meta["count"]:
                return False
            self.offsets = offsets
            self.runs = {k: array("I", v) for k, v in meta["runs"].items()}
            self.sessions = {k: array("I", v) for k, v in meta["sessions"].items()}
            self.size, self.mtime_ns = int(meta["size"]), int(meta["mtime_ns"])
            self.last_hash = meta["last_hash"]
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError, OverflowError):
            return False
        return True

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

    def events(self, seqs: list[int]) -> Iterator[dict[str, Any]]:
        """The events at `seqs`, read by offset (one open file)."""
        with open(self.log, "rb") as fh:
            for seq in seqs:
                fh.seek(self.offsets[seq])
                line = fh.readline()
                try:
                    yield orjson.loads(line)
                except orjson.JSONDecodeError as exc:
                    raise AuditError(f"{self.log}: event {seq} is not JSON ({exc})") from exc


def query(
    audit_dir: Path,
    session_id: str | None = None,
    run_id: str | None = None,
    types: list[str] | None = None,
    from_seq: int = 0,
    limit: int = 1000,
) -> list[dict[str, Any]]:
    """Events matching every given filter, in seq order, at most `limit`."""
    idx = AuditIndex.load(audit_dir)
    if session_id is None and run_id is None:
        seqs: Any = range(max(0, from_seq), len(idx))
    else:
        seqs = [s for s in idx.seqs_for(run_id=run_id, session_id=session_id) if s >= from_seq]
    wanted = set(types) if types else None
    out: list[dict[str, Any]] = []
    if limit <= 0:
        return out
    with open(idx.log, "rb") as fh:
        for seq in seqs:
            fh.seek(idx.offsets[seq])
            ev = orjson.loads(fh.readline())
            if wanted is None or ev.get("type") in wanted:
                out.append(ev)
                if len(out) >= limit:
                    break
    return out


def file_size(path: Path) -> int:
    return os.stat(path).st_size
