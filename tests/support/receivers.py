"""Real receivers for the export tests, on 127.0.0.x: an OTLP/HTTP logs collector decoding the
protobuf with `opentelemetry-proto`, syslog over UDP and TCP (RFC 6587 octet counting), and an
approval webhook that checks the HMAC."""

from __future__ import annotations

import hashlib
import hmac
import json
import socket
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


def wait_for(check: Callable[[], bool], timeout: float = 30.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def free_port(host: str) -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True


class _Receiver:
    """An HTTP server on a fixed host:port that can go down and come back on the same port."""

    handler: type[BaseHTTPRequestHandler]

    def __init__(self, host: str = "127.0.0.1", port: int | None = None) -> None:
        self.host = host
        self.port = port or free_port(host)
        self.lock = threading.Lock()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def base(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> _Receiver:
        server = _Server((self.host, self.port), self.handler)
        server.receiver = self  # type: ignore[attr-defined]
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> _Receiver:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class _OtlpHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
            ExportLogsServiceRequest,
            ExportLogsServiceResponse,
        )

        receiver: OtlpReceiver = self.server.receiver  # type: ignore[attr-defined]
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        request = ExportLogsServiceRequest()
        request.ParseFromString(body)
        records = []
        for rl in request.resource_logs:
            resource = {a.key: _value(a.value) for a in rl.resource.attributes}
            for sl in rl.scope_logs:
                for rec in sl.log_records:
                    records.append(
                        {
                            "path": self.path,
                            "resource": resource,
                            "scope": sl.scope.name,
                            "body": _value(rec.body),
                            "severity_text": rec.severity_text,
                            "time_unix_nano": rec.time_unix_nano,
                            "attributes": {a.key: _value(a.value) for a in rec.attributes},
                        }
                    )
        with receiver.lock:
            receiver.requests += 1
            receiver.records.extend(records)
        reply = ExportLogsServiceResponse().SerializeToString()
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Connection", "close")  # so that stop() really takes it down
        self.send_header("Content-Length", str(len(reply)))
        self.end_headers()
        self.wfile.write(reply)


def _value(v: Any) -> Any:
    kind = v.WhichOneof("value")
    return getattr(v, kind) if kind else None


class OtlpReceiver(_Receiver):
    """An OTLP/HTTP logs collector: every decoded record, in the order received."""

    handler = _OtlpHandler

    def __init__(self, host: str = "127.0.0.1", port: int | None = None) -> None:
        super().__init__(host, port)
        self.records: list[dict[str, Any]] = []
        self.requests = 0

    def seqs(self) -> list[int]:
        with self.lock:
            return [r["attributes"]["talon.seq"] for r in self.records]


class _WebhookHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        receiver: WebhookReceiver = self.server.receiver  # type: ignore[attr-defined]
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        given = self.headers.get("X-Talon-Signature", "")
        good = "sha256=" + hmac.new(receiver.key, body, hashlib.sha256).hexdigest()
        valid = hmac.compare_digest(given, good)
        with receiver.lock:
            receiver.posts.append(
                {"body": body, "signature": given, "valid": valid, "json": json.loads(body)}
            )
        status = 204 if valid else 401
        self.send_response(status)
        self.send_header("Connection", "close")
        self.send_header("Content-Length", "0")
        self.end_headers()


class WebhookReceiver(_Receiver):
    """Records each POST and whether its HMAC checks out under `key` (401 when not)."""

    handler = _WebhookHandler

    def __init__(self, key: bytes, host: str = "127.0.0.1") -> None:
        super().__init__(host)
        self.key = key
        self.posts: list[dict[str, Any]] = []


class SyslogUdp:
    """A UDP syslog receiver: one message per datagram."""

    def __init__(self, host: str = "127.0.0.1") -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((host, 0))
        self.sock.settimeout(0.2)
        self.host, self.port = self.sock.getsockname()
        self.messages: list[bytes] = []
        self.lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                data = self.sock.recv(65535)
            except TimeoutError:
                continue
            except OSError:
                return
            with self.lock:
                self.messages.append(data)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)
        self.sock.close()


class SyslogTcp:
    """A TCP syslog receiver reading RFC 6587 octet-counted frames (`LEN SP MSG`)."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.host = host
        self.port = port
        self.messages: list[bytes] = []
        self.lock = threading.Lock()
        self.start()

    def start(self) -> None:
        self.srv = socket.socket()
        self.srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.srv.bind((self.host, self.port))
        self.port = self.srv.getsockname()[1]
        self.srv.listen()
        self.srv.settimeout(0.2)
        self._stop = threading.Event()
        self._conns: list[socket.socket] = []
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.srv.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self._conns.append(conn)
            threading.Thread(target=self._read, args=(conn,), daemon=True).start()

    def _read(self, conn: socket.socket) -> None:
        buf = b""
        with conn:
            while True:
                try:
                    chunk = conn.recv(65536)
                except OSError:
                    return
                if not chunk:
                    return
                buf += chunk
                while b" " in buf:
                    length_text, _, rest = buf.partition(b" ")
                    length = int(length_text)
                    if len(rest) < length:
                        break
                    with self.lock:
                        self.messages.append(rest[:length])
                    buf = rest[length:]

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)
        self.srv.close()
        for c in self._conns:
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            c.close()
