"""https through the pinned connection: the broker connects to the address it checked, while
TLS still verifies the certificate against the host name (SNI included).

A real TLS server on 127.0.0.1 with a certificate made here by a throw-away CA; the only stand-in
is the resolver (public DNS cannot exist in this sandbox): it maps the test names to 127.0.0.1.
"""

from __future__ import annotations

import datetime as dt
import ssl
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from talon_tui.engine.broker.http import run_http_fetch
from talon_tui.engine.errors import ConstraintViolation, ToolError
from talon_tui.engine.policy.models import HttpConstraints, HttpFetchParams

NAME = "api.talon-test.example"


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _cert(subject_cn, issuer_cn, public_key, signing_key, *, ca: bool, san=None):
    now = dt.datetime.now(dt.UTC)
    b = (
        x509.CertificateBuilder()
        .subject_name(_name(subject_cn))
        .issuer_name(_name(issuer_cn))
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(hours=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if san:
        b = b.add_extension(x509.SubjectAlternativeName([x509.DNSName(san)]), critical=False)
    return b.sign(signing_key, hashes.SHA256())


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    d = tmp_path_factory.mktemp("pki")
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = _cert("Talon Test CA", "Talon Test CA", ca_key.public_key(), ca_key, ca=True)
    (d / "ca.pem").write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    for label, san in (("good", NAME), ("wrong", "other.talon-test.example")):
        key = ec.generate_private_key(ec.SECP256R1())
        cert = _cert(san, "Talon Test CA", key.public_key(), ca_key, ca=False, san=san)
        (d / f"{label}.pem").write_bytes(
            cert.public_bytes(serialization.Encoding.PEM)
            + key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
    return d


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def do_GET(self):
        self.server.requests.append({"path": self.path, "host": self.headers.get("Host")})
        body = b"hello over tls"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


class TLSServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, certfile):
        super().__init__(("127.0.0.1", 0), _Handler)
        self.requests: list[dict] = []
        self.sni: list[str | None] = []
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(certfile)
        ctx.sni_callback = lambda sock, name, _ctx: self.sni.append(name)
        self.socket = ctx.wrap_socket(self.socket, server_side=True)

    @property
    def port(self) -> int:
        return self.server_address[1]


@pytest.fixture
def server(pki, request):
    srv = TLSServer(str(pki / f"{request.param}.pem"))
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    yield srv
    srv.shutdown()
    srv.server_close()


def _client_ctx(pki) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(pki / "ca.pem"))
    return ctx


def _fetch(srv, pki, *, private=True, resolved="127.0.0.1"):
    lookups: list[str] = []

    def resolver(host, port):
        lookups.append(host)
        return [resolved]

    cons = HttpConstraints(
        domains=[NAME], ports=[srv.port], allow_private_addresses=private, timeout_seconds=5
    )
    params = HttpFetchParams(url=f"https://{NAME}:{srv.port}/hello")
    result = run_http_fetch(params, cons, resolver=resolver, ssl_context=_client_ctx(pki))
    return result, lookups


@pytest.mark.parametrize("server", ["good"], indirect=True)
def test_https_to_pinned_address_verifies_name_and_sends_sni(server, pki):
    result, lookups = _fetch(server, pki)
    assert result["status_code"] == 200
    assert result["body"] == "hello over tls"
    assert lookups == [NAME]  # resolved once, by the broker
    assert server.sni == [NAME]  # TLS server name is the host name, not the pinned address
    assert server.requests == [{"path": "/hello", "host": f"{NAME}:{server.port}"}]


@pytest.mark.parametrize("server", ["wrong"], indirect=True)
def test_certificate_for_another_name_is_refused_before_any_request(server, pki):
    with pytest.raises(ToolError):
        _fetch(server, pki)
    assert server.requests == []


@pytest.mark.parametrize("server", ["good"], indirect=True)
def test_name_resolving_to_loopback_refused_without_opt_in(server, pki):
    with pytest.raises(ConstraintViolation, match="allow_private_addresses"):
        _fetch(server, pki, private=False)
    assert server.requests == [] and server.sni == []


@pytest.mark.parametrize("server", ["good"], indirect=True)
def test_name_resolving_to_metadata_refused_even_with_opt_in(server, pki):
    with pytest.raises(ConstraintViolation):
        _fetch(server, pki, private=True, resolved="169.254.169.254")
    assert server.requests == []
