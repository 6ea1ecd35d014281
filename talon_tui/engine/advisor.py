"""Constraint warnings for policy documents (DESIGN section 3).

`lint(policy, workspace)` reads a validated `Policy` and returns one `Advice` per risky setting:
its level (info, warn, danger), where it is, what it allows, why that is risky in plain words,
a tighter alternative, and — when the tighter form can be computed without guessing — the
override with that one setting tightened. Used by the policy editor, `talon policy lint` and the
engine. Nothing here decides anything: the policy engine and the broker do.
"""

from __future__ import annotations

import os
import posixpath
from typing import Any, Literal

from pydantic import BaseModel

from . import checks
from .models import (
    DockerConstraints,
    FileConstraints,
    HttpConstraints,
    Override,
    Policy,
    ShellConstraints,
)

Level = Literal["info", "warn", "danger"]
LEVELS: tuple[Level, ...] = ("info", "warn", "danger")

# Anything above these is "large": the defaults are 1 MiB.
LARGE_BYTES = 10 * 1024 * 1024
LARGE_OUTPUT_BYTES = 16 * 1024 * 1024
LONG_TTL_SECONDS = 300
TIGHT_TTL_SECONDS = 60
TIGHT_MAX_BYTES = 1_048_576
READ_ONLY_METHODS = frozenset({"GET", "HEAD"})

# Programs that run whatever code their arguments contain: allowing one allows everything.
INTERPRETERS = frozenset(
    {
        "sh",
        "bash",
        "dash",
        "zsh",
        "ksh",
        "fish",
        "csh",
        "tcsh",
        "busybox",
        "env",
        "sudo",
        "doas",
        "su",
        "xargs",
        "find",
        "python",
        "python3",
        "perl",
        "ruby",
        "node",
        "php",
        "lua",
        "awk",
        "gawk",
        "docker",
        "ssh",
        "nohup",
        "timeout",
        "nice",
        "git",
        "make",
    }
)

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


class Advice(BaseModel):
    """One warning about one setting of one override."""

    level: Level
    override_index: int | None
    field: str
    message: str
    why: str
    alternative: str
    tightened: dict[str, Any] | None = None

    @property
    def where(self) -> str:
        if self.override_index is None:
            return self.field
        return f"overrides[{self.override_index}].{self.field}"


def worst_level(advice: list[Advice]) -> Level | None:
    """The highest level among `advice`, or None when there is nothing to say."""
    if not advice:
        return None
    return max((a.level for a in advice), key=LEVELS.index)


def lint(policy: Policy, workspace: str | None = None) -> list[Advice]:
    """Every risky setting in `policy`, in document order, most severe first within an override.

    `workspace` (an absolute directory) lets absolute roots and mount sources be judged as
    inside or outside it; without it, absolute roots are reported as unverifiable.
    """
    out: list[Advice] = []
    deny_at: dict[str, int] = {}
    for index, override in enumerate(policy.overrides):
        if override.enabled and not override.allow:
            deny_at.setdefault(override.tool, index)
    for index, override in enumerate(policy.overrides):
        items: list[Advice] = []
        if override.allow:
            items.extend(_override_advice(index, override, workspace))
            if override.enabled and override.tool in deny_at:
                items.append(
                    _advice(
                        "info",
                        index,
                        "allow",
                        f"never applies: override #{deny_at[override.tool]} denies "
                        f"{override.tool} (allow: false wins over every allowing override)",
                        "An allowing override that can never apply makes the policy look "
                        "more permissive than it is, and starts allowing the moment someone "
                        "removes the denying override.",
                        "Delete this override, or the denying one if you meant to allow.",
                    )
                )
            if not override.enabled:
                for item in items:
                    item.message = f"(disabled) {item.message}"
        items.sort(key=lambda a: -LEVELS.index(a.level))
        out.extend(items)
    return out


# --------------------------------------------------------------------------- helpers


def _advice(
    level: Level,
    index: int | None,
    field: str,
    message: str,
    why: str,
    alternative: str,
    tightened: dict[str, Any] | None = None,
) -> Advice:
    return Advice(
        level=level,
        override_index=index,
        field=field,
        message=message,
        why=why,
        alternative=alternative,
        tightened=tightened,
    )


