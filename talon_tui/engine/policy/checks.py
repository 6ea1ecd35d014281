"""Pure, lexical security checks: one place each, used by the policy engine and the broker.

Nothing here touches the file system, DNS or the network. The broker repeats these checks on
every intent and then adds the ones that need the real world (openat walk, resolved addresses).
Every refusal is a `ConstraintViolation` whose message an operator can act on.

Decisions (documented once, here):

- Intent paths and roots are relative to the session workspace. Absolute intent paths are
  refused outright; so are `..`, NUL, control characters, backslashes, empty components
  (`a//b`) and a trailing slash. `.` components are dropped; the path `.` is the workspace.
- A root is written the same way, except that one trailing slash is tolerated (`work/`). An
  absolute root matches only when a `workspace` is given and the root lies inside it
  (lexically); otherwise it matches nothing. Root `.` is the whole workspace.
- URLs: only http/https, no userinfo, no backslash, whitespace or control characters anywhere,
  no percent-encoded or zone-scoped hosts, explicit port 1-65535. IPv4 literals must be written
  as canonical dotted quads: decimal, hex, octal and short forms (`2130706433`, `0x7f.1`,
  `0177.0.0.1`, `127.1`) are refused because resolvers disagree on what they mean.
- Cloud metadata addresses (169.254.169.254, 100.100.100.200, fd00:ec2::254, and IPv6 forms
  embedding them) are refused even when `allow_private_addresses` is set.
- Ports: the scheme's default port is always allowed; any other port only if listed in `ports`.
- Domains: exact host, or `*.example.com` for strict subdomains (not `example.com` itself).
  A bare `*` matches nothing. Comparison is on the lowercase IDNA (punycode) form; IP literal
  entries compare on the canonical address (`canonical_domain` is the one normalization).
- Secrets: a header may carry secret `name` to a host only when the same override lists the
  name in `secrets` and the host in `domains` (`check_secret_grant`).
- Images: the intent's image must be pinned (`sha256:<id>` or `name@sha256:<digest>`) and equal
  to an allowlist entry character for character. An image id and a repository digest are
  different hashes of different things, so `name@sha256:X` never matches `sha256:X` (nor the
  other way round), and names are not normalised (`busybox` is not `docker.io/library/busybox`).
- Commands: exact string match of a clean absolute path (no `..`, `.`, `//`, trailing slash,
  control characters). Symlinks are judged at exec time by the shell tool.
"""

from __future__ import annotations

import ipaddress
import re
import unicodedata
from dataclasses import dataclass
from typing import TYPE_CHECKING

import idna

from ..errors import ConstraintViolation
from .models import DIGEST_RE

if TYPE_CHECKING:
    from .models import HttpConstraints

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

MAX_PATH_CHARS = 4096
MAX_URL_CHARS = 8192
DEFAULT_PORTS = {"http": 80, "https": 443}

# --------------------------------------------------------------------------- characters


#: the control characters an ASCII string can hold (Cf, Zl and Zp have none below 0x80)
_ASCII_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def _control_char(s: str) -> str | None:
    """The first control/format character in `s` (C0, DEL, C1, bidi and other Cc/Cf), or None."""
    if s.isascii():  # the usual path: one regex scan instead of a category lookup per char
        found = _ASCII_CONTROL.search(s)
        return found.group() if found is not None else None
    for ch in s:
        o = ord(ch)
        if o < 0x20 or 0x7F <= o <= 0x9F:
            return ch
        if unicodedata.category(ch) in ("Cc", "Cf", "Zl", "Zp"):
            return ch
    return None


def _describe(ch: str) -> str:
    return f"U+{ord(ch):04X}"


# --------------------------------------------------------------------------- paths


