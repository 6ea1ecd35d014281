"""The OTLP sink builds its request with opentelemetry-proto and posts it itself (export/otlp.py
says why): what it sends must be what the SDK's own OTLP/HTTP log exporter sends for the same
events, and it must honour the same OTEL_EXPORTER_OTLP_* settings (headers, compression,
timeout, CA certificate). Real HTTP(S) servers on 127.0.0.1 capture the raw requests; both sides
are decoded with opentelemetry-proto."""

from __future__ import annotations

import datetime as dt
import gzip
import ipaddress
import ssl
import threading
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest

from talon_tui.engine.export import OtlpSink, SinkError, parse_spec
from talon_tui.engine.export.otlp import MinuteClock, ts_nanos
from talon_tui.engine.export.records import attributes, severity

OTEL_VARS = [
    f"OTEL_EXPORTER_OTLP_{scope}{name}"
    for scope in ("", "LOGS_")
    for name in (
        "HEADERS",
        "TIMEOUT",
        "COMPRESSION",
        "CERTIFICATE",
        "CLIENT_CERTIFICATE",
        "CLIENT_KEY",
        "ENDPOINT",
    )
]


@pytest.fixture(autouse=True)
def clean_env(monkeypatch):
    for name in [*OTEL_VARS, "OTEL_RESOURCE_ATTRIBUTES", "OTEL_SERVICE_NAME"]:
        monkeypatch.delenv(name, raising=False)


