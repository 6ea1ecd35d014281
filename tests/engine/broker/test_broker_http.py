"""http.fetch against real local servers on 127.0.0.1 and 127.0.0.2: every SSRF trick."""

from __future__ import annotations

import json
import time

import pytest
from support.http_server import recorder

from talon_tui.engine.broker.http import PinnedBackend, run_http_fetch
from talon_tui.engine.errors import ConstraintViolation, TalonError, ToolError
from talon_tui.engine.policy.checks import parse_ip_literal
from talon_tui.engine.policy.models import HttpConstraints, HttpFetchParams

SECRET = "s3cr3t-VALUE-never-shown"


class Secrets:
    def __init__(self, values):
        self.values = values

    def get(self, name):
        return self.values.get(name)


a = recorder("127.0.0.1")
b = recorder("127.0.0.2")


@pytest.fixture(autouse=True)
def _clear(a, b):
    a.requests.clear()
    b.requests.clear()


def local(srv, **kw):
    kw.setdefault("domains", ["127.0.0.1"])
    kw.setdefault("schemes", ["http"])
    kw.setdefault("ports", [srv.port])
    kw.setdefault("allow_private_addresses", True)
    return HttpConstraints(**kw)


def fetch(url, cons, **kw):
    secrets = kw.pop("secrets", None)
    resolver = kw.pop("resolver", None)
    return run_http_fetch(HttpFetchParams(url=url, **kw), cons, secrets=secrets, resolver=resolver)


def test_fetch_ok(a):
    r = fetch(a.base + "/x?y=1", local(a))
    assert r["status_code"] == 200
    assert r["body"] == "hello from 127.0.0.1"
    assert r["bytes"] == len(r["body"]) and r["sha256"].startswith("sha256:")
    assert r["truncated"] is False
    assert a.requests[0]["path"] == "/x?y=1"
    assert a.requests[0]["headers"]["Host"] == f"127.0.0.1:{a.port}"
    assert a.requests[0]["headers"]["Accept-Encoding"] == "identity"


def test_binary_body_base64(a):
    import base64

    r = fetch(a.base + "/binary", local(a))
    assert r["encoding"] == "base64" and base64.b64decode(r["body"]) == bytes(range(256))


def test_private_address_refused_unless_allowed(a):
    with pytest.raises(ConstraintViolation, match="loopback"):
        fetch(a.base + "/", local(a, allow_private_addresses=False))
    assert a.requests == []


def test_dns_name_resolving_to_loopback_refused(a):
    c = local(a, domains=["localhost"], allow_private_addresses=False)
    with pytest.raises(ConstraintViolation, match="resolves to"):
        fetch(f"http://localhost:{a.port}/", c)
    assert a.requests == []
    # allowed with the opt-in, and Host stays the name
    r = fetch(
        f"http://localhost:{a.port}/",
        local(a, domains=["localhost"]),
        resolver=lambda h, p: ["127.0.0.1"],
    )
    assert r["status_code"] == 200
    assert a.requests[0]["headers"]["Host"] == f"localhost:{a.port}"


def test_any_forbidden_address_refuses(a):
    c = local(a, domains=["multi.test"], allow_private_addresses=False)
    with pytest.raises(ConstraintViolation, match="10.0.0.1"):
        fetch(
            f"http://multi.test:{a.port}/", c, resolver=lambda h, p: ["93.184.216.34", "10.0.0.1"]
        )


def test_metadata_refused_even_with_opt_in(a):
    c = local(a, domains=["meta.test"])
    with pytest.raises(ConstraintViolation, match="metadata"):
        fetch(f"http://meta.test:{a.port}/", c, resolver=lambda h, p: ["169.254.169.254"])
    with pytest.raises(ConstraintViolation, match="metadata"):
        fetch(f"http://meta.test:{a.port}/", c, resolver=lambda h, p: ["::ffff:169.254.169.254"])


def test_connects_to_checked_address_not_a_second_lookup(a, b):
    """The resolver is asked once; the socket goes to that answer, Host stays the name."""
    calls = []

    def resolver(host, port):
        calls.append(host)
        return ["127.0.0.2"] if len(calls) == 1 else ["127.0.0.1"]

    c = local(b, domains=["rebind.test"])
    r = fetch(f"http://rebind.test:{b.port}/", c, resolver=resolver)
    assert r["body"] == "hello from 127.0.0.2"
    assert calls == ["rebind.test"]
    assert len(b.requests) == 1 and a.requests == []
    assert b.requests[0]["headers"]["Host"] == f"rebind.test:{b.port}"


