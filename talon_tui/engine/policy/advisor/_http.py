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


def advise_http(index: int, o: Override, c: HttpConstraints) -> list[Advice]:
    out: list[Advice] = []
    field = "constraints.domains"
    for domain in c.domains:
        host = domain[2:] if domain.startswith("*.") else domain
        others = [d for d in c.domains if d != domain]
        ip = checks.parse_ip_literal(host.strip("[]"))
        if ip is not None:
            reason = checks.address_forbidden(ip)
            if reason and c.allow_private_addresses:
                out.append(
                    make_advice(
                        "danger",
                        index,
                        field,
                        f"domain {domain!r} is an internal address ({reason}) and private "
                        "addresses are allowed",
                        "Internal addresses reach services that trust the local network: "
                        "routers, databases, admin panels, cloud metadata with credentials.",
                        "Remove the entry, or expose the service under a public name with "
                        "its own authentication.",
                        tighten(o, domains=others) if others else None,
                    )
                )
            else:
                out.append(
                    make_advice(
                        "warn",
                        index,
                        field,
                        f"domain {domain!r} is an IP address"
                        + (
                            f" ({reason}: refused unless allow_private_addresses)" if reason else ""
                        ),
                        "An address says nothing about who answers: it can be reassigned to "
                        "another owner, and TLS certificates are rarely issued for bare IPs.",
                        "Name the service by its host name.",
                    )
                )
            continue
        labels = [p for p in host.split(".") if p]
        if domain.startswith("*.") and (len(labels) < 2 or host in SHARED_SUFFIXES):
            out.append(
                make_advice(
                    "danger",
                    index,
                    field,
                    f"domain {domain!r} matches every site under a public suffix",
                    "Anyone can register a name under it, so the agent could send data to "
                    "any server an attacker sets up.",
                    'List the exact host the task calls, e.g. "api.example.com".',
                    tighten(o, domains=others) if others else None,
                )
            )
        elif domain.startswith("*.") or "*" in domain:
            out.append(
                make_advice(
                    "warn",
                    index,
                    field,
                    f"domain {domain!r} is a wildcard",
                    "Every subdomain matches, including ones you do not control: user "
                    "pages, forgotten staging hosts, or names taken over later.",
                    f"List the exact hosts under {host} the task calls.",
                )
            )
        elif domain.startswith("."):
            out.append(
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
            )
        elif len(labels) < 2 or host in SHARED_SUFFIXES:
            out.append(
                make_advice(
                    "danger" if host in SHARED_SUFFIXES else "warn",
                    index,
                    field,
                    f"domain {domain!r} is a bare suffix, not a site",
                    "A top-level or shared suffix names no one service; many unrelated "
                    "owners live under it.",
                    'List the exact host the task calls, e.g. "api.example.com".',
                )
            )
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