def normalize_rel_path(path: str, *, what: str = "path") -> tuple[str, ...]:
    """Split a workspace-relative path into components, refusing every escape trick.

    Returns `()` for the workspace itself (`.`). Raises ConstraintViolation for a non-string,
    empty path, NUL or control characters, backslashes, absolute paths, `..` anywhere, empty
    components (`a//b`) and a trailing slash (`file/`).
    """
    if not isinstance(path, str):
        raise ConstraintViolation(f"{what} must be a string")
    if path == "":
        raise ConstraintViolation(f"{what} is empty")
    if len(path) > MAX_PATH_CHARS:
        raise ConstraintViolation(f"{what} is longer than {MAX_PATH_CHARS} characters")
    if "\x00" in path:
        raise ConstraintViolation(f"{what} contains a NUL byte")
    bad = _control_char(path)
    if bad is not None:
        raise ConstraintViolation(f"{what} contains a control character ({_describe(bad)})")
    if "\\" in path:
        raise ConstraintViolation(
            f"{what} {path!r} contains a backslash; use '/' between components"
        )
    if path.startswith("/"):
        raise ConstraintViolation(
            f"{what} {path!r} is absolute; paths are relative to the session workspace"
        )
    if path.endswith("/"):
        raise ConstraintViolation(f"{what} {path!r} ends with a slash; name a file")
    parts: list[str] = []
    for comp in path.split("/"):
        if comp == "":
            raise ConstraintViolation(f"{what} {path!r} has an empty component ('//')")
        if comp == "..":
            raise ConstraintViolation(f"{what} {path!r} contains '..'; it may not leave its root")
        if comp == ".":
            continue
        parts.append(comp)
    return tuple(parts)


def normalize_root(root: str, *, workspace: str | None = None) -> tuple[str, ...] | None:
    """Components of a root relative to the workspace, or None if it can never match.

    One trailing slash is tolerated. An absolute root counts only if `workspace` is given and
    the root is inside it.
    """
    if not isinstance(root, str) or root == "":
        return None
    r = root
    if r.startswith("/"):
        if workspace is None or not workspace.startswith("/"):
            return None
        try:
            ws = _abs_components(workspace)
            rc = _abs_components(r)
        except ConstraintViolation:
            return None
        if rc[: len(ws)] != ws:
            return None
        return rc[len(ws) :]
    if len(r) > 1 and r.endswith("/"):
        r = r[:-1]
    try:
        return normalize_rel_path(r, what="root")
    except ConstraintViolation:
        return None


def _abs_components(path: str) -> tuple[str, ...]:
    rel = path.lstrip("/")
    if rel.endswith("/"):
        rel = rel[:-1]
    return normalize_rel_path(rel or ".", what="absolute path")


def path_under_roots(
    path: str | tuple[str, ...], roots: list[str], *, workspace: str | None = None
) -> str | None:
    """The first root (as written) that contains `path`, compared component by component.

    `work2/x` is not under `work`; root `.` contains everything in the workspace. `path` may be
    a string (normalized here, raising on tricks) or components from `normalize_rel_path`.
    """
    comps = normalize_rel_path(path) if isinstance(path, str) else tuple(path)
    for root in roots:
        rc = normalize_root(root, workspace=workspace)
        if rc is None:
            continue
        if comps[: len(rc)] == rc:
            return root
    return None


def check_file_path(
    path: str, roots: list[str], *, workspace: str | None = None
) -> tuple[tuple[str, ...], str]:
    """Normalize an intent path and require it under a root: `(components, matched root)`."""
    comps = normalize_rel_path(path)
    root = path_under_roots(comps, roots, workspace=workspace)
    if root is None:
        raise ConstraintViolation(
            f"path {path!r} is outside the allowed roots {list(roots)}",
            details={"path": path, "roots": list(roots)},
        )
    return comps, root


# --------------------------------------------------------------------------- URLs and hosts


