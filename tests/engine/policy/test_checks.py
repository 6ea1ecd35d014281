"""Hostile inputs against the lexical checks (engine/policy/checks.py)."""

from __future__ import annotations

import ipaddress

import pytest

from talon_tui.engine.errors import ConstraintViolation
from talon_tui.engine.policy import checks
from talon_tui.engine.policy.models import HttpConstraints

# --------------------------------------------------------------------------- paths


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("a.txt", ("a.txt",)),
        ("work/a.txt", ("work", "a.txt")),
        ("./work/./a.txt", ("work", "a.txt")),
        (".", ()),
        ("ünïcode/ファイル", ("ünïcode", "ファイル")),
        ("...", ("...",)),
        ("..a", ("..a",)),
    ],
)
def test_normalize_rel_path_ok(path, expected):
    assert checks.normalize_rel_path(path) == expected


@pytest.mark.parametrize(
    "path",
    [
        "",
        "..",
        "../x",
        "work/../../etc/passwd",
        "work/..",
        "/etc/passwd",
        "/proc/self/root/etc/passwd",
        "//etc/passwd",
        "a\x00b",
        "a\nb",
        "a\rb",
        "a\x1bb",
        "a\x7fb",
        "a\u202eb",
        "work\\..\\secret",
        "..\\x",
        "a//b",
        "work/",
        "work/a.txt/",
        "x" * 5000,
        None,
        123,
        b"work/a",
    ],
)
def test_normalize_rel_path_refuses(path):
    with pytest.raises(ConstraintViolation):
        checks.normalize_rel_path(path)


def test_path_under_roots_component_wise():
    assert checks.path_under_roots("work/a", ["work"]) == "work"
    assert checks.path_under_roots("work2/a", ["work"]) is None
    assert checks.path_under_roots("workx", ["work"]) is None
    assert checks.path_under_roots("work", ["work"]) == "work"
    assert checks.path_under_roots("a/b/c", ["a/b"]) == "a/b"
    assert checks.path_under_roots("a/bc", ["a/b"]) is None
    assert checks.path_under_roots("anything/deep", ["."]) == "."
    assert checks.path_under_roots("work/a", ["work/"]) == "work/"
    assert checks.path_under_roots("work/a", ["other", "./work"]) == "./work"


def test_path_under_roots_hostile_roots_match_nothing():
    for bad in ["../", "..", "/", "/etc", "a//b", "", "a\x00"]:
        assert checks.path_under_roots("a/b", [bad]) is None


def test_absolute_root_only_inside_workspace():
    assert checks.path_under_roots("work/a", ["/ws/work"], workspace="/ws") == "/ws/work"
    assert checks.path_under_roots("work/a", ["/ws/work"], workspace="/other") is None
    assert checks.path_under_roots("work/a", ["/ws/work"]) is None
    assert checks.path_under_roots("work/a", ["/ws2/work"], workspace="/ws") is None
    assert checks.path_under_roots("x", ["/ws/../etc"], workspace="/ws") is None


def test_path_under_roots_refuses_tricky_path():
    with pytest.raises(ConstraintViolation):
        checks.path_under_roots("work/../secret", ["work"])


def test_check_file_path():
    assert checks.check_file_path("work/a", ["work"]) == (("work", "a"), "work")
    with pytest.raises(ConstraintViolation, match="outside the allowed roots"):
        checks.check_file_path("work2/a", ["work"])


# --------------------------------------------------------------------------- URLs


def test_parse_fetch_url_basic():
    p = checks.parse_fetch_url("https://API.Example.com./v1/x?q=1#frag")
    assert p == checks.ParsedURL("https", "api.example.com", 443, "/v1/x?q=1")
    assert p.url == "https://api.example.com/v1/x?q=1"
    p = checks.parse_fetch_url("http://example.com:8080")
    assert (p.port, p.target, p.netloc) == (8080, "/", "example.com:8080")


def test_parse_fetch_url_idna():
    p = checks.parse_fetch_url("https://Bücher.de/")
    assert p.host == "xn--bcher-kva.de"


def test_parse_fetch_url_ipv6():
    p = checks.parse_fetch_url("http://[::FFFF:127.0.0.1]:81/")
    assert p.host == "::ffff:7f00:1"
    assert p.ip == ipaddress.IPv6Address("::ffff:127.0.0.1")
    assert p.netloc == "[::ffff:7f00:1]:81"


