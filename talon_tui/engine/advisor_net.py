"""Advisor rules for the tools that reach beyond the host: http.fetch (domains, methods,
schemes, private addresses, ports) and docker.run (images, network, mounts, signatures).
`advisor.lint` calls them.
"""

from __future__ import annotations

import posixpath

from . import checks
from .advisor_base import (
    LARGE_BYTES,
    LARGE_OUTPUT_BYTES,
    Advice,
    _advice,
    _inside,
    _max_bytes,
    _tighten,
)
from .models import DockerConstraints, HttpConstraints, Override

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


def _http(index: int, o: Override, c: HttpConstraints) -> list[Advice]:
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
                    _advice(
                        "danger",
                        index,
                        field,
                        f"domain {domain!r} is an internal address ({reason}) and private "
                        "addresses are allowed",
                        "Internal addresses reach services that trust the local network: "
                        "routers, databases, admin panels, cloud metadata with credentials.",
                        "Remove the entry, or expose the service under a public name with "
                        "its own authentication.",
                        _tighten(o, domains=others) if others else None,
                    )
                )
            else:
                out.append(
                    _advice(
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
                _advice(
                    "danger",
                    index,
                    field,
                    f"domain {domain!r} matches every site under a public suffix",
                    "Anyone can register a name under it, so the agent could send data to "
                    "any server an attacker sets up.",
                    'List the exact host the task calls, e.g. "api.example.com".',
                    _tighten(o, domains=others) if others else None,
                )
            )
        elif domain.startswith("*.") or "*" in domain:
            out.append(
                _advice(
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
                _advice(
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
                _advice(
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
            _advice(
                "warn",
                index,
                "constraints.methods",
                f"methods {writes} change data on the remote side",
                "Non-GET requests can create, modify or delete things, and a request body "
                "is an easy way to send workspace data out.",
                "Allow only GET (and HEAD) unless the task must write; if it must, keep "
                "approval at 'always' for this override.",
                _tighten(o, methods=kept),
            )
        )
    if "http" in c.schemes:
        out.append(
            _advice(
                "warn",
                index,
                "constraints.schemes",
                "plain http is allowed",
                "Without TLS anyone on the network path can read the request (including "
                "injected secrets) and change the response the agent acts on.",
                "Allow only https.",
                _tighten(o, schemes=["https"]),
            )
        )
    if c.allow_private_addresses:
        out.append(
            _advice(
                "danger",
                index,
                "constraints.allow_private_addresses",
                "private, loopback and metadata addresses are allowed",
                "A listed name that resolves to 127.0.0.1, 10.x, 192.168.x or "
                "169.254.169.254 reaches local services and cloud credentials, and DNS "
                "can be made to answer that way on purpose.",
                "Leave allow_private_addresses false; expose a local service under a "
                "public name with authentication if an agent really needs it.",
                _tighten(o, allow_private_addresses=False),
            )
        )
    odd_ports = [p for p in c.ports if p not in (80, 443)]
    if odd_ports:
        out.append(
            _advice(
                "info",
                index,
                "constraints.ports",
                f"non-default ports {odd_ports} are allowed",
                "Other ports often carry admin interfaces and development servers that are "
                "less protected than the public site.",
                "Keep the list to the ports the task uses.",
            )
        )
    out.extend(_max_bytes(index, o, c.max_bytes, "max_bytes", LARGE_BYTES))
    return out


def _docker(index: int, o: Override, c: DockerConstraints, workspace: str | None) -> list[Advice]:
    out: list[Advice] = []
    for image in c.images:
        if not checks.image_is_pinned(image):
            out.append(
                _advice(
                    "warn",
                    index,
                    "constraints.images",
                    f"image {image!r} is named by tag; the broker runs nothing for it",
                    "A tag can be moved to different content at any time, so Talon only "
                    "runs images pinned by digest: this entry allows nothing, and pinning "
                    "it later without checking the digest would trust whatever the tag "
                    "points to then.",
                    f"Pin it: `docker image inspect --format '{{{{.Id}}}}' {image}` gives "
                    "the image id (sha256:…); list that, or name@sha256:<digest>.",
                )
            )
    if c.network:
        out.append(
            _advice(
                "danger" if o.approval == "never" else "warn",
                index,
                "constraints.network",
                "containers get network access",
                "With a network the container can send its input, and anything it can "
                "read, to any server, and reach services on your local network.",
                "Keep network false; pass data in through input and take results from stdout.",
                _tighten(o, network=False),
            )
        )
    for mount in c.mounts:
        where = mount.source
        outside = workspace is not None and not _inside(where, workspace)
        if not mount.read_only:
            out.append(
                _advice(
                    "danger",
                    index,
                    "constraints.mounts",
                    f"mount {mount.source} -> {mount.target} is writable",
                    "A container that can write host files can plant code or change "
                    "configuration that runs later outside the container.",
                    "Mount read-only, or return results on stdout and let file.write "
                    "(confined and audited) store them.",
                    _tighten(
                        o,
                        mounts=[
                            {**m.model_dump(mode="json"), "read_only": True}
                            if m is mount
                            else m.model_dump(mode="json")
                            for m in c.mounts
                        ],
                    ),
                )
            )
        else:
            out.append(
                _advice(
                    "danger" if outside or posixpath.normpath(where) == "/" else "warn",
                    index,
                    "constraints.mounts",
                    f"mount {mount.source} -> {mount.target} (read-only)"
                    + (" is outside the workspace" if outside else ""),
                    "Everything under the mounted directory is readable by the container, "
                    "and with a network it can be sent anywhere.",
                    "Pass the data the skill needs as input instead of mounting a directory.",
                    _tighten(
                        o,
                        mounts=[m.model_dump(mode="json") for m in c.mounts if m is not mount],
                    ),
                )
            )
    if not c.require_signed:
        out.append(
            _advice(
                "warn",
                index,
                "constraints.require_signed",
                "images run without a verified skill signature",
                "Any listed image runs, whoever built it; a signature ties the image to a "
                "publisher key you trust.",
                "Register skills with a signature and set require_signed: true.",
                _tighten(o, require_signed=True),
            )
        )
    if o.approval == "never":
        out.append(
            _advice(
                "warn",
                index,
                "approval",
                "containers start without any operator seeing them",
                "Even a skill requested by another skill's output (untrusted origin) runs "
                "unattended.",
                "Use approval 'untrusted' (the default) or 'always'.",
                _tighten(o, approval="always"),
            )
        )
    out.extend(_max_bytes(index, o, c.max_output_bytes, "max_output_bytes", LARGE_OUTPUT_BYTES))
    return out
