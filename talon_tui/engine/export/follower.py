"""An exporter follows the audit log file from a persisted cursor, in its own thread.

It never touches the append path: it opens `audit.jsonl` read-only, reads complete lines after
its cursor, hands them to its sink, and only when the sink has them moves the cursor
(`<data>/export/<name>.cursor`: next seq, byte offset, hash of the last event sent; written
atomically). Delivery is at least once: a crash between send and cursor write sends that batch
again. When the sink fails the exporter waits and retries the same batch, doubling the wait up
to MAX_BACKOFF. It checks each event's link (`prev_hash`) to the one before and halts (reported
in `talon status`) where the chain breaks, so it never ships a log that was edited under it.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

from .config import ExportSpec
from .records import HEAD_TYPE
from .sinks import Sink, SinkError, make_sink

POLL_SECONDS = 0.2
#: the cursor is fsynced at most this often (and when the exporter stops): each fsync forces a
#: journal commit that the engine's next fdatasync of the log would wait behind
CURSOR_SYNC_SECONDS = 5.0
BATCH = 512
READ_CHUNK = 1 << 20
FIRST_BACKOFF = 0.5
MAX_BACKOFF = 30.0
GENESIS = "sha256:" + "0" * 64


class Cursor:
    """Where an exporter is: the next seq to send, its byte offset, the last sent hash."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.seq = 0
        self.offset = 0
        self.hash = GENESIS
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return
        except (OSError, ValueError):
            return  # unreadable cursor: start over (at least once)
        if (
            isinstance(doc, dict)
            and isinstance(doc.get("seq"), int)
            and isinstance(doc.get("offset"), int)
            and isinstance(doc.get("hash"), str)
        ):
            self.seq, self.offset, self.hash = doc["seq"], doc["offset"], doc["hash"]

    def reset(self) -> None:
        self.seq, self.offset, self.hash = 0, 0, GENESIS

    def save(self, durable: bool = True) -> None:
        """Replace the cursor file atomically; fsynced only when `durable`. A cursor that a
        crash loses or leaves behind only sends events again (at least once): it moves only
        after the sink has them."""
        tmp = self.path.with_suffix(".tmp")
        body = json.dumps({"seq": self.seq, "offset": self.offset, "hash": self.hash})
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.write(fd, body.encode())
            if durable:
                os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, self.path)