def test_pinned_backend_refuses_other_host():
    backend = PinnedBackend("good.test", [parse_ip_literal("127.0.0.1")], time.monotonic() + 5)
    import httpcore

    with pytest.raises(httpcore.ConnectError):
        backend.connect_tcp("evil.test", 80)


def test_redirect_to_other_host_never_reaches_it(a, b):
    c = local(a)
    r = fetch(a.base + f"/redirect?to={b.base}/stolen", c)
    assert r["status_code"] == 302
    assert "not in the allowed domains" in r["redirect_refused"]
    assert b.requests == []
    assert len(a.requests) == 1


@pytest.mark.parametrize(
    "target",
    [
        "http://127.0.0.2:{bp}/",
        "http://2130706434:{bp}/",
        "http://0x7f000002:{bp}/",
        "http://127.0.0.1@127.0.0.2:{bp}/",
        "http://localhost:{ap}@127.0.0.2:{bp}/",
        "http://[::ffff:127.0.0.2]:{bp}/",
        "file:///etc/passwd",
        "http://127.0.0.1:{bp}/",  # allowed host, port not allowed
        "https://127.0.0.1:{ap}/",  # scheme not allowed
    ],
)
def test_redirect_tricks_never_reach_other_server(a, b, target):
    c = local(a)
    to = target.format(ap=a.port, bp=b.port)
    from urllib.parse import quote

    r = fetch(a.base + "/redirect?to=" + quote(to, safe=""), c)
    assert r["status_code"] == 302 and r["redirect_refused"]
    assert b.requests == []
    assert len(a.requests) == 1


def test_redirect_followed_within_allowlist(a):
    c = local(a)
    r = fetch(a.base + "/redirect?to=/final", c)
    assert r["status_code"] == 200 and "redirect_refused" not in r
    assert [q["path"] for q in a.requests] == ["/redirect?to=/final", "/final"]
    assert r["url"].endswith("/final")


def test_redirect_limit(a):
    c = local(a, max_redirects=2)
    from urllib.parse import quote

    inner = "/redirect?to=" + quote("/redirect?to=" + quote("/redirect?to=/end", safe=""), safe="")
    r = fetch(a.base + inner, c)
    assert r["status_code"] == 302 and "more than 2 redirects" in r["redirect_refused"]
    assert len(a.requests) == 3


def test_303_becomes_get_and_method_rechecked(a):
    c = local(a, methods=["POST"])
    r = fetch(a.base + "/redirect?status=303&to=/after", c, method="POST", body="x")
    assert "method GET is not allowed" in r["redirect_refused"]
    assert len(a.requests) == 1


@pytest.mark.parametrize(
    "url",
    [
        "http://localhost:{ap}@127.0.0.2:{bp}/",
        "http://127.0.0.2:{bp}/",
        "http://2130706434:{bp}/",
        "http://0x7f000002:{bp}/",
        "http://0x7f.2:{bp}/",
        "http://0177.0.0.2:{bp}/",
        "http://127.2:{bp}/",
        "http://[::ffff:127.0.0.2]:{bp}/",
        "http://127.0.0.2.:{bp}/",
        "http://127.0.0.1.127.0.0.2:{bp}/",
        "http://127.0.0.1\\@127.0.0.2:{bp}/",
    ],
)
def test_host_tricks_refused_before_any_request(a, b, url):
    c = local(b, domains=["127.0.0.1"])
    with pytest.raises(ConstraintViolation):
        fetch(url.format(ap=a.port, bp=b.port), c)
    assert b.requests == [] and a.requests == []


def test_ipv6_mapped_loopback_refused_without_opt_in(a):
    c = local(a, domains=["[::ffff:127.0.0.1]"], allow_private_addresses=False)
    with pytest.raises(ConstraintViolation, match="IPv4-mapped"):
        fetch(f"http://[::ffff:127.0.0.1]:{a.port}/", c)
    assert a.requests == []


def test_suffix_confusion(a):
    c = local(a, domains=["example.com", "*.example.com"])
    for host in ["notexample.com", "example.com.evil.test", "example.comm"]:
        with pytest.raises(ConstraintViolation, match="allowed domains"):
            fetch(f"http://{host}:{a.port}/", c, resolver=lambda h, p: ["127.0.0.1"])
    assert a.requests == []


