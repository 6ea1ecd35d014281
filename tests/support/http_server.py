"""Threaded local HTTP servers for broker tests (127.0.0.1 and 127.0.0.2), recording requests."""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import pytest


class Recorder(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, host: str) -> None:
        super().__init__((host, 0), Handler)
        self.requests: list[dict] = []
        self.lock = threading.Lock()

    @property
    def base(self) -> str:
        return f"http://{self.server_address[0]}:{self.server_address[1]}"

    @property
    def port(self) -> int:
        return self.server_address[1]


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):  # quiet
        pass

    def _handle(self):
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        server: Recorder = self.server  # type: ignore[assignment]
        with server.lock:
            server.requests.append(
                {
                    "method": self.command,
                    "path": self.path,
                    "headers": dict(self.headers.items()),
                    "body": body,
                }
            )
        url = urlsplit(self.path)
        q = {k: v[0] for k, v in parse_qs(url.query).items()}
        route = url.path
        if route == "/redirect":
            self._send(int(q.get("status", "302")), b"moved", [("Location", q["to"])])
        elif route == "/big":
            self._send(200, b"x" * int(q.get("n", "100000")))
        elif route == "/slow":
            self.send_response(200)
            self.send_header("Content-Length", "100")
            self.end_headers()
            try:
                for _ in range(100):
                    self.wfile.write(b"s")
                    self.wfile.flush()
                    time.sleep(float(q.get("delay", "0.2")))
            except OSError:
                pass
        elif route == "/hang":
            time.sleep(float(q.get("delay", "5")))
            self._send(200, b"late")
        elif route == "/echo":
            self._send(
                200,
                json.dumps(
                    {
                        "method": self.command,
                        "headers": dict(self.headers.items()),
                        "body": body.decode("latin-1"),
                    }
                ).encode(),
                [("X-Echo-Auth", self.headers.get("Authorization", ""))],
            )
        elif route == "/binary":
            self._send(200, bytes(range(256)))
        else:
            self._send(200, b"hello from " + self.server.server_address[0].encode())

    def _send(self, status, body, headers=()):
        self.send_response(status)
        for k, v in headers:
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = do_PATCH = _handle


def start(host: str) -> Recorder:
    srv = Recorder(host)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv


@contextlib.contextmanager
def serving(host: str) -> Iterator[Recorder]:
    """A recording server on `host` for the length of the with-block."""
    srv = start(host)
    try:
        yield srv
    finally:
        srv.shutdown()
        srv.server_close()


def recorder(host: str):
    """A module-scoped fixture: `a = recorder("127.0.0.1")` in a test module."""

    @pytest.fixture(scope="module")
    def fixture() -> Iterator[Recorder]:
        with serving(host) as srv:
            yield srv

    return fixture