class Exporter(threading.Thread):
    """One `--export` target following the log (a daemon thread; `stop()` ends it)."""

    def __init__(
        self,
        spec: ExportSpec,
        log_path: Path,
        cursor_dir: Path,
        sink: Sink | None = None,
        poll: float = POLL_SECONDS,
        max_backoff: float = MAX_BACKOFF,
    ) -> None:
        super().__init__(name=f"talon-export-{spec.name}", daemon=True)
        self.spec = spec
        self.log_path = log_path
        self.cursor = Cursor(cursor_dir / f"{spec.name}.cursor")
        self.sink = sink if sink is not None else make_sink(spec)
        self.poll = poll
        self.max_backoff = max_backoff
        self._stop_event = threading.Event()
        self._lock = threading.Lock()
        self.sent_events = 0
        self.state = "starting"
        self.error = ""
        self.retry_at: float | None = None
        self._buffer = b""
        self._read_offset = 0
        self.eof_passes = 0  # times it found nothing more to send (drain waits for one more)
        self._cursor_synced = time.monotonic()  # when the cursor was last fsynced
        self._cursor_unsynced = False  # saved since then without an fsync

    # -- status (any thread)
    def status(self, head_seq: int) -> dict[str, Any]:
        with self._lock:
            sent = self.cursor.seq - 1
            retry = None if self.retry_at is None else max(0.0, self.retry_at - time.monotonic())
            return {
                "name": self.spec.name,
                "kind": self.spec.kind,
                "target": self.spec.describe(),
                "events": self.spec.events,
                "state": self.state,
                "sent_seq": sent,
                "lag": max(0, head_seq - sent),
                "sent_events": self.sent_events,
                "error": self.error,
                "retry_in_s": None if retry is None else round(retry, 1),
            }

    def stop(self) -> None:
        self._stop_event.set()

    def caught_up(self, head_seq: int) -> bool:
        with self._lock:
            return self.cursor.seq > head_seq

    # -- the thread
    def run(self) -> None:
        try:
            with open(self.log_path, "rb") as log:
                self._position(log)
                self._follow(log)
        except OSError as exc:
            with self._lock:
                self.state, self.error = "halted", f"cannot read the log: {exc.strerror}"
        finally:
            self.sink.close()
            if self._cursor_unsynced:
                try:
                    self.cursor.save()  # durable where the exporter stopped
                except OSError as exc:  # at least once still holds: events go again
                    with self._lock:
                        self.error = f"cannot save the cursor: {exc.strerror}"

    def _position(self, log: Any) -> None:
        """Seek to the cursor if the event there is the one it names (and links to the hash it
        kept); otherwise the log is not the one the cursor was made on: start over."""
        if self.cursor.offset or self.cursor.seq:
            log.seek(self.cursor.offset)
            line = log.readline()
            try:
                event = json.loads(line) if line.endswith(b"\n") else None
            except ValueError:
                event = None
            ok = event is None and self.cursor.offset == os.fstat(log.fileno()).st_size
            if isinstance(event, dict):
                ok = event.get("seq") == self.cursor.seq and event.get("prev_hash") == (
                    self.cursor.hash
                )
            if not ok:
                with self._lock:
                    self.cursor.reset()
                    self.error = "the log does not match the cursor: exporting it from seq 0"
        self._read_offset = self.cursor.offset
        log.seek(self._read_offset)

    def _read_batch(self, log: Any) -> list[bytes]:
        """Up to BATCH complete lines; a partial last line stays buffered. The buffer is cut
        once per batch (cutting it per line copied up to READ_CHUNK bytes for every event)."""
        lines: list[bytes] = []
        buf, pos = self._buffer, 0
        while len(lines) < BATCH:
            nl = buf.find(b"\n", pos)
            if nl < 0:
                chunk = log.read(READ_CHUNK)
                if not chunk:
                    break
                buf, pos = buf[pos:] + chunk, 0
                continue
            lines.append(buf[pos : nl + 1])
            pos = nl + 1
        self._buffer = buf[pos:]
        return lines

    def _follow(self, log: Any) -> None:
        backoff = FIRST_BACKOFF
        pending: list[bytes] = []
        with self._lock:
            self.state = "ok"
        while not self._stop_event.is_set():
            if not pending:
                pending = self._read_batch(log)
            if not pending:
                with self._lock:
                    self.eof_passes += 1
                self._stop_event.wait(self.poll)
                continue
            events, problem = self._parse(pending)
            if problem:
                with self._lock:
                    self.state, self.error = "halted", problem
                return
            chosen = [
                (e, ln)
                for e, ln in zip(events, pending, strict=True)
                if self.spec.events == "all" or e.get("type") == HEAD_TYPE
            ]
            try:
                if chosen:
                    self.sink.send([e for e, _ in chosen], [ln for _, ln in chosen])
            except SinkError as exc:
                with self._lock:
                    self.state, self.error = "backing off", str(exc)
                    self.retry_at = time.monotonic() + backoff
                self._stop_event.wait(backoff)
                backoff = min(backoff * 2, self.max_backoff)
                continue
            with self._lock:
                self.cursor.seq = int(events[-1]["seq"]) + 1
                self.cursor.offset += sum(len(ln) for ln in pending)
                self.cursor.hash = str(events[-1]["hash"])
                self.sent_events += len(chosen)
                self.state, self.error, self.retry_at = "ok", "", None
            now = time.monotonic()
            durable = now - self._cursor_synced >= CURSOR_SYNC_SECONDS
            self.cursor.save(durable)
            self._cursor_unsynced = not durable
            if durable:
                self._cursor_synced = now
            backoff = FIRST_BACKOFF
            pending = []

    def _parse(self, lines: list[bytes]) -> tuple[list[dict[str, Any]], str]:
        events: list[dict[str, Any]] = []
        seq, prev = self.cursor.seq, self.cursor.hash
        for line in lines:
            try:
                event = orjson.loads(line)
            except orjson.JSONDecodeError:
                return events, f"seq {seq}: not a JSON line; export halted"
            if not isinstance(event, dict) or event.get("seq") != seq:
                return events, f"seq {seq}: missing or out of order; export halted"
            if event.get("prev_hash") != prev or not isinstance(event.get("hash"), str):
                return events, f"seq {seq}: does not link to the event before; export halted"
            events.append(event)
            seq, prev = seq + 1, event["hash"]
        return events, ""


class ExportManager:
    """Every configured exporter of one engine: start, status, drain and stop."""

    def __init__(
        self,
        specs: list[ExportSpec],
        log_path: Path,
        cursor_dir: Path,
        sink_factory: Callable[[ExportSpec], Sink] = make_sink,
    ) -> None:
        cursor_dir.mkdir(mode=0o700, exist_ok=True)
        os.chmod(cursor_dir, 0o700)
        self.exporters = [
            Exporter(spec, log_path, cursor_dir, sink=sink_factory(spec)) for spec in specs
        ]

    def start(self) -> None:
        for exporter in self.exporters:
            exporter.start()

    def status(self, head_seq: int) -> list[dict[str, Any]]:
        return [exporter.status(head_seq) for exporter in self.exporters]

    def drain(self, head_seq: int, timeout: float) -> None:
        """Give the exporters up to `timeout` s to send everything up to `head_seq`."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not all(
            e.caught_up(head_seq) or not e.is_alive() for e in self.exporters
        ):
            time.sleep(0.05)

    def drain_to_end(self, timeout: float) -> None:
        """Give the exporters up to `timeout` s to reach the end of the log as it is now (each
        must find nothing more to read after this call began)."""
        start = [e.eof_passes for e in self.exporters]
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not all(
            e.eof_passes > n or not e.is_alive() for e, n in zip(self.exporters, start, strict=True)
        ):
            time.sleep(0.05)

    def stop(self) -> None:
        for exporter in self.exporters:
            exporter.stop()
        for exporter in self.exporters:
            exporter.join(timeout=10)
