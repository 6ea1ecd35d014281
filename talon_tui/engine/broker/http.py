"""http.fetch: SSRF-safe, pinned to the address the broker checked.

For the first request and for every redirect hop, in this order:
1. `checks.parse_fetch_url` (http/https only, no userinfo, backslashes, control characters,
   odd IP forms) and `checks.check_fetch_target` (scheme, host allowlist on the IDNA form,
   port) — all before any DNS query;
2. the broker resolves the name itself (`getaddrinfo` in a worker thread, bounded by the
   deadline) and checks every address it gets: if ANY is loopback, private, link-local,
   CGNAT, multicast, reserved, metadata or an IPv6 form embedding one, the hop is refused
   (unless `allow_private_addresses`; cloud metadata addresses are refused even then);
3. the connection goes to one of those checked addresses: a pinned httpcore network backend
   ignores DNS entirely, while the Host header, TLS SNI and certificate verification stay on
   the name. httpx runs with `trust_env=False` (no proxies or netrc from the environment).

Decisions:
- Redirects (301/302/303/307/308 with Location) are followed manually, at most
  `max_redirects` (<= 5). A hop that fails any check is never contacted: the broker stops and
  returns the redirect response itself with `redirect_refused` (the reason). 303, and
  301/302 after a POST, continue as GET without a body; the new method must be allowed too.
  Headers carrying secrets, Authorization and Cookie are dropped when the origin changes.
- The body is read raw (the broker asks for `Accept-Encoding: identity`; no decompression,
  so no zip bombs) and stops at max_bytes: the result then has `truncated: true`.
- One total deadline (`timeout_seconds`) bounds DNS, connect, TLS, every read and write, and
  every hop; each socket operation gets only the time that remains. Exceeding it is TOOL_ERROR.
- Agent headers: RFC 7230 token names, no control characters in values; hop-by-hop and
  framing headers (Host, Connection, Transfer-Encoding, Content-Length, TE, Upgrade, ...) and
  Accept-Encoding are refused. `{"secret_ref": name}` values come from the secret store, and
  only for a name the token's constraints list in `secrets` (checked before the value is read,
  before any DNS query or connection), and again before each hop for the host that hop goes to
  (`checks.check_secret_grant`: the same override's `domains`). A redirect to a host outside
  those domains is never contacted; a cross-origin hop inside them drops the secret headers.
- Secret values are replaced by `«secret:name»` in the returned body and headers and in every
  error message (exact bytes everywhere; for text also the JSON-escaped, base64 and
  percent-encoded forms, via core.redact.redact — a binary body gets exact-byte redaction only);
  `bytes` and `sha256` describe the body as returned (redacted), so the hash is
  no oracle for guessing a secret.
- Result: `{status_code, headers, body, bytes, sha256, truncated, url}` plus `encoding:
  "base64"` for a non-UTF-8 body and `redirect_refused` when a redirect was not followed.
"""

from __future__ import annotations

import base64
import re
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from typing import Any

import httpcore
import httpx

from ..core.canon import sha256_tag
from ..core.redact import redact as redact_text
from ..errors import ConstraintViolation, TalonError, ToolError
from ..policy.checks import (
    IPAddress,
    ParsedURL,
    address_forbidden,
    check_fetch_target,
    check_method,
    check_secret_grant,
    is_metadata_address,
    parse_fetch_url,
    parse_ip_literal,
)
from ..policy.models import HttpConstraints, HttpFetchParams, SecretRef

REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
REFUSED_HEADERS = frozenset(
    {
        "host",
        "connection",
        "keep-alive",
        "proxy-connection",
        "proxy-authorization",
        "proxy-authenticate",
        "transfer-encoding",
        "te",
        "trailer",
        "upgrade",
        "content-length",
        "expect",
        "accept-encoding",
        "http2-settings",
    }
)
CROSS_ORIGIN_DROPPED = frozenset({"authorization", "cookie"})
_TOKEN_RE = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]{1,256}$")
MAX_HEADER_VALUE = 8192
MAX_REQUEST_BODY = 8 << 20
USER_AGENT = "talon-broker"

Resolver = Callable[[str, int], Sequence[str]]