class _Capture(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        server: CaptureServer = self.server  # type: ignore[assignment]
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        server.posts.append({"path": self.path, "headers": dict(self.headers), "body": body})
        self.send_response(server.status)
        if server.status in (301, 302, 307, 308):
            self.send_header("Location", "/elsewhere")
        self.send_header("Content-Length", "0")
        self.send_header("Connection", "close")
        self.end_headers()


class CaptureServer(ThreadingHTTPServer):
    """Records every POST (path, headers, raw body) and answers `status`."""

    daemon_threads = True

    def __init__(self, certfile: Path | None = None, status: int = 200) -> None:
        super().__init__(("127.0.0.1", 0), _Capture)
        self.posts: list[dict[str, Any]] = []
        self.status = status
        scheme = "http"
        if certfile is not None:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(certfile)
            self.socket = ctx.wrap_socket(self.socket, server_side=True)
            scheme = "https"
        self.base = f"{scheme}://127.0.0.1:{self.server_address[1]}"
        threading.Thread(target=self.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.shutdown()
        self.server_close()


@pytest.fixture
def server():
    srv = CaptureServer()
    yield srv
    srv.close()


def event(seq: int, **extra: Any) -> dict[str, Any]:
    data = {
        "tool": "file.read",
        "decision": "DENY" if seq % 2 else "ALLOW",
        "reason": "r\u00e9ason \u2028 with\nnewline",
        "actor": "policy",
        "n": 2**40,
        "nested": {"b": [1, 2.5, None], "a": True},
    }
    return {
        "seq": seq,
        "ts": f"2026-12-03T13:00:0{seq % 10}.123456Z",
        "type": "policy.decision",
        "event_id": f"ev_{seq}",
        "session_id": "sess_1",
        "run_id": f"run_{seq}",
        "prev_hash": "sha256:" + "a" * 64,
        "hash": "sha256:" + "b" * 64,
        "data": data,
        **extra,
    }


EVENTS = [
    event(0),
    event(1),
    event(2, type="audit.checkpoint", data={"checkpoint_seq": 1, "checkpoint_hash": "h"}),
    event(3, ts="not a time", session_id=None, data="not a dict"),
    {"seq": 4, "type": "", "hash": "sha256:" + "c" * 64, "prev_hash": "x", "data": {}},
]


def decoded(body: bytes) -> ExportLogsServiceRequest:
    request = ExportLogsServiceRequest()
    request.ParseFromString(body)
    return request


def without_instance_id(request: ExportLogsServiceRequest) -> ExportLogsServiceRequest:
    """Resource.create gives each resource a random service.instance.id: drop it to compare."""
    for rl in request.resource_logs:
        kept = [a for a in rl.resource.attributes if a.key != "service.instance.id"]
        del rl.resource.attributes[:]
        rl.resource.attributes.extend(kept)
    return request


def sdk_reference(endpoint: str, events: list[dict[str, Any]]) -> None:
    """What the SDK's OTLP/HTTP log exporter sends for `events`, built as the sink built it
    before it encoded requests itself (the SDK's logs data model lives in its `_logs` modules)."""
    from opentelemetry._logs import LogRecord, SeverityNumber
    from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
    from opentelemetry.sdk._logs import ReadableLogRecord
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.util.instrumentation import InstrumentationScope

    exporter = OTLPLogExporter(endpoint=endpoint, timeout=5)
    resource = Resource.create({"service.name": "talon"})
    scope = InstrumentationScope("talon.audit")
    batch = []
    for e in events:
        sev, text = severity(e)
        record = LogRecord(
            timestamp=ts_nanos(e.get("ts")),
            observed_timestamp=ts_nanos(e.get("ts")),
            severity_number=SeverityNumber.WARN if sev == 4 else SeverityNumber.INFO,
            severity_text=text,
            body=str(e.get("type", "")),
            attributes=attributes(e),
            event_name=str(e.get("type", "")),
        )
        batch.append(
            ReadableLogRecord(log_record=record, resource=resource, instrumentation_scope=scope)
        )
    exporter.export(batch)
    exporter.shutdown()


def test_the_request_is_the_sdk_exporters_request(server):
    sdk_reference(f"{server.base}/v1/logs", EVENTS)
    sink = OtlpSink(parse_spec(f"otlp={server.base}"))
    sink.send(EVENTS, [])
    sink.close()
    assert [p["path"] for p in server.posts] == ["/v1/logs", "/v1/logs"]
    theirs, ours = (without_instance_id(decoded(p["body"])) for p in server.posts)
    assert ours == theirs
    records = ours.resource_logs[0].scope_logs[0].log_records
    assert [r.attributes[0].value.int_value for r in records] == [0, 1, 2, 3, 4]
    assert records[1].severity_text == "WARN" and records[0].severity_text == "INFO"
    headers = {k.lower(): v for k, v in server.posts[1]["headers"].items()}
    assert headers["content-type"] == "application/x-protobuf"
    assert headers["user-agent"].startswith("talon-tui/")


@pytest.mark.parametrize("scope", ["", "LOGS_"])
@pytest.mark.parametrize("compression", ["gzip", "deflate"])
def test_headers_and_compression_from_the_env_as_the_sdk_reads_them(
    server, monkeypatch, scope, compression
):
    monkeypatch.setenv(f"OTEL_EXPORTER_OTLP_{scope}HEADERS", "api-key=s3cret,X-Tenant=a%20b")
    monkeypatch.setenv(f"OTEL_EXPORTER_OTLP_{scope}COMPRESSION", compression)
    sdk_reference(f"{server.base}/v1/logs", EVENTS[:2])
    sink = OtlpSink(parse_spec(f"otlp={server.base}"))
    sink.send(EVENTS[:2], [])
    sink.close()
    unpack = gzip.decompress if compression == "gzip" else zlib.decompress
    theirs, ours = server.posts
    for post in (theirs, ours):
        headers = {k.lower(): v for k, v in post["headers"].items()}
        assert headers["api-key"] == "s3cret"
        assert headers["x-tenant"] == "a b"
        assert headers["content-encoding"] == compression
    assert without_instance_id(decoded(unpack(ours["body"]))) == without_instance_id(
        decoded(unpack(theirs["body"]))
    )


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("OTEL_EXPORTER_OTLP_COMPRESSION", "brotli", "compression 'brotli'"),
        ("OTEL_EXPORTER_OTLP_LOGS_TIMEOUT", "soon", "timeout 'soon'"),
    ],
)
def test_a_setting_it_cannot_honour_is_a_clear_error(monkeypatch, name, value, message):
    monkeypatch.setenv(name, value)
    with pytest.raises(SinkError, match=message):
        OtlpSink(parse_spec("otlp=http://127.0.0.1:9"))