def _tighten(override: Override, **changes: Any) -> dict[str, Any]:
    """The override's document with top-level keys (or `constraints.<key>`) replaced."""
    doc = override.model_dump(mode="json")
    for key, value in changes.items():
        if key in ("approval", "allow", "enabled"):
            doc[key] = value
        else:
            doc["constraints"][key] = value
    return doc


def _override_advice(index: int, o: Override, workspace: str | None) -> list[Advice]:
    c = o.constraints
    out: list[Advice] = []
    if isinstance(c, ShellConstraints):
        out.extend(_shell(index, o, c, workspace))
    elif isinstance(c, FileConstraints):
        out.extend(_roots(index, o, c.roots, workspace, writes=o.tool == "file.write"))
        out.extend(_max_bytes(index, o, c.max_bytes, "max_bytes", LARGE_BYTES))
    elif isinstance(c, HttpConstraints):
        out.extend(_http(index, o, c))
    elif isinstance(c, DockerConstraints):
        out.extend(_docker(index, o, c, workspace))
    if c is not None and c.ttl_seconds > LONG_TTL_SECONDS:
        out.append(
            _advice(
                "warn",
                index,
                "constraints.ttl_seconds",
                f"capability tokens live {c.ttl_seconds} s (over {LONG_TTL_SECONDS} s)",
                "A token is a ready-made permission: the longer it lives, the longer a "
                "leaked or stolen token can be used, and the later a revocation or policy "
                "change takes effect.",
                f"Keep ttl_seconds at {TIGHT_TTL_SECONDS} s or less; a token is minted per "
                "intent, so short lifetimes cost nothing.",
                _tighten(o, ttl_seconds=TIGHT_TTL_SECONDS),
            )
        )
    return out


def _max_bytes(index: int, o: Override, value: int, key: str, limit: int) -> list[Advice]:
    if value <= limit:
        return []
    return [
        _advice(
            "warn",
            index,
            f"constraints.{key}",
            f"{key} is {value:,} bytes ({value / 1048576:.0f} MiB)",
            "Large transfers let an agent copy out (or write in) a lot of data in one step, "
            "and fill memory or disk before anyone sees it.",
            f"Use the smallest size the task needs; {TIGHT_MAX_BYTES:,} bytes (1 MiB) fits "
            "most documents.",
            _tighten(o, **{key: TIGHT_MAX_BYTES}),
        )
    ]


def _inside(path: str, base: str) -> bool:
    path = posixpath.normpath(path)
    base = posixpath.normpath(base)
    return path == base or path.startswith(base.rstrip("/") + "/")


