"""Advisor rules for http.fetch: domains, methods, schemes, private addresses, ports.
`advisor.lint` calls them.
"""

from __future__ import annotations

from .. import checks
from ..models import HttpConstraints, Override
from ._base import (
    LARGE_BYTES,
    Advice,
    make_advice,
    max_bytes_advice,
    tighten,
)
from ._idn import host_spoofs

READ_ONLY_METHODS = frozenset({"GET", "HEAD"})

# Registrable suffixes an allowlist entry should never stop at (not the full public suffix list:
# these are the ones people actually type).
SHARED_SUFFIXES = frozenset(
    {
        "co.uk",
        "org.uk",
        "ac.uk",
        "gov.uk",
        "com.au",
        "net.au",
        "co.jp",
        "co.nz",
        "com.br",
        "com.cn",
        "co.in",
        "github.io",
        "herokuapp.com",
        "appspot.com",
        "cloudfront.net",
        "amazonaws.com",
        "azurewebsites.net",
        "blob.core.windows.net",
        "pages.dev",
        "workers.dev",
        "vercel.app",
        "netlify.app",
        "web.app",
        "firebaseapp.com",
        "ngrok.io",
        "ngrok-free.app",
    }
)


def _shown(domain: str, canon: tuple[bool, str] | None) -> str:
    """The entry as written, and the form matching uses when that differs."""
    if canon is None:
        return repr(domain)
    matched = ("*." if canon[0] else "") + canon[1]
    return repr(domain) if matched == domain else f"{domain!r} (matched as {matched!r})"


def advise_http(index: int, o: Override, c: HttpConstraints) -> list[Advice]:
    out: list[Advice] = []
    for domain in c.domains:
        canon = checks.canonical_domain(domain)
        others = [d for d in c.domains if d != domain]
        out.extend(_domain(index, o, c, domain, canon, others))
    out.extend(_secrets(index, o, c))
    out.extend(_http_settings(index, o, c))
    return out


def _domain(
    index: int,
    o: Override,
    c: HttpConstraints,
    domain: str,
    canon: tuple[bool, str] | None,
    others: list[str],
) -> list[Advice]:
    """Advice on one domain entry, judged in the form matching uses (`canonical_domain`)."""
    field = "constraints.domains"
    shown = _shown(domain, canon)
    if canon is None:
        if domain.startswith("."):
            return [
                make_advice(
                    "warn",
                    index,
                    field,
                    f"domain {domain!r} is a bare suffix; it matches no host here",
                    "Talon compares exact hosts: a leading-dot suffix allows nothing, and "
                    "whoever 'fixes' it by hand may widen it more than meant.",
                    f'Write the exact host (e.g. "api{domain}"), or "*{domain}" if '
                    "every subdomain is really meant.",
                )
            ]
        return [
            make_advice(
                "warn",
                index,
                field,
                f"domain {domain!r} matches no host",
                "It is not a host name, an IP address or '*.' followed by a host name "
                "(a wildcard on an address, a bare '*', an invalid international name): "
                "the entry allows nothing, and whoever 'fixes' it may widen it more than meant.",
                "Write the exact host the task calls.",
                tighten(o, domains=others) if others else None,
            )
        ]
    wildcard, host = canon
    ip = checks.parse_ip_literal(host)
    if ip is not None:
        reason = checks.address_forbidden(ip)
        if reason and c.allow_private_addresses:
            return [
                make_advice(
                    "danger",
                    index,
                    field,
                    f"domain {shown} is an internal address ({reason}) and private "
                    "addresses are allowed",
                    "Internal addresses reach services that trust the local network: "
                    "routers, databases, admin panels, cloud metadata with credentials.",
                    "Remove the entry, or expose the service under a public name with "
                    "its own authentication.",
                    tighten(o, domains=others) if others else None,
                )
            ]
        return [
            make_advice(
                "warn",
                index,
                field,
                f"domain {shown} is an IP address"
                + (f" ({reason}: refused unless allow_private_addresses)" if reason else ""),
                "An address says nothing about who answers: it can be reassigned to "
                "another owner, and TLS certificates are rarely issued for bare IPs.",
                "Name the service by its host name.",
            )
        ]
    out = _spoofs(index, o, shown, host, others)
    labels = host.split(".")
    shared = host in SHARED_SUFFIXES
    if wildcard and (len(labels) < 2 or shared):
        out.append(
            make_advice(
                "danger",
                index,
                field,
                f"domain {shown} matches every site under a public suffix",
                "Anyone can register a name under it, so the agent could send data to "
                "any server an attacker sets up.",
                'List the exact host the task calls, e.g. "api.example.com".',
                tighten(o, domains=others) if others else None,
            )
        )
    elif wildcard:
        out.append(
            make_advice(
                "warn",
                index,
                field,
                f"domain {shown} is a wildcard",
                "Every subdomain matches, including ones you do not control: user "
                "pages, forgotten staging hosts, or names taken over later.",
                f"List the exact hosts under {host} the task calls.",
            )
        )
    elif len(labels) < 2 or shared:
        out.append(
            make_advice(
                "danger" if shared else "warn",
                index,
                field,
                f"domain {shown} is a bare suffix, not a site",
                "A top-level or shared suffix names no one service; many unrelated "
                "owners live under it.",
                'List the exact host the task calls, e.g. "api.example.com".',
            )
        )
    return out