def test_method_limit(a):
    with pytest.raises(ConstraintViolation, match="method"):
        fetch(a.base + "/", local(a), method="POST", body="x")
    with pytest.raises(ConstraintViolation, match="method"):
        fetch(a.base + "/", local(a), method="TRACE")
    assert a.requests == []
    r = fetch(a.base + "/echo", local(a, methods=["PUT"]), method="put", body="payload")
    assert json.loads(r["body"])["body"] == "payload" and a.requests[0]["method"] == "PUT"


def test_size_limit_truncates(a):
    r = fetch(a.base + "/big?n=5000", local(a, max_bytes=1000))
    assert r["truncated"] is True and r["bytes"] == 1000 and r["body"] == "x" * 1000
    r = fetch(a.base + "/big?n=1000", local(a, max_bytes=1000))
    assert r["truncated"] is False and r["bytes"] == 1000


def test_slow_server_hits_total_deadline(a):
    t0 = time.monotonic()
    with pytest.raises(ToolError, match="deadline"):
        fetch(a.base + "/slow?delay=0.2", local(a, timeout_seconds=1))
    assert time.monotonic() - t0 < 2.5
    t0 = time.monotonic()
    with pytest.raises(ToolError, match="deadline"):
        fetch(a.base + "/hang?delay=3", local(a, timeout_seconds=1))
    assert time.monotonic() - t0 < 2.5


def test_secret_injected_and_redacted(a):
    store = Secrets({"api": SECRET})
    r = fetch(
        a.base + "/echo",
        local(a, secrets=["api"]),
        headers={"Authorization": {"secret_ref": "api"}},
        secrets=store,
    )
    assert a.requests[0]["headers"]["Authorization"] == SECRET  # the server saw it
    dumped = json.dumps(r)
    assert SECRET not in dumped
    assert "«secret:api»" in r["body"] and r["headers"]["x-echo-auth"] == "«secret:api»"


def test_secret_never_in_errors(a):
    store = Secrets({"api": SECRET})
    with pytest.raises(TalonError) as exc:
        fetch(
            a.base + "/hang?delay=3",
            local(a, timeout_seconds=1, secrets=["api"]),
            headers={"X-Key": {"secret_ref": "api"}},
            secrets=store,
        )
    assert SECRET not in str(exc.value) and SECRET not in json.dumps(exc.value.to_wire())


def test_secret_dropped_on_cross_origin_redirect(a, b):
    store = Secrets({"api": SECRET})
    c = local(a, domains=["127.0.0.1", "127.0.0.2"], ports=[a.port, b.port], secrets=["api"])
    r = fetch(
        a.base + f"/redirect?to={b.base}/echo",
        c,
        headers={"Authorization": {"secret_ref": "api"}, "X-Plain": "ok"},
        secrets=store,
    )
    assert r["status_code"] == 200
    assert a.requests[0]["headers"]["Authorization"] == SECRET
    assert "Authorization" not in b.requests[0]["headers"]
    assert b.requests[0]["headers"]["X-Plain"] == "ok"


def test_unknown_secret_refused(a):
    with pytest.raises(ConstraintViolation, match="not set"):
        fetch(
            a.base + "/",
            local(a, secrets=["nope"]),
            headers={"A": {"secret_ref": "nope"}},
            secrets=Secrets({}),
        )
    assert a.requests == []


@pytest.mark.parametrize(
    "headers",
    [
        {"Host": "evil"},
        {"host": "evil"},
        {"Transfer-Encoding": "chunked"},
        {"Content-Length": "5"},
        {"Connection": "keep-alive"},
        {"Accept-Encoding": "gzip"},
        {"X-A": "a\r\nX-Injected: 1"},
        {"X-A": "a\nb"},
        {"X-A": "a\x00"},
        {"Bad Name": "x"},
        {"X:A": "x"},
        {"": "x"},
        {"X-A": "a", "x-a": "b"},
    ],
)
def test_bad_headers_refused(a, headers):
    with pytest.raises(ConstraintViolation):
        fetch(a.base + "/", local(a), headers=headers)
    assert a.requests == []


def test_secret_reflected_in_encoded_forms_is_redacted(a):
    import base64
    from urllib.parse import quote

    store = Secrets({"api": SECRET})
    b64 = base64.b64encode(SECRET.encode()).decode()
    r = fetch(
        a.base + "/echo",
        local(a, secrets=["api"]),
        headers={
            "X-Key": {"secret_ref": "api"},
            "X-B64": b64,
            "X-Pct": quote(SECRET + "/", safe=""),
        },
        secrets=store,
    )
    dumped = json.dumps(r)
    assert SECRET not in dumped and b64[2:-2] not in dumped