@pytest.mark.parametrize(
    "url",
    [
        "ftp://example.com/",
        "file:///etc/passwd",
        "gopher://example.com/",
        "javascript:alert(1)",
        "http:/example.com/",
        "http:example.com",
        "//example.com/",
        "example.com",
        "http://user:pw@example.com/",
        "http://localhost:8000@127.0.0.2:9000/",
        "http://example.com@evil.com/",
        "http://@example.com/",
        "http://example.com\\@evil.com/",
        "http://evil.com\\.example.com/",
        "http://example.com/a\\b",
        "http://exa mple.com/",
        "http://example.com/ x",
        "http://example.com/\tx",
        "http://example.com\r\nHost: evil/",
        "http://example.com/\x00",
        "http://exa%6dple.com/",
        "http://[fe80::1%25eth0]/",
        "http:///path",
        "http://:80/",
        "http://example.com:0/",
        "http://example.com:99999/",
        "http://example.com:-1/",
        "http://2130706433/",
        "http://0x7f000001/",
        "http://0x7f.1/",
        "http://0177.0.0.1/",
        "http://127.1/",
        "http://127.0.0.1.5/",
        "http://example.123/",
        "http://[::1/",
        "http://[zz::1]/",
        "http://a..b/",
        "http://-/",
        "http://ex_ample$.com/",
        "http://example.com\u3002evil.com/",
        "",
        None,
    ],
)
def test_parse_fetch_url_refuses(url):
    with pytest.raises(ConstraintViolation):
        checks.parse_fetch_url(url)


def test_lookalike_dots_refused():
    # IDNA maps U+3002 / U+FF0E to '.': refuse rather than guess what the agent meant.
    for url in ["http://example.com。/", "http://a．example.com/", "http://a｡b.com/"]:
        with pytest.raises(ConstraintViolation, match="look-alike"):
            checks.parse_fetch_url(url)


def test_canonical_ipv4_is_accepted():
    p = checks.parse_fetch_url("http://127.0.0.1:8080/x")
    assert p.host == "127.0.0.1"
    assert p.ip == ipaddress.IPv4Address("127.0.0.1")


# --------------------------------------------------------------------------- hosts


def test_host_allowed_exact_and_wildcard():
    d = ["api.example.com", "*.corp.example"]
    assert checks.host_allowed("api.example.com", d)
    assert checks.host_allowed("API.EXAMPLE.COM.", d)
    assert not checks.host_allowed("example.com", d)
    assert not checks.host_allowed("xapi.example.com", d)
    assert not checks.host_allowed("api.example.com.evil.com", d)
    assert not checks.host_allowed("evilapi.example.com", d)
    assert checks.host_allowed("a.corp.example", d)
    assert checks.host_allowed("a.b.corp.example", d)
    assert not checks.host_allowed("corp.example", d)
    assert not checks.host_allowed("notcorp.example", d)
    assert not checks.host_allowed("", d)


def test_host_allowed_suffix_confusion():
    assert not checks.host_allowed("notexample.com", ["example.com"])
    assert not checks.host_allowed("notexample.com", ["*.example.com"])
    assert not checks.host_allowed("example.com.notexample.com", ["example.com"])


def test_host_allowed_bad_entries_match_nothing():
    for entry in ["*", "*.", "*.*.com", "a*.com", ".", "*com", ""]:
        assert not checks.host_allowed("a.com", [entry])
        assert not checks.host_allowed("x.y.com", [entry])


def test_host_allowed_idna():
    assert checks.host_allowed("xn--bcher-kva.de", ["bücher.de"])
    assert checks.host_allowed("bücher.de", ["xn--bcher-kva.de"])
    assert checks.host_allowed("a.xn--bcher-kva.de", ["*.bücher.de"])


def test_host_allowed_ip_entries():
    assert checks.host_allowed("127.0.0.1", ["127.0.0.1"])
    assert not checks.host_allowed("127.0.0.2", ["127.0.0.1"])
    assert checks.host_allowed("::1", ["[::1]"])
    assert not checks.host_allowed("1.127.0.0.1", ["*.127.0.0.1"])
    assert not checks.host_allowed("1.2.3.4", ["*.3.4"])