_dns_pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="talon-dns")
_ssl_lock = threading.Lock()
_ssl_context: ssl.SSLContext | None = None


def _default_ssl_context() -> ssl.SSLContext:
    global _ssl_context
    with _ssl_lock:
        if _ssl_context is None:
            _ssl_context = httpx.create_ssl_context(trust_env=False)
        return _ssl_context


def system_resolver(host: str, port: int) -> list[str]:
    """Addresses for `host` from the system resolver (TCP only)."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP)
    out: list[str] = []
    for _family, _type, _proto, _canon, sockaddr in infos:
        addr = str(sockaddr[0])
        if addr not in out:
            out.append(addr)
    return out


# --------------------------------------------------------------------------- redaction


@dataclass
class FetchRedactor:
    """Replaces exact secret values with `«secret:name»` in text, bytes and nested data."""

    secrets: dict[str, str] = field(default_factory=dict)  # value -> name

    def add(self, name: str, value: str) -> None:
        if value:
            self.secrets[value] = name

    def _ordered(self) -> list[tuple[str, str]]:
        return sorted(self.secrets.items(), key=lambda kv: -len(kv[0]))

    def text(self, s: str) -> tuple[str, bool]:
        """Exact values plus their JSON-escaped, base64 and percent-encoded forms."""
        if not self.secrets:
            return s, False
        out, hit = redact_text(s, {name: value for value, name in self.secrets.items()})
        for value, name in self._ordered():
            if value in out:
                out = out.replace(value, f"«secret:{name}»")
                hit = True
        return out, hit

    def data(self, b: bytes) -> tuple[bytes, bool]:
        hit = False
        for value, name in self._ordered():
            v = value.encode("utf-8")
            if v in b:
                b = b.replace(v, f"«secret:{name}»".encode())
                hit = True
        return b, hit

    def error(self, exc: TalonError) -> TalonError:
        exc.message, _ = self.text(exc.message)
        exc.args = (exc.message,)
        exc.details = _redact_obj(exc.details, self)
        return exc


def _redact_obj(obj: Any, r: FetchRedactor) -> Any:
    if isinstance(obj, str):
        return r.text(obj)[0]
    if isinstance(obj, dict):
        return {k: _redact_obj(v, r) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_redact_obj(v, r) for v in obj]
    return obj


# --------------------------------------------------------------------------- pinned transport


class _DeadlineStream(httpcore.NetworkStream):
    """Gives every socket operation only the time left before the total deadline."""

    def __init__(self, inner: httpcore.NetworkStream, deadline: float) -> None:
        self._inner = inner
        self._deadline = deadline

    def _left(self, timeout: float | None, exc: type[Exception]) -> float:
        left = self._deadline - time.monotonic()
        if left <= 0:
            raise exc("the fetch deadline passed")
        return left if timeout is None else min(timeout, left)

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._inner.read(max_bytes, self._left(timeout, httpcore.ReadTimeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._inner.write(buffer, self._left(timeout, httpcore.WriteTimeout))

    def close(self) -> None:
        self._inner.close()

    def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.NetworkStream:
        inner = self._inner.start_tls(
            ssl_context, server_hostname, self._left(timeout, httpcore.ConnectTimeout)
        )
        return _DeadlineStream(inner, self._deadline)

    def get_extra_info(self, info: str) -> Any:
        return self._inner.get_extra_info(info)


class PinnedBackend(httpcore.SyncBackend):
    """Connects only to pre-checked addresses of one expected host; never asks DNS."""

    def __init__(self, host: str, addresses: Sequence[IPAddress], deadline: float) -> None:
        self.host = host
        self.addresses = list(addresses)
        self.deadline = deadline
        self.connected_to: str | None = None

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        if _host_key(host) != _host_key(self.host):
            raise httpcore.ConnectError(f"refusing to connect to unchecked host {host!r}")
        last: Exception | None = None
        for ip in self.addresses:
            left = self.deadline - time.monotonic()
            if left <= 0:
                raise httpcore.ConnectTimeout("the fetch deadline passed")
            t = left if timeout is None else min(timeout, left)
            try:
                stream = super().connect_tcp(str(ip), port, t, local_address, socket_options)
            except httpcore.ConnectTimeout:
                raise
            except httpcore.ConnectError as exc:
                last = exc
                continue
            self.connected_to = str(ip)
            return _DeadlineStream(stream, self.deadline)
        raise httpcore.ConnectError(f"could not connect to {host}: {last}")


def _host_key(host: str) -> str:
    h = host.strip("[]").lower().rstrip(".")
    ip = parse_ip_literal(h)
    return str(ip) if ip is not None else h


class PinnedTransport(httpx.HTTPTransport):
    """httpx transport whose connection pool uses a `PinnedBackend` (HTTP/1.1, no retries)."""

    def __init__(self, backend: PinnedBackend, ssl_context: ssl.SSLContext) -> None:
        super().__init__(verify=ssl_context, trust_env=False, http1=True, http2=False, retries=0)
        self._pool = httpcore.ConnectionPool(
            ssl_context=ssl_context,
            max_connections=1,
            max_keepalive_connections=0,
            http1=True,
            http2=False,
            retries=0,
            network_backend=backend,
        )


# --------------------------------------------------------------------------- checks


def _secret_value(store: Any, name: str) -> str | None:
    if store is None:
        return None
    try:
        value = store.get(name)
    except (KeyError, LookupError, TalonError):
        return None
    return value if isinstance(value, str) else None


def _check_header_value(name: str, value: str, shown: str) -> None:
    if len(value) > MAX_HEADER_VALUE:
        raise ConstraintViolation(f"header {name!r} is longer than {MAX_HEADER_VALUE} characters")
    for ch in value:
        o = ord(ch)
        if (o < 0x20 and ch != "\t") or o == 0x7F:
            raise ConstraintViolation(f"header {name!r}: {shown} contains a control character")
        if o > 0xFF:
            raise ConstraintViolation(f"header {name!r}: {shown} is not Latin-1 text")


def build_headers(
    headers: dict[str, str | SecretRef],
    store: Any,
    redactor: FetchRedactor,
    constraints: HttpConstraints,
) -> tuple[list[tuple[str, str]], dict[str, str]]:
    """Agent headers checked, secrets injected. Returns (headers, {lowercase header name:
    secret name} for the headers carrying a secret). A secret the constraints do not list in
    `secrets` is refused before its value is even read."""
    out: list[tuple[str, str]] = []
    seen: set[str] = set()
    secret_names: dict[str, str] = {}
    for name, value in headers.items():
        if not isinstance(name, str) or not _TOKEN_RE.match(name):
            raise ConstraintViolation(f"header name {name!r} is not a valid HTTP token")
        low = name.lower()
        if low in REFUSED_HEADERS:
            raise ConstraintViolation(
                f"header {name!r} is set by the broker (hop-by-hop, framing or encoding)"
            )
        if low in seen:
            raise ConstraintViolation(f"header {name!r} is given twice")
        seen.add(low)
        if isinstance(value, SecretRef):
            if value.secret_ref not in constraints.secrets:
                raise ConstraintViolation(
                    f"header {name!r} names secret {value.secret_ref!r}, which this "
                    "capability does not grant (the override lists secrets "
                    f"{list(constraints.secrets)})",
                    details={"secret_ref": value.secret_ref},
                )
            secret = _secret_value(store, value.secret_ref)
            if secret is None:
                raise ConstraintViolation(
                    f"header {name!r} names secret {value.secret_ref!r}, which is not set"
                )
            redactor.add(value.secret_ref, secret)
            _check_header_value(name, secret, f"secret {value.secret_ref!r}")
            secret_names[low] = value.secret_ref
            out.append((name, secret))
        else:
            _check_header_value(name, value, "the value")
            out.append((name, value))
    return out, secret_names


def _resolve(host: str, port: int, deadline: float, resolver: Resolver) -> list[IPAddress]:
    literal = parse_ip_literal(host)
    if literal is not None:
        return [literal]
    left = deadline - time.monotonic()
    if left <= 0:
        raise ToolError("the fetch deadline passed before DNS resolution")
    future = _dns_pool.submit(resolver, host, port)
    try:
        raw = future.result(timeout=left)
    except FutureTimeout:
        future.cancel()
        raise ToolError(f"DNS resolution of {host!r} did not finish before the deadline") from None
    except (OSError, UnicodeError) as exc:
        raise ToolError(f"cannot resolve {host!r}: {exc}") from None
    out: list[IPAddress] = []
    for a in raw:
        ip = parse_ip_literal(a.split("%", 1)[0]) if isinstance(a, str) else None
        if ip is None:
            raise ToolError(f"resolver returned {a!r} for {host!r}, which is not an address")
        if ip not in out:
            out.append(ip)
    if not out:
        raise ToolError(f"{host!r} has no address")
    return out


def resolve_addresses(host: str, port: int, seconds: float) -> list[IPAddress]:
    """The addresses a fetch to host:port would connect to now (the system resolver, within
    `seconds`); ToolError when it cannot be resolved in time."""
    return _resolve(host, port, time.monotonic() + seconds, system_resolver)


def check_addresses(host: str, addrs: Sequence[IPAddress], constraints: HttpConstraints) -> None:
    """Refuse if ANY address is forbidden (metadata addresses even with the private opt-in)."""
    for ip in addrs:
        reason = address_forbidden(ip)
        if reason is None:
            continue
        metadata = is_metadata_address(ip)
        if constraints.allow_private_addresses and not metadata:
            continue
        hint = "" if metadata else "; set allow_private_addresses to reach it"
        raise ConstraintViolation(
            f"{host} resolves to {ip}, {reason}{hint}",
            details={"host": host, "address": str(ip), "reason": reason},
        )


@dataclass
class _Hop:
    parsed: ParsedURL
    addresses: list[IPAddress]


def _prepare(url: str, constraints: HttpConstraints, deadline: float, resolver: Resolver) -> _Hop:
    parsed = parse_fetch_url(url)
    check_fetch_target(parsed, constraints)
    addrs = _resolve(parsed.host, parsed.port, deadline, resolver)
    check_addresses(parsed.host, addrs, constraints)
    return _Hop(parsed, addrs)


# --------------------------------------------------------------------------- fetch


@dataclass
class _Response:
    status: int
    headers: list[tuple[str, str]]
    body: bytes
    truncated: bool


def _send(
    hop: _Hop,
    method: str,
    headers: list[tuple[str, str]],
    body: bytes | None,
    max_bytes: int,
    deadline: float,
    ssl_context: ssl.SSLContext,
) -> _Response:
    backend = PinnedBackend(hop.parsed.host, hop.addresses, deadline)
    transport = PinnedTransport(backend, ssl_context)
    left = max(deadline - time.monotonic(), 0.001)
    base_headers = {
        "User-Agent": USER_AGENT,
        "Accept": "*/*",
        "Accept-Encoding": "identity",
        "Connection": "close",
    }
    with httpx.Client(
        transport=transport,
        trust_env=False,
        follow_redirects=False,
        timeout=httpx.Timeout(left),
        headers=base_headers,
    ) as client:
        request = client.build_request(method, hop.parsed.url, headers=headers, content=body)
        response = client.send(request, stream=True)
        try:
            chunks: list[bytes] = []
            got = 0
            truncated = False
            for chunk in response.iter_raw():
                if got + len(chunk) > max_bytes:
                    chunks.append(chunk[: max_bytes - got])
                    got = max_bytes
                    truncated = True
                    break
                chunks.append(chunk)
                got += len(chunk)
                if time.monotonic() > deadline:
                    raise httpx.ReadTimeout("the fetch deadline passed")
            return _Response(
                status=response.status_code,
                headers=[
                    (k.decode("latin-1"), v.decode("latin-1")) for k, v in response.headers.raw
                ],
                body=b"".join(chunks),
                truncated=truncated,
            )
        finally:
            response.close()


def _result(resp: _Response, url: str, redactor: FetchRedactor) -> dict[str, Any]:
    body, _ = redactor.data(resp.body)
    headers: dict[str, str] = {}
    for k, v in resp.headers:
        key = k.lower()
        v, _ = redactor.text(v)
        headers[key] = f"{headers[key]}, {v}" if key in headers else v
    out: dict[str, Any] = {"status_code": resp.status, "headers": headers}
    try:
        text, _ = redactor.text(body.decode("utf-8"))
        body = text.encode("utf-8")
        out["body"] = text
    except UnicodeDecodeError:
        out["body"] = base64.b64encode(body).decode("ascii")
        out["encoding"] = "base64"
    out["bytes"] = len(body)
    out["sha256"] = sha256_tag(body)
    out["truncated"] = resp.truncated
    out["url"] = redactor.text(url)[0]
    return out


def _origin(p: ParsedURL) -> tuple[str, str, int]:
    return (p.scheme, p.host, p.port)


def run_http_fetch(
    params: HttpFetchParams,
    constraints: HttpConstraints,
    *,
    secrets: Any = None,
    resolver: Resolver | None = None,
    ssl_context: ssl.SSLContext | None = None,
) -> dict[str, Any]:
    """Fetch one URL within `constraints`; see the module docstring for every rule."""
    redactor = FetchRedactor()
    try:
        return _fetch(
            params,
            constraints,
            secrets,
            resolver or system_resolver,
            ssl_context or _default_ssl_context(),
            redactor,
        )
    except TalonError as exc:
        raise redactor.error(exc) from None
    except httpx.TimeoutException:
        raise ToolError(
            f"http.fetch exceeded its deadline of {constraints.timeout_seconds} s",
            details={"timed_out": True},
        ) from None
    except (httpx.HTTPError, httpcore.ProtocolError, ssl.SSLError, OSError) as exc:
        message, _ = redactor.text(f"http.fetch failed: {type(exc).__name__}: {exc}")
        raise ToolError(message) from None


def _fetch(
    params: HttpFetchParams,
    constraints: HttpConstraints,
    store: Any,
    resolver: Resolver,
    ssl_context: ssl.SSLContext,
    redactor: FetchRedactor,
) -> dict[str, Any]:
    deadline = time.monotonic() + constraints.timeout_seconds
    method = check_method(params.method, constraints.methods)
    headers, secret_headers = build_headers(params.headers, store, redactor, constraints)
    body = None if params.body is None else params.body.encode("utf-8")
    if body is not None and len(body) > MAX_REQUEST_BODY:
        raise ConstraintViolation(f"request body is larger than {MAX_REQUEST_BODY} bytes")
    hop = _prepare(params.url, constraints, deadline, resolver)
    redirects = 0
    while True:
        # every hop: each secret still in the headers must be granted for the host it goes to
        for secret in secret_headers.values():
            check_secret_grant(secret, hop.parsed.host, constraints)
        resp = _send(hop, method, headers, body, constraints.max_bytes, deadline, ssl_context)
        location = next((v for k, v in resp.headers if k.lower() == "location"), None)
        if resp.status not in REDIRECT_STATUSES or location is None:
            return _result(resp, hop.parsed.url, redactor)
        if redirects >= constraints.max_redirects:
            out = _result(resp, hop.parsed.url, redactor)
            out["redirect_refused"] = f"more than {constraints.max_redirects} redirects"
            return out
        try:
            next_url = str(httpx.URL(hop.parsed.url).join(location))
            next_method = method
            next_body = body
            if (resp.status == 303 and method != "HEAD") or (
                resp.status in (301, 302) and method == "POST"
            ):
                next_method, next_body = "GET", None
            check_method(next_method, constraints.methods)
            next_hop = _prepare(next_url, constraints, deadline, resolver)
        except (ConstraintViolation, ToolError, httpx.InvalidURL) as exc:
            out = _result(resp, hop.parsed.url, redactor)
            reason = exc.message if isinstance(exc, TalonError) else str(exc)
            out["redirect_refused"] = redactor.text(reason)[0]
            return out
        if _origin(next_hop.parsed) != _origin(hop.parsed):
            drop = set(secret_headers) | CROSS_ORIGIN_DROPPED
            headers = [(k, v) for k, v in headers if k.lower() not in drop]
            secret_headers = {}
        if next_body is None and body is not None:
            headers = [(k, v) for k, v in headers if not k.lower().startswith("content-")]
        method, body, hop = next_method, next_body, next_hop
        redirects += 1