@dataclass(frozen=True)
class ParsedURL:
    """A fetch target as the broker will use it: never re-parsed from the original string."""

    scheme: str
    host: str  # lowercase IDNA (or canonical IP text, IPv6 without brackets), no trailing dot
    port: int  # explicit or the scheme's default
    target: str  # path + query, ASCII, starts with '/'

    @property
    def ip(self) -> IPAddress | None:
        return parse_ip_literal(self.host)

    @property
    def netloc(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        if self.port == DEFAULT_PORTS[self.scheme]:
            return host
        return f"{host}:{self.port}"

    @property
    def url(self) -> str:
        return f"{self.scheme}://{self.netloc}{self.target}"


_ALT_DOTS = ("\u3002", "\uff0e", "\uff61", "\u2024", "\ufe52")
_HOST_NAME_RE = re.compile(r"^[a-z0-9_](?:[a-z0-9_-]{0,62})(?:\.[a-z0-9_](?:[a-z0-9_-]{0,62}))*$")
_NUMERIC_LABEL_RE = re.compile(r"^(?:0[xX][0-9a-fA-F]*|[0-9]+)$")


def idna_host(host: str) -> str:
    """Lowercase ASCII (punycode) form of a host name, one trailing dot removed."""
    h = host.strip().lower()
    if h.endswith("."):
        h = h[:-1]
    if h.isascii():
        return h
    try:
        return idna.encode(h, uts46=True).decode("ascii").lower()
    except (idna.IDNAError, UnicodeError) as exc:
        raise ConstraintViolation(f"host {host!r} is not a valid internationalized name") from exc


def parse_fetch_url(url: str) -> ParsedURL:
    """Parse and vet a URL for http.fetch; raise ConstraintViolation on any trick."""
    if not isinstance(url, str):
        raise ConstraintViolation("url must be a string")
    if not url:
        raise ConstraintViolation("url is empty")
    if len(url) > MAX_URL_CHARS:
        raise ConstraintViolation(f"url is longer than {MAX_URL_CHARS} characters")
    bad = _control_char(url)
    if bad is not None:
        raise ConstraintViolation(f"url contains a control character ({_describe(bad)})")
    if any(ch.isspace() for ch in url):
        raise ConstraintViolation("url contains whitespace")
    if "\\" in url:
        raise ConstraintViolation("url contains a backslash; parsers disagree on what it means")
    scheme, sep, rest = url.partition("://")
    if not sep or scheme.lower() not in DEFAULT_PORTS:
        raise ConstraintViolation(
            f"url {url!r} is not an absolute http:// or https:// URL",
            details={"url": url},
        )
    authority = re.split(r"[/?#]", rest, maxsplit=1)[0]
    if "@" in authority:
        raise ConstraintViolation("url carries user info ('user@host'); it is refused")
    if "%" in authority:
        raise ConstraintViolation("url host contains percent-encoding or a zone id; refused")
    if any(dot in authority for dot in _ALT_DOTS):
        raise ConstraintViolation("url host uses a look-alike dot (e.g. U+3002); write '.'")
    # httpx (with httpcore, h11 and ssl: ~0.06 s of CPU) is imported by the first URL check,
    # not with this module: most `talon` processes (admin verbs, a serve that fetches nothing)
    # never parse a URL (bench/startup_bench.py)
    import httpx

    try:
        parsed = httpx.URL(url)
        raw_host = parsed.raw_host.decode("ascii")
        port = parsed.port
        target = parsed.raw_path.decode("ascii")
    except (httpx.InvalidURL, UnicodeError, ValueError) as exc:
        raise ConstraintViolation(f"url {url!r} cannot be parsed: {exc}") from exc
    if parsed.userinfo:
        raise ConstraintViolation("url carries user info ('user@host'); it is refused")
    scheme = parsed.scheme.lower()
    if scheme not in DEFAULT_PORTS:
        raise ConstraintViolation(f"scheme {scheme!r} is not http or https")
    host = _vet_host(raw_host)
    if port is None:
        port = DEFAULT_PORTS[scheme]
    if not 1 <= port <= 65535:
        raise ConstraintViolation(f"url port {port} is not a TCP port")
    if not target.startswith("/"):
        target = "/" + target
    return ParsedURL(scheme=scheme, host=host, port=port, target=target)


def _vet_host(raw_host: str) -> str:
    if raw_host == "":
        raise ConstraintViolation("url has no host")
    ip: IPAddress | None
    if ":" in raw_host:  # IPv6 literal (httpx strips the brackets)
        try:
            ip = ipaddress.IPv6Address(raw_host)
        except ValueError as exc:
            raise ConstraintViolation(f"host [{raw_host}] is not a valid IPv6 address") from exc
        return ip.compressed
    host = idna_host(raw_host)
    if not host:
        raise ConstraintViolation("url has no host")
    labels = host.split(".")
    if _NUMERIC_LABEL_RE.match(labels[-1]):
        ip = parse_ip_literal(host)
        if ip is None or str(ip) != host:
            shown = f" (means {ip})" if ip is not None else ""
            raise ConstraintViolation(
                f"host {host!r} is a non-canonical IPv4 form{shown}; write the dotted quad"
            )
        return host
    if len(host) > 253 or not _HOST_NAME_RE.match(host):
        raise ConstraintViolation(f"host {host!r} is not a valid host name")
    return host


def canonical_domain(entry: str) -> tuple[bool, str] | None:
    """(is_wildcard, canonical host) for an allowlist entry, or None if it can never match.

    The one normalization of domain entries: matching and the policy advisor both judge this
    form. Lowercase; `*.` split off; non-ASCII names mapped by IDNA/UTS-46 (so `ｉｏ` is `io`
    and `８.８.８.８` is 8.8.8.8) and then, like ASCII ones, read as an IP literal if they are one.
    """
    if not isinstance(entry, str):
        return None
    d = entry.strip().lower()
    wildcard = d.startswith("*.")
    if wildcard:
        d = d[2:]
    if not d or "*" in d:
        return None
    if d.startswith("[") and d.endswith("]"):
        d = d[1:-1]
    if not d.isascii() and ":" not in d:
        try:
            d = idna_host(d)
        except ConstraintViolation:
            return None
    ip = parse_ip_literal(d)
    if ip is not None:
        return (False, str(ip)) if not wildcard else None
    try:
        d = idna_host(d)
    except ConstraintViolation:
        return None
    if not d or not _HOST_NAME_RE.match(d):
        return None
    return wildcard, d


def host_allowed(host: str, domains: list[str]) -> bool:
    """Exact host, or `*.example.com` = strict subdomains of example.com; IDNA form compared."""
    if not isinstance(host, str) or not host:
        return False
    try:
        h = host[1:-1] if host.startswith("[") and host.endswith("]") else host
        ip = parse_ip_literal(h)
        h = str(ip) if ip is not None else idna_host(h)
    except ConstraintViolation:
        return False
    for entry in domains:
        canon = canonical_domain(entry)
        if canon is None:
            continue
        wildcard, d = canon
        if wildcard:
            if ip is None and h.endswith("." + d) and len(h) > len(d) + 1:
                return True
        elif h == d:
            return True
    return False


def secret_granted(name: str, host: str, constraints: HttpConstraints) -> bool:
    """Whether `constraints` let a header carry secret `name` to `host`: the secret is listed
    in `secrets` and the host in `domains` (the same override's)."""
    return (
        isinstance(name, str)
        and name in constraints.secrets
        and host_allowed(host, list(constraints.domains))
    )


def check_secret_grant(name: str, host: str, constraints: HttpConstraints) -> None:
    """Refuse (ConstraintViolation) a secret that `constraints` do not grant for `host`."""
    if not secret_granted(name, host, constraints):
        raise ConstraintViolation(
            f"secret {name!r} is not granted for {host}: a policy must list it in the "
            "secrets of an http.fetch override whose domains include that host",
            details={"secret_ref": name, "host": host},
        )


def port_allowed(scheme: str, port: int, ports: list[int]) -> bool:
    """The scheme's default port always; any other only if listed."""
    return port == DEFAULT_PORTS.get(scheme) or port in ports


def check_fetch_target(parsed: ParsedURL, constraints: HttpConstraints) -> None:
    """Scheme, host allowlist and port of one hop (first request or redirect) — no DNS."""
    if parsed.scheme not in constraints.schemes:
        raise ConstraintViolation(
            f"scheme {parsed.scheme!r} is not allowed (allowed: {list(constraints.schemes)})",
            details={"url": parsed.url},
        )
    if not host_allowed(parsed.host, constraints.domains):
        raise ConstraintViolation(
            f"host {parsed.host!r} is not in the allowed domains {list(constraints.domains)}",
            details={"url": parsed.url, "host": parsed.host},
        )
    if not port_allowed(parsed.scheme, parsed.port, list(constraints.ports)):
        raise ConstraintViolation(
            f"port {parsed.port} is not allowed for {parsed.scheme} "
            f"(default port, or one of {list(constraints.ports)})",
            details={"url": parsed.url, "port": parsed.port},
        )
    if parsed.ip is not None and is_metadata_address(parsed.ip):
        raise ConstraintViolation(
            f"address {parsed.host} is a cloud metadata endpoint; it is never reachable",
            details={"url": parsed.url, "address": parsed.host},
        )
    if parsed.ip is not None and not constraints.allow_private_addresses:
        reason = address_forbidden(parsed.ip)
        if reason is not None:
            raise ConstraintViolation(
                f"address {parsed.host} is {reason}; set allow_private_addresses to reach it",
                details={"url": parsed.url, "address": parsed.host},
            )


def check_method(method: str, methods: list[str]) -> str:
    """The upper-case method if it is in the allowlist."""
    if not isinstance(method, str) or not re.fullmatch(r"[A-Za-z]{1,16}", method):
        raise ConstraintViolation(f"method {method!r} is not an HTTP method")
    m = method.upper()
    if m not in [x.upper() for x in methods]:
        raise ConstraintViolation(f"method {m} is not allowed (allowed: {list(methods)})")
    return m


# --------------------------------------------------------------------------- IP addresses


def _ipv4_part(text: str) -> int | None:
    if text == "":
        return None
    if text[:2] in ("0x", "0X"):
        digits = text[2:]
        if digits == "":
            return 0
        return int(digits, 16) if re.fullmatch(r"[0-9a-fA-F]+", digits) else None
    if len(text) > 1 and text[0] == "0":
        return int(text, 8) if re.fullmatch(r"[0-7]+", text) else None
    return int(text) if re.fullmatch(r"[0-9]+", text) else None


def parse_ip_literal(host: str) -> IPAddress | None:
    """The address a host string denotes if it is an IP literal in any form, else None.

    Understands what inet_aton/WHATWG accept: `2130706433`, `0x7f000001`, `0x7f.1`,
    `0177.0.0.1`, `127.1`, and IPv6 with or without brackets. An out-of-range numeric form
    returns None (it is no address; `parse_fetch_url` refuses it as a host).
    """
    if not isinstance(host, str) or not host:
        return None
    h = host
    if h.startswith("[") and h.endswith("]"):
        h = h[1:-1]
    if ":" in h:
        try:
            return ipaddress.IPv6Address(h)
        except ValueError:
            return None
    if h.endswith("."):
        h = h[:-1]
    parts = h.split(".")
    if not 1 <= len(parts) <= 4:
        return None
    values = [_ipv4_part(p) for p in parts]
    if any(v is None for v in values):
        return None
    nums = [v for v in values if v is not None]
    *head, last = nums
    if any(v > 255 for v in head):
        return None
    if last >= 256 ** (5 - len(nums)):
        return None
    value = last
    for i, v in enumerate(head):
        value += v << (8 * (3 - i))
    return ipaddress.IPv4Address(value)


_V4_RULES: tuple[tuple[str, str], ...] = (
    ("169.254.169.254/32", "the cloud metadata address"),
    ("100.100.100.200/32", "a cloud metadata address"),
    ("0.0.0.0/8", "the unspecified / 'this network' range"),
    ("10.0.0.0/8", "a private address (10/8)"),
    ("100.64.0.0/10", "a carrier-grade NAT address (100.64/10)"),
    ("127.0.0.0/8", "a loopback address"),
    ("169.254.0.0/16", "a link-local address"),
    ("172.16.0.0/12", "a private address (172.16/12)"),
    ("192.0.0.0/24", "an IETF protocol assignment address"),
    ("192.0.2.0/24", "a documentation address"),
    ("192.88.99.0/24", "a 6to4 relay anycast address"),
    ("192.168.0.0/16", "a private address (192.168/16)"),
    ("198.18.0.0/15", "a benchmarking address"),
    ("198.51.100.0/24", "a documentation address"),
    ("203.0.113.0/24", "a documentation address"),
    ("224.0.0.0/4", "a multicast address"),
    ("255.255.255.255/32", "the broadcast address"),
    ("240.0.0.0/4", "a reserved address"),
)
_V6_RULES: tuple[tuple[str, str], ...] = (
    ("fd00:ec2::254/128", "the cloud metadata address"),
    ("::/128", "the unspecified address"),
    ("::1/128", "a loopback address"),
    ("64:ff9b:1::/48", "a local-use NAT64 address"),
    ("100::/64", "a discard-only address"),
    ("2001::/32", "a Teredo tunnel address"),
    ("2001::/23", "an IETF protocol assignment address"),
    ("2001:db8::/32", "a documentation address"),
    ("fc00::/7", "a unique-local (private) address"),
    ("fe80::/10", "a link-local address"),
    ("fec0::/10", "a site-local address"),
    ("ff00::/8", "a multicast address"),
    ("::/8", "a reserved address"),
)
_V4_NETS = [(ipaddress.IPv4Network(n), r) for n, r in _V4_RULES]
_V6_NETS = [(ipaddress.IPv6Network(n), r) for n, r in _V6_RULES]
_MAPPED = ipaddress.IPv6Network("::ffff:0:0/96")
_COMPAT = ipaddress.IPv6Network("::/96")
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
_6TO4 = ipaddress.IPv6Network("2002::/16")


def _embedded_v4(ip: ipaddress.IPv6Address) -> tuple[str, ipaddress.IPv4Address] | None:
    n = int(ip)
    if ip in _MAPPED:
        return "IPv4-mapped", ipaddress.IPv4Address(n & 0xFFFFFFFF)
    if ip in _NAT64:
        return "NAT64", ipaddress.IPv4Address(n & 0xFFFFFFFF)
    if ip in _6TO4:
        return "6to4", ipaddress.IPv4Address((n >> 80) & 0xFFFFFFFF)
    if ip in _COMPAT and n > 1:
        return "IPv4-compatible", ipaddress.IPv4Address(n & 0xFFFFFFFF)
    return None


def address_forbidden(ip: IPAddress | str) -> str | None:
    """Why an address must not be reached without `allow_private_addresses`, or None.

    Covers loopback, private, link-local, CGNAT, multicast, unspecified, reserved, broadcast,
    documentation, metadata, and IPv6 forms that embed an IPv4 address (mapped, compatible,
    6to4, NAT64) judged by the embedded address; Teredo is refused outright.
    """
    if isinstance(ip, str):
        parsed = parse_ip_literal(ip)
        if parsed is None:
            return "not an IP address"
        ip = parsed
    if isinstance(ip, ipaddress.IPv6Address) and ip.scope_id:
        return "a scoped (link-local) address"
    if isinstance(ip, ipaddress.IPv4Address):
        for net, reason in _V4_NETS:
            if ip in net:
                return reason
        if not ip.is_global:
            return "not a public address"
        return None
    embedded = _embedded_v4(ip)
    if embedded is not None:
        form, v4 = embedded
        inner = address_forbidden(v4)
        if inner is not None:
            return f"an {form} form of {v4}, {inner}"
        if form == "IPv4-compatible":
            return "a deprecated IPv4-compatible address"
        return None
    for net6, reason in _V6_NETS:
        if ip in net6:
            return reason
    if not ip.is_global:
        return "not a public address"
    return None


_METADATA = (
    ipaddress.ip_network("169.254.169.254/32"),
    ipaddress.ip_network("100.100.100.200/32"),
    ipaddress.ip_network("fd00:ec2::254/128"),
)


def is_metadata_address(ip: IPAddress | str) -> bool:
    """A cloud metadata endpoint, directly or embedded in an IPv6 form (mapped, NAT64...)."""
    if isinstance(ip, str):
        parsed = parse_ip_literal(ip)
        if parsed is None:
            return False
        ip = parsed
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.scope_id:
            ip = ipaddress.IPv6Address(str(ip).split("%", 1)[0])
        embedded = _embedded_v4(ip)
        if embedded is not None:
            ip = embedded[1]
    return any(ip in net for net in _METADATA if net.version == ip.version)


# --------------------------------------------------------------------------- images, commands


def image_is_pinned(image: str) -> bool:
    """True for `sha256:<64 hex>` (image id) or `name@sha256:<64 hex>` (repository digest)."""
    return isinstance(image, str) and DIGEST_RE.fullmatch(image) is not None


def image_allowed(image: str, images: list[str]) -> bool:
    """The intent's pinned image equals an allowlist entry exactly (see module docstring)."""
    if not image_is_pinned(image):
        return False
    return any(isinstance(e, str) and image_is_pinned(e) and e == image for e in images)


def clean_command_path(argv0: str) -> bool:
    """A clean absolute program path: no `..`, `.`, `//`, trailing slash, NUL or control chars."""
    if not isinstance(argv0, str) or not argv0.startswith("/") or len(argv0) > MAX_PATH_CHARS:
        return False
    if argv0.endswith("/") or "\\" in argv0 or _control_char(argv0) is not None:
        return False
    comps = argv0[1:].split("/")
    return all(c not in ("", ".", "..") for c in comps)


def command_allowed(argv0: str, commands: list[str]) -> bool:
    """argv[0] is a clean absolute path listed exactly in `commands`."""
    if not clean_command_path(argv0):
        return False
    return any(isinstance(c, str) and clean_command_path(c) and c == argv0 for c in commands)


def argv_allowed(argv: list[str], exact_argv: list[list[str]] | None) -> bool:
    """Any argv when `exact_argv` is None, else only a vector listed there exactly."""
    return exact_argv is None or list(argv) in exact_argv


# --------------------------------------------------------------------------- mcp.call

#: words that make an upstream MCP tool's name sound destructive (matched per word of the name)
DESTRUCTIVE_WORDS: frozenset[str] = frozenset(
    {
        "delete",
        "del",
        "remove",
        "rm",
        "drop",
        "truncate",
        "destroy",
        "erase",
        "purge",
        "wipe",
        "write",
        "overwrite",
        "update",
        "put",
        "post",
        "create",
        "move",
        "rename",
        "exec",
        "execute",
        "run",
        "shell",
        "eval",
        "kill",
        "terminate",
        "shutdown",
        "reset",
        "send",
        "push",
        "merge",
        "deploy",
        "install",
        "transfer",
        "pay",
    }
)


def mcp_tool_destructive(name: str) -> bool:
    """True when an upstream tool's name has a destructive-sounding word (`delete_note`,
    `runQuery`, `fs.write`); `"*"` counts, since it includes every such tool."""
    if name == "*":
        return True
    spaced = re.sub(r"([a-z0-9])([A-Z])", r"\1 \2", name)
    words = re.split(r"[^A-Za-z0-9]+", spaced.lower())
    return any(w in DESTRUCTIVE_WORDS for w in words if w)


def mcp_name_allowed(name: str, allowed: list[str]) -> bool:
    """Exact match against an allowlist of names; `"*"` in the list matches any name."""
    return "*" in allowed or name in allowed