def test_check_fetch_target():
    c = HttpConstraints(domains=["api.example.com"], ports=[8443])
    checks.check_fetch_target(checks.parse_fetch_url("https://api.example.com/"), c)
    checks.check_fetch_target(checks.parse_fetch_url("https://api.example.com:8443/"), c)
    with pytest.raises(ConstraintViolation, match="scheme"):
        checks.check_fetch_target(checks.parse_fetch_url("http://api.example.com/"), c)
    with pytest.raises(ConstraintViolation, match="port"):
        checks.check_fetch_target(checks.parse_fetch_url("https://api.example.com:444/"), c)
    with pytest.raises(ConstraintViolation, match="domains"):
        checks.check_fetch_target(checks.parse_fetch_url("https://notapi.example.com/"), c)
    c = HttpConstraints(domains=["127.0.0.1"], schemes=["http"])
    with pytest.raises(ConstraintViolation, match="loopback"):
        checks.check_fetch_target(checks.parse_fetch_url("http://127.0.0.1/"), c)
    c = HttpConstraints(domains=["127.0.0.1"], schemes=["http"], allow_private_addresses=True)
    checks.check_fetch_target(checks.parse_fetch_url("http://127.0.0.1/"), c)
    c = HttpConstraints(
        domains=["169.254.169.254", "[::ffff:169.254.169.254]"],
        schemes=["http"],
        allow_private_addresses=True,
    )
    for url in ["http://169.254.169.254/", "http://[::ffff:169.254.169.254]/"]:
        with pytest.raises(ConstraintViolation, match="metadata"):
            checks.check_fetch_target(checks.parse_fetch_url(url), c)


def test_check_method():
    assert checks.check_method("get", ["GET"]) == "GET"
    for m in ["POST", "GET ", "G\r\nET", "", "TRACE", None]:
        with pytest.raises(ConstraintViolation):
            checks.check_method(m, ["GET"])


# --------------------------------------------------------------------------- IPs


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("127.0.0.1", "127.0.0.1"),
        ("2130706433", "127.0.0.1"),
        ("0x7f000001", "127.0.0.1"),
        ("0X7F000001", "127.0.0.1"),
        ("0x7f.1", "127.0.0.1"),
        ("0177.0.0.1", "127.0.0.1"),
        ("0177.1", "127.0.0.1"),
        ("127.1", "127.0.0.1"),
        ("127.0.1", "127.0.0.1"),
        ("10.1.65535", "10.1.255.255"),
        ("0", "0.0.0.0"),
        ("0x", "0.0.0.0"),
        ("169.254.43518", "169.254.169.254"),
        ("127.0.0.1.", "127.0.0.1"),
        ("[::1]", "::1"),
        ("::ffff:127.0.0.1", "::ffff:7f00:1"),
    ],
)
def test_parse_ip_literal(text, expected):
    assert str(checks.parse_ip_literal(text)) == expected


@pytest.mark.parametrize(
    "text",
    [
        "example.com",
        "256.0.0.1",
        "1.2.3.4.5",
        "08.0.0.1",
        "0x1g",
        "4294967296",
        "1.2.65536",
        "",
        "[zz]",
    ],
)
def test_parse_ip_literal_none(text):
    assert checks.parse_ip_literal(text) is None


@pytest.mark.parametrize(
    "addr",
    [
        "127.0.0.1",
        "127.255.255.254",
        "10.0.0.1",
        "172.16.0.1",
        "172.31.255.255",
        "192.168.1.1",
        "100.64.0.1",
        "100.127.255.255",
        "169.254.1.1",
        "169.254.169.254",
        "100.100.100.200",
        "0.0.0.0",
        "0.1.2.3",
        "224.0.0.1",
        "239.255.255.250",
        "240.0.0.1",
        "255.255.255.255",
        "192.0.2.1",
        "198.18.0.1",
        "::",
        "::1",
        "fe80::1",
        "fc00::1",
        "fd00:ec2::254",
        "ff02::1",
        "::ffff:127.0.0.1",
        "::ffff:169.254.169.254",
        "::ffff:10.0.0.1",
        "::127.0.0.1",
        "::10.0.0.1",
        "2002:7f00:1::",
        "2002:a9fe:a9fe::1",
        "64:ff9b::127.0.0.1",
        "64:ff9b::a9fe:a9fe",
        "64:ff9b:1::1",
        "2001:0:4136:e378:8000:63bf:3fff:fdd2",
        "2001:db8::1",
        "fec0::1",
        "100::1",
    ],
)
def test_address_forbidden(addr):
    assert checks.address_forbidden(ipaddress.ip_address(addr)) is not None
    assert checks.address_forbidden(addr) is not None