@pytest.mark.parametrize("status", [400, 503, 307])
def test_anything_but_a_2xx_is_not_taken(status):
    srv = CaptureServer(status=status)
    try:
        sink = OtlpSink(parse_spec(f"otlp={srv.base}"))
        with pytest.raises(SinkError, match=f"did not take the batch: HTTP {status}"):
            sink.send(EVENTS[:1], [])
        sink.close()
        assert [p["path"] for p in srv.posts] == ["/v1/logs"]  # a redirect is not followed
    finally:
        srv.close()


def test_a_slow_collector_times_out_as_the_env_says(monkeypatch):
    import socket

    listener = socket.create_server(("127.0.0.1", 0))  # accepts, never answers
    try:
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_TIMEOUT", "0.3")
        sink = OtlpSink(parse_spec(f"otlp=http://127.0.0.1:{listener.getsockname()[1]}"))
        with pytest.raises(SinkError, match="Timeout"):
            sink.send(EVENTS[:1], [])
        sink.close()
    finally:
        listener.close()


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory):
    d = tmp_path_factory.mktemp("otlp-pki")
    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Talon OTLP Test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(hours=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    (d / "ca.pem").write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    (d / "server.pem").write_bytes(
        cert.public_bytes(serialization.Encoding.PEM)
        + key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return d


def test_tls_trusts_the_ca_the_env_names_and_only_it(monkeypatch, tls_files):
    srv = CaptureServer(certfile=tls_files / "server.pem")
    try:
        sink = OtlpSink(parse_spec(f"otlp={srv.base}"))
        with pytest.raises(SinkError, match="SSLError"):  # an unknown CA: nothing sent
            sink.send(EVENTS[:1], [])
        sink.close()
        assert srv.posts == []
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_LOGS_CERTIFICATE", str(tls_files / "ca.pem"))
        sink = OtlpSink(parse_spec(f"otlp={srv.base}"))
        sink.send(EVENTS[:1], [])
        sink.close()
        assert len(srv.posts) == 1
        records = decoded(srv.posts[0]["body"]).resource_logs[0].scope_logs[0].log_records
        assert records[0].attributes[0].key == "talon.seq"
    finally:
        srv.close()


def test_the_minute_clock_gives_what_ts_nanos_gives():
    """The per-minute shortcut against the full parse, over minute, hour, day, month, year and
    leap-day boundaries, and inputs the writer's layout refuses (0 from both)."""
    good = [
        f"{day}T{hm}:{s:02d}.{us:06d}Z"
        for day in ("2024-02-28", "2024-02-29", "2025-12-31", "2026-01-01")
        for hm in ("00:00", "00:59", "23:59")
        for s in (0, 1, 59)
        for us in (0, 999_999)
    ]
    bad = [
        "2024-02-28T00:00:60.000000Z",  # the cached minute's prefix, a second the layout refuses
        "2024-02-28T00:00:5x.000000Z",
        "2024-02-28T00:00:59.00000Z",
        "2024-02-28T00:00:59.000000",
        "2025-02-29T00:00:00.000000Z",
        "2026-13-01T00:00:00.000000Z",
        None,
        17,
        "",
    ]
    clock = MinuteClock()
    for ts in [x for pair in zip(good, bad * 8, strict=False) for x in pair] + good[::-1]:
        assert clock.nanos(ts) == ts_nanos(ts), ts
    assert ts_nanos("2024-02-29T23:59:59.999999Z") == 1_709_251_199_999_999_000