def _spoofs(index: int, o: Override, shown: str, host: str, others: list[str]) -> list[Advice]:
    """Confusable and mixed-script labels (see advisor._idn)."""
    out: list[Advice] = []
    field = "constraints.domains"
    for spoof in host_spoofs(host):
        if spoof.invalid is not None:
            out.append(
                make_advice(
                    "warn",
                    index,
                    field,
                    f"domain {shown}: label {spoof.ascii_label!r} is not valid punycode",
                    "An 'xn--' label that does not decode names no real host; it is either "
                    "a typo or written to confuse a reader.",
                    "Write the host as the service publishes it.",
                )
            )
        elif spoof.confusable_with is not None:
            mixed = f", mixing {' and '.join(spoof.scripts)}" if spoof.scripts else ""
            out.append(
                make_advice(
                    "danger",
                    index,
                    field,
                    f"domain {shown}: label {spoof.label!r} ({spoof.ascii_label}) is drawn "
                    f"like {spoof.confusable_with!r} but is another name{mixed}",
                    "Look-alike letters from other scripts make a host that reads like a "
                    "familiar name and belongs to someone else: whoever registered it gets "
                    "what the agent sends.",
                    f"Write the name in plain ASCII if {spoof.confusable_with!r} was meant; "
                    "otherwise list it in punycode so that nobody misreads it.",
                    tighten(o, domains=others) if others else None,
                )
            )
        else:
            out.append(
                make_advice(
                    "warn",
                    index,
                    field,
                    f"domain {shown}: label {spoof.label!r} ({spoof.ascii_label}) mixes "
                    f"scripts ({', '.join(spoof.scripts)})",
                    "Real names rarely mix alphabets within one label; mixing is the usual "
                    "way to build a look-alike of a known name.",
                    "Check the name character by character against the service's own "
                    "documentation, and list it in punycode.",
                )
            )
    return out


def _secrets(index: int, o: Override, c: HttpConstraints) -> list[Advice]:
    """Secrets granted to a wildcard domain or over plain http."""
    if not c.secrets:
        return []
    out: list[Advice] = []
    names = ", ".join(c.secrets)
    wild = [d for d in c.domains if (canon := checks.canonical_domain(d)) is not None and canon[0]]
    if wild:
        out.append(
            make_advice(
                "danger",
                index,
                "constraints.secrets",
                f"secrets {names} are granted to wildcard domains {wild}",
                "Every host under a wildcard receives the secret, including user pages, "
                "forgotten staging hosts and names taken over later: any of them can keep "
                "the credential.",
                "Grant secrets in an override that lists only the exact hosts that need "
                "them, and keep the wildcard in another override without secrets.",
            )
        )
    if "http" in c.schemes:
        out.append(
            make_advice(
                "danger",
                index,
                "constraints.secrets",
                f"secrets {names} may be sent over plain http",
                "Without TLS the secret crosses the network in clear text: anyone on the "
                "path can read it, and DNS or routing tricks deliver it to someone else.",
                "Allow only https in an override that grants secrets.",
                tighten(o, schemes=["https"]),
            )
        )
    return out


def _http_settings(index: int, o: Override, c: HttpConstraints) -> list[Advice]:
    out: list[Advice] = []
    writes = [m for m in c.methods if m not in READ_ONLY_METHODS]
    if writes:
        kept = [m for m in c.methods if m in READ_ONLY_METHODS] or ["GET"]
        out.append(
            make_advice(
                "warn",
                index,
                "constraints.methods",
                f"methods {writes} change data on the remote side",
                "Non-GET requests can create, modify or delete things, and a request body "
                "is an easy way to send workspace data out.",
                "Allow only GET (and HEAD) unless the task must write; if it must, keep "
                "approval at 'always' for this override.",
                tighten(o, methods=kept),
            )
        )
    if "http" in c.schemes:
        out.append(
            make_advice(
                "warn",
                index,
                "constraints.schemes",
                "plain http is allowed",
                "Without TLS anyone on the network path can read the request (including "
                "injected secrets) and change the response the agent acts on.",
                "Allow only https.",
                tighten(o, schemes=["https"]),
            )
        )
    if c.allow_private_addresses:
        out.append(
            make_advice(
                "danger",
                index,
                "constraints.allow_private_addresses",
                "private, loopback and metadata addresses are allowed",
                "A listed name that resolves to 127.0.0.1, 10.x, 192.168.x or "
                "169.254.169.254 reaches local services and cloud credentials, and DNS "
                "can be made to answer that way on purpose.",
                "Leave allow_private_addresses false; expose a local service under a "
                "public name with authentication if an agent really needs it.",
                tighten(o, allow_private_addresses=False),
            )
        )
    odd_ports = [p for p in c.ports if p not in (80, 443)]
    if odd_ports:
        out.append(
            make_advice(
                "info",
                index,
                "constraints.ports",
                f"non-default ports {odd_ports} are allowed",
                "Other ports often carry admin interfaces and development servers that are "
                "less protected than the public site.",
                "Keep the list to the ports the task uses.",
            )
        )
    out.extend(max_bytes_advice(index, o, c.max_bytes, "max_bytes", LARGE_BYTES))
    return out