def test_address_forbidden_reasons():
    assert "metadata" in checks.address_forbidden("169.254.169.254")
    assert "metadata" in checks.address_forbidden("fd00:ec2::254")
    assert "loopback" in checks.address_forbidden("::ffff:127.0.0.1")
    assert "IPv4-mapped" in checks.address_forbidden("::ffff:127.0.0.1")
    assert "carrier-grade" in checks.address_forbidden("100.64.0.1")
    assert "Teredo" in checks.address_forbidden("2001:0:4136:e378:8000:63bf:3fff:fdd2")
    assert "scoped" in checks.address_forbidden(ipaddress.IPv6Address("fe80::1%eth0"))


@pytest.mark.parametrize(
    "addr",
    [
        "8.8.8.8",
        "1.1.1.1",
        "93.184.216.34",
        "2606:4700:4700::1111",
        "::ffff:8.8.8.8",
        "64:ff9b::808:808",
        "2002:808:808::1",
        "100.63.255.255",
        "100.128.0.1",
        "172.32.0.1",
    ],
)
def test_address_allowed(addr):
    assert checks.address_forbidden(addr) is None


# --------------------------------------------------------------------------- images, commands

ID = "sha256:" + "a" * 64
OTHER = "sha256:" + "b" * 64


def test_image_is_pinned():
    assert checks.image_is_pinned(ID)
    assert checks.image_is_pinned("busybox@" + ID)
    assert checks.image_is_pinned("registry:5000/ns/img@" + ID)
    for bad in [
        "busybox",
        "busybox:latest",
        "busybox:" + "a" * 64,
        "sha256:abc",
        "sha256:" + "A" * 64,
        ID + "\n",
        " " + ID,
        "sha512:" + "a" * 128,
        None,
        "",
    ]:
        assert not checks.image_is_pinned(bad)


def test_image_allowed_exact():
    assert checks.image_allowed(ID, [ID])
    assert checks.image_allowed("busybox@" + ID, ["busybox@" + ID])
    assert not checks.image_allowed(OTHER, [ID])
    # an image id and a repository digest are different hashes: never cross-matched
    assert not checks.image_allowed(ID, ["busybox@" + ID])
    assert not checks.image_allowed("busybox@" + ID, [ID])
    assert not checks.image_allowed("evil@" + ID, ["busybox@" + ID])
    # tags are never allowed, even when listed
    assert not checks.image_allowed("busybox:latest", ["busybox:latest"])
    assert not checks.image_allowed("busybox", ["busybox"])


def test_command_allowed():
    cmds = ["/usr/bin/echo", "/bin/ls"]
    assert checks.command_allowed("/usr/bin/echo", cmds)
    for bad in [
        "echo",
        "usr/bin/echo",
        "/usr/bin/../bin/echo",
        "/usr//bin/echo",
        "/usr/bin/./echo",
        "/usr/bin/echo/",
        "/usr/bin/echo\x00",
        "/usr/bin/ech",
        "/usr/bin/echo ",
        "/USR/BIN/ECHO",
        "",
        None,
    ]:
        assert not checks.command_allowed(bad, cmds)
    assert not checks.command_allowed("/usr/bin/../bin/ls", ["/usr/bin/../bin/ls"])


def test_is_metadata_address():
    for a in [
        "169.254.169.254",
        "100.100.100.200",
        "fd00:ec2::254",
        "::ffff:169.254.169.254",
        "64:ff9b::a9fe:a9fe",
        "2002:a9fe:a9fe::1",
        "::169.254.169.254",
    ]:
        assert checks.is_metadata_address(a), a
    for a in ["169.254.169.253", "127.0.0.1", "::1", "8.8.8.8", "nonsense"]:
        assert not checks.is_metadata_address(a), a
