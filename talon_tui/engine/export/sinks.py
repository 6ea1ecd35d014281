"""Where exported events go. A sink's `send(events)` returns only when the receiver has them
(OTLP: a 2xx; TCP syslog: written to the socket; JSONL: fsynced) and raises `SinkError`
otherwise, so the follower can keep its cursor and retry the same batch."""

from __future__ import annotations

import os
import select
import socket
from pathlib import Path
from typing import Any, Protocol

from .config import ExportSpec
from .records import syslog_message

UDP_MAX = 60_000  # one datagram per message; a longer message is cut (RFC 5426 allows that)


class SinkError(Exception):
    """The receiver did not take the batch (down, refused, timed out)."""


class Sink(Protocol):
    def send(self, events: list[dict[str, Any]], lines: list[bytes]) -> None: ...
    def close(self) -> None: ...


class OtlpSink:
    """OTLP/HTTP protobuf logs (`pip install talon-tui[otel]`): one request per batch, one log
    record per event, attributes as in `records.attributes`; built and posted as `otlp` says
    (the request the SDK's exporter would send, at a quarter of its CPU per event)."""

    def __init__(self, spec: ExportSpec, timeout: float = 5.0) -> None:
        try:
            from .otlp import LogsEncoder, OtlpPoster, OtlpSettings, OtlpSettingsError
        except ImportError as exc:
            raise SinkError(
                "otlp export needs the otel extra: pip install 'talon-tui[otel]'"
            ) from exc
        self._endpoint = spec.endpoint
        try:
            settings = OtlpSettings.from_env(spec.endpoint, timeout)
        except OtlpSettingsError as exc:
            raise SinkError(str(exc)) from exc
        self._encoder = LogsEncoder()
        self._poster = OtlpPoster(settings)

    def send(self, events: list[dict[str, Any]], lines: list[bytes]) -> None:
        why = self._poster.post(self._encoder.encode(events))
        if why:
            raise SinkError(f"the collector at {self._endpoint} did not take the batch: {why}")

    def close(self) -> None:
        self._poster.close()


class SyslogSink:
    """RFC 5424 over UDP (RFC 5426: one message per datagram) or TCP (RFC 6587 octet
    counting: `LEN SP MSG`). UDP gives no receipt: a datagram sent counts as delivered."""

    def __init__(self, spec: ExportSpec, timeout: float = 5.0) -> None:
        self._spec = spec
        self._timeout = timeout
        self._sock: socket.socket | None = None
        self._hostname = socket.gethostname()  # once, not a system call per message

    def _connect(self) -> socket.socket:
        if self._sock is None:
            kind = socket.SOCK_DGRAM if self._spec.transport == "udp" else socket.SOCK_STREAM
            try:
                infos = socket.getaddrinfo(self._spec.host, self._spec.port, type=kind)
                family, _, _, _, addr = infos[0]
                sock = socket.socket(family, kind)
                sock.settimeout(self._timeout)
                sock.connect(addr)
            except OSError as exc:
                raise SinkError(f"syslog {self._spec.target}: {exc}") from exc
            self._sock = sock
        return self._sock

    def _peer_closed(self) -> bool:
        """A TCP receiver that went away: its FIN (or RST) is waiting to be read. Checked
        before each batch, since writing into a closed connection succeeds once and is lost."""
        if self._sock is None or self._spec.transport != "tcp":
            return False
        ready, _, _ = select.select([self._sock], [], [], 0)
        if not ready:
            return False
        try:
            return self._sock.recv(1, socket.MSG_PEEK) == b""
        except OSError:
            return True

    def send(self, events: list[dict[str, Any]], lines: list[bytes]) -> None:
        if self._peer_closed():
            self.close()
        sock = self._connect()
        try:
            if self._spec.transport == "udp":
                for event in events:
                    sock.send(syslog_message(event, self._spec.format, self._hostname)[:UDP_MAX])
            else:
                frames = []
                for event in events:
                    msg = syslog_message(event, self._spec.format, self._hostname)
                    frames.append(str(len(msg)).encode() + b" " + msg)
                sock.sendall(b"".join(frames))
        except OSError as exc:
            self.close()
            raise SinkError(f"syslog {self._spec.target}: {exc}") from exc

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None


class JsonlSink:
    """A second copy of the log: the events' exact lines appended to another file, fsynced."""

    def __init__(self, spec: ExportSpec) -> None:
        self._path = Path(spec.target)

    def send(self, events: list[dict[str, Any]], lines: list[bytes]) -> None:
        try:
            fd = os.open(self._path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            try:
                os.write(fd, b"".join(lines))
                os.fsync(fd)
            finally:
                os.close(fd)
        except OSError as exc:
            raise SinkError(f"jsonl {self._path}: {exc.strerror}") from exc

    def close(self) -> None:
        return None


def make_sink(spec: ExportSpec) -> Sink:
    if spec.kind == "otlp":
        return OtlpSink(spec)
    if spec.kind == "syslog":
        return SyslogSink(spec)
    return JsonlSink(spec)