def _roots(
    index: int, o: Override, roots: list[str], workspace: str | None, *, writes: bool
) -> list[Advice]:
    out: list[Advice] = []
    field = "constraints.roots"
    verb = "change" if writes else "read"
    for root in roots:
        norm = posixpath.normpath(root) if root else "."
        parts = [p for p in norm.split("/") if p]
        narrower = [r for r in roots if r != root]
        if root.startswith("~"):
            out.append(
                _advice(
                    "warn",
                    index,
                    field,
                    f"root {root!r} looks like a home directory",
                    "Talon never expands '~': this root is a directory literally named '~' "
                    "inside the workspace. Whoever wrote it probably meant the home "
                    "directory, which holds SSH keys, tokens and browser profiles.",
                    'Name one project subdirectory of the workspace, e.g. roots: ["work"].',
                )
            )
        elif norm == "/" or (root.startswith("/") and not parts):
            out.append(
                _advice(
                    "danger",
                    index,
                    field,
                    "root '/' asks for the whole machine",
                    f"It asks for every file your user can open: keys, configuration, other "
                    f"projects. Talon honours absolute roots only inside the session "
                    f"workspace, so today it allows nothing more, but a policy that reads "
                    f"as 'everything' gets copied and trusted; the agent must never {verb} "
                    "outside its workspace.",
                    'Name the one workspace subdirectory the task needs, e.g. roots: ["work"].',
                    _tighten(o, roots=narrower) if narrower else None,
                )
            )
        elif root.startswith("/"):
            if workspace is None:
                out.append(
                    _advice(
                        "warn",
                        index,
                        field,
                        f"root {root!r} is absolute; whether it is inside the workspace "
                        "cannot be told without one",
                        "Paths are relative to the session workspace; an absolute root "
                        "either repeats the workspace path or points somewhere else.",
                        "Write roots relative to the workspace (run lint with --workspace "
                        "to check absolute ones).",
                    )
                )
            elif _inside(norm, workspace):
                rel = posixpath.relpath(norm, posixpath.normpath(workspace))
                out.append(
                    _advice(
                        "info",
                        index,
                        field,
                        f"root {root!r} is absolute; it is {rel!r} inside the workspace",
                        "Relative roots keep the policy valid when the workspace moves and "
                        "make its reach obvious to a reader.",
                        f"Write it as {rel!r}.",
                        _tighten(o, roots=[rel if r == root else r for r in roots]),
                    )
                )
            else:
                out.append(
                    _advice(
                        "danger",
                        index,
                        field,
                        f"root {root!r} is outside the workspace {workspace!r}",
                        f"It asks to {verb} files that belong to nothing the session was "
                        "given: other projects, system files, other users' data. Talon "
                        "honours absolute roots only inside the workspace, so it matches "
                        "nothing today; remove it rather than rely on that.",
                        "Copy what the task needs into the workspace and name that "
                        "subdirectory instead.",
                        _tighten(o, roots=narrower) if narrower else None,
                    )
                )
        elif parts and parts[0] == "..":
            out.append(
                _advice(
                    "danger",
                    index,
                    field,
                    f"root {root!r} climbs out of the workspace",
                    f"'..' asks to {verb} the workspace's parent and everything beside it. "
                    "Talon refuses '..' in roots, so it matches nothing; remove it.",
                    "Name a subdirectory inside the workspace.",
                    _tighten(o, roots=narrower) if narrower else None,
                )
            )
        elif norm == ".":
            out.append(
                _advice(
                    "warn",
                    index,
                    field,
                    f"root {root!r} is the whole workspace",
                    f"Everything in the workspace becomes reachable, including files such "
                    f"as .git, .env or credentials the agent does not need to {verb}.",
                    'Name the subdirectory the task uses, e.g. roots: ["notes"].',
                    _tighten(o, roots=narrower) if narrower else None,
                )
            )
        elif workspace is not None and not os.path.isdir(os.path.join(workspace, norm)):
            out.append(
                _advice(
                    "info",
                    index,
                    field,
                    f"root {root!r} does not exist in the workspace",
                    "A root that does not exist allows nothing today, but whoever creates "
                    "it later (including the agent, if it may write nearby) widens the policy.",
                    "Create the directory now or remove the root.",
                )
            )
    return out


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


def _shell(index: int, o: Override, c: ShellConstraints, workspace: str | None) -> list[Advice]:
    out = [
        _advice(
            "danger",
            index,
            "tool",
            f"shell.exec runs host programs: {', '.join(c.commands)}",
            "A program runs with your user's rights outside any container: it can read, "
            "change and send anything you can, and its arguments come from the agent.",
            "Prefer file.read/file.write/http.fetch, or package the task as a docker.run "
            "skill with no network; if a program is unavoidable, list one and keep "
            "approval 'always'.",
        )
    ]
    for command in c.commands:
        name = posixpath.basename(command)
        base = name.rstrip("0123456789.")
        if name in INTERPRETERS or base in INTERPRETERS:
            others = [x for x in c.commands if x != command]
            out.append(
                _advice(
                    "danger",
                    index,
                    "constraints.commands",
                    f"{command} runs whatever code its arguments contain",
                    "Allowing a shell, interpreter or launcher with agent-chosen arguments "
                    "allows every program on the machine.",
                    "List the specific tool the task needs (e.g. /usr/bin/wc), not a shell "
                    "or interpreter.",
                    _tighten(o, commands=others) if others else None,
                )
            )
        if posixpath.normpath(command) != command:
            out.append(
                _advice(
                    "warn",
                    index,
                    "constraints.commands",
                    f"{command!r} is not a normalized path; argv[0] must match it exactly",
                    "Talon compares program paths exactly, so this entry only matches the "
                    "same odd spelling, which hides what actually runs.",
                    f"Write it as {posixpath.normpath(command)!r}.",
                )
            )
    out.extend(_roots(index, o, c.roots, workspace, writes=True))
    if o.approval != "always":
        out.append(
            _advice(
                "danger" if o.approval == "never" else "warn",
                index,
                "approval",
                f"host programs run with approval {o.approval!r}",
                "Without an operator approving each run, the agent chooses arguments for "
                "a host program unattended.",
                "Set approval to 'always' for shell.exec.",
                _tighten(o, approval="always"),
            )
        )
    return out
