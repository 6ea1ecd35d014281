"""Deny-by-default policy evaluation and least-privilege suggestions (DESIGN section 3).

`evaluate(intent, policy)` allows nothing unless an enabled, allowing override for the intent's
tool has constraints the intent satisfies; an enabled `allow: false` override for the tool wins
over everything. Constraint checks are lexical and come from `checks` (the broker repeats them
and adds those that need the file system or DNS). Every decision carries a plain reason; a DENY
carries `suggested_fix`, the narrowest override that would allow exactly that intent, when one
can exist.

Secrets: an http.fetch intent whose headers name `{"secret_ref": name}` is allowed only by an
override that lists `name` in its `secrets` (and the host in its `domains`). A secret that no
allowing override grants for the host is a DENY with code CONSTRAINT_VIOLATION, whose fix
grants exactly that secret for exactly that host (never over plain http).
"""

from __future__ import annotations

import base64
import binascii
import posixpath
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ValidationError

from ..errors import ConstraintViolation
from . import checks
from .models import (
    HTTP_METHODS,
    MCP_SERVER_NAME_RE,
    MCP_TOOL_NAME_RE,
    PARAM_MODELS,
    Decision,
    DockerConstraints,
    DockerRunParams,
    FileConstraints,
    FileReadParams,
    FileWriteParams,
    HttpConstraints,
    HttpFetchParams,
    McpCallParams,
    McpConstraints,
    Override,
    Policy,
    SecretRef,
    ShellConstraints,
    ShellExecParams,
    ToolIntent,
)

# What a suggested file override allows: enough for ordinary documents.
SUGGESTED_MAX_BYTES = 1_048_576
MAX_FILE_BYTES = 1 << 30


@dataclass(frozen=True)
class _Target:
    """An intent after its own (policy-independent) checks: what the overrides are matched on."""

    params: BaseModel
    path: tuple[str, ...] = ()  # file path or shell cwd components
    size: int | None = None  # file.write content bytes
    url: checks.ParsedURL | None = None
    method: str = ""
    secrets: tuple[str, ...] = ()  # http.fetch: names of the secrets its headers inject


class _Refused(Exception):
    """The intent itself is malformed or unsafe: no override could ever allow it."""


def evaluate(intent: ToolIntent, policy: Policy, *, workspace: str | None = None) -> Decision:
    """Decide one intent: ALLOW, REQUIRE_APPROVAL or DENY, with the reason why.

    `workspace` (absolute) only matters for absolute roots, which match nothing without it.
    """
    tool = intent.tool
    try:
        target = _prepare(intent)
    except _Refused as exc:
        return Decision(decision="DENY", reason=str(exc))
    overrides = policy.for_tool(tool)
    for index, override in overrides:
        if not override.allow:
            return Decision(
                decision="DENY",
                reason=f"override #{index} denies {tool} (allow: false); an explicit denial "
                "wins over every allowing override",
                override_index=index,
            )
    allowing = [(i, o) for i, o in overrides if o.allow and o.constraints is not None]
    ungranted = _ungranted_secrets(target, allowing)
    if ungranted:
        assert target.url is not None
        fix = _fix(intent, target)
        return Decision(
            decision="DENY",
            code="CONSTRAINT_VIOLATION",
            reason=f"secret {', '.join(map(repr, ungranted))} is not granted for "
            f"{target.url.host}: no http.fetch override lists it in secrets with that host "
            "in its domains, so it is never sent there" + _why_no_fix(target, fix),
            suggested_fix=fix,
        )
    if not allowing:
        fix = _fix(intent, target)
        return Decision(
            decision="DENY",
            reason=f"no override allows {tool} ({_describe(intent, target)})"
            + _why_no_fix(target, fix),
            suggested_fix=fix,
        )
    misses: list[str] = []
    for index, override in allowing:
        miss = _mismatch(intent, target, override, workspace)
        if miss is None:
            return _allow(intent, target, index, override)
        misses.append(f"{miss} (override #{index})")
    fix = _fix(intent, target)
    return Decision(
        decision="DENY",
        reason=f"no override allows this {tool}: " + "; ".join(misses) + _why_no_fix(target, fix),
        suggested_fix=fix,
    )


def suggest_fix(intent: ToolIntent) -> dict[str, Any] | None:
    """The narrowest override document that allows exactly `intent`, or None if none can.

    None when the intent itself is refused (invalid params, `..` paths, unpinned images,
    non-canonical program paths) or would need a dangerous setting (a private address).
    """
    try:
        target = _prepare(intent)
    except _Refused:
        return None
    return _fix(intent, target)


#: how strict each approval mode is: a remembered override or a merged fix never goes lower
APPROVAL_STRICTNESS: dict[str, int] = {"never": 0, "untrusted": 1, "always": 2}


def stricter_approval(a: str, b: str) -> str:
    return a if APPROVAL_STRICTNESS[a] >= APPROVAL_STRICTNESS[b] else b


@dataclass(frozen=True)
class Remembered:
    """What "approve and remember" adds: `override`, to be inserted at `index` (just before
    the override that matched, so every intent another override decided before stays decided
    by it)."""

    index: int
    override: dict[str, Any]


def remember_override(
    intent: ToolIntent, policy: Policy, *, workspace: str | None = None
) -> Remembered | None:
    """The override that allows `intent` under `policy`, narrowed to exactly the intent.

    It is the intersection of that override and the intent: every limit, flag, mount, ttl and
    the approval mode stay the matched override's; every allowlist shrinks to the intent's own
    value (the file itself, the host/method/scheme/port, the image, the program, its exact
    argv and cwd). None when `policy` does not allow the intent (or the intent is refused).
    """
    try:
        target = _prepare(intent)
    except _Refused:
        return None
    decision = evaluate(intent, policy, workspace=workspace)
    if decision.decision == "DENY" or decision.override_index is None:
        return None
    matched = policy.overrides[decision.override_index]
    if matched.constraints is None:  # pragma: no cover - an allowing override has constraints
        return None
    c = matched.constraints.model_dump(mode="json")
    p = target.params
    if isinstance(p, (FileReadParams, FileWriteParams)):
        c["roots"] = [_rel(target.path)]  # this file, never its directory or `.`
        what = f"{intent.tool} of {_rel(target.path)}"
    elif isinstance(p, HttpFetchParams) and target.url is not None:
        u = target.url
        c["domains"] = [u.host]
        c["methods"] = [target.method]
        c["schemes"] = [u.scheme]
        c["ports"] = [] if checks.port_allowed(u.scheme, u.port, []) else [u.port]
        what = f"{target.method} {u.scheme}://{u.netloc}"
    elif isinstance(p, DockerRunParams):
        c["images"] = [p.image]
        what = f"run {p.image}"
    elif isinstance(p, ShellExecParams):
        c["commands"] = [p.argv[0]]
        c["roots"] = [_rel(target.path)]
        c["exact_argv"] = [list(p.argv)]
        what = f"{posixpath.basename(p.argv[0])} with exactly its argv in {_rel(target.path)}"
    elif isinstance(p, McpCallParams):
        c["servers"] = [p.server]  # never the override's "*"
        c["tools"] = [p.tool]
        what = f"{p.server} tool {p.tool}"
    else:  # pragma: no cover - every tool is handled above
        return None
    doc = {
        "tool": intent.tool,
        "allow": True,
        "approval": matched.approval,
        "enabled": True,
        "note": f"remembered approval: {what} (narrowed from override #{decision.override_index})",
        "constraints": c,
    }
    try:
        override = Override.model_validate(doc).model_dump(mode="json")
    except ValidationError:
        return None  # not expressible as an override: approve once only
    return Remembered(index=decision.override_index, override=override)


# --------------------------------------------------------------------------- intent checks


def _prepare(intent: ToolIntent) -> _Target:
    """Validate params and run every check that does not depend on the policy."""
    tool = intent.tool
    try:
        params = PARAM_MODELS[tool].model_validate(intent.params)
    except ValidationError as exc:
        raise _Refused(f"{tool} params are invalid: {_param_errors(exc)}") from exc
    try:
        if isinstance(params, (FileReadParams, FileWriteParams)):
            comps = checks.normalize_rel_path(params.path)
            if not comps:
                raise _Refused(f"path {params.path!r} is the workspace itself, not a file")
            size = _content_size(params) if isinstance(params, FileWriteParams) else None
            return _Target(params=params, path=comps, size=size)
        if isinstance(params, HttpFetchParams):
            url = checks.parse_fetch_url(params.url)
            method = checks.check_method(params.method, list(HTTP_METHODS))
            names: list[str] = []
            for value in params.headers.values():
                if isinstance(value, SecretRef) and value.secret_ref not in names:
                    names.append(value.secret_ref)
            return _Target(params=params, url=url, method=method, secrets=tuple(names))
        if isinstance(params, DockerRunParams):
            if not checks.image_is_pinned(params.image):
                raise _Refused(
                    f"image {params.image!r} is not pinned: images must be named by digest "
                    "(name@sha256:<digest>) or image id (sha256:<id>), since a tag can be "
                    "moved to other content; pin it and ask again"
                )
            return _Target(params=params)
        if isinstance(params, ShellExecParams):
            argv0 = params.argv[0]
            if not checks.clean_command_path(argv0):
                raise _Refused(
                    f"argv[0] {argv0!r} must be a clean absolute program path "
                    "(no '..', '.', '//' or trailing slash); programs are matched exactly"
                )
            for i, arg in enumerate(params.argv):
                if "\x00" in arg:
                    raise _Refused(f"argv[{i}] contains a NUL byte")
            cwd = checks.normalize_rel_path(params.cwd, what="cwd")
            return _Target(params=params, path=cwd)
        if isinstance(params, McpCallParams):
            if not MCP_SERVER_NAME_RE.match(params.server):
                raise _Refused(f"server {params.server!r} is not a registered server name")
            if not MCP_TOOL_NAME_RE.match(params.tool):
                raise _Refused(f"tool {params.tool!r} is not an MCP tool name")
            return _Target(params=params)
    except ConstraintViolation as exc:
        raise _Refused(f"{tool} refused: {exc.message}") from exc
    raise _Refused(f"unknown tool {tool!r}")  # pragma: no cover - Tool is a closed Literal


def _param_errors(exc: ValidationError) -> str:
    """One clause per problem, each naming `params.<field>`; unknown params said plainly."""
    out = []
    for err in exc.errors():
        loc = ".".join(str(part) for part in ("params", *err["loc"]))
        if err["type"] == "extra_forbidden":
            out.append(f"{loc}: unknown parameter (refused, never passed on)")
        else:
            out.append(f"{loc}: {err['msg'].removeprefix('Value error, ')}")
    return "; ".join(out)


def _content_size(params: FileWriteParams) -> int:
    if params.encoding == "base64":
        try:
            return len(base64.b64decode(params.content, validate=True))
        except (binascii.Error, ValueError) as exc:
            raise _Refused("file.write content is not valid base64") from exc
    try:
        return len(params.content.encode("utf-8"))
    except UnicodeEncodeError as exc:
        raise _Refused("file.write content is not valid UTF-8 text") from exc


def _rel(comps: tuple[str, ...]) -> str:
    return "/".join(comps) or "."


def _describe(intent: ToolIntent, t: _Target) -> str:
    p = t.params
    if isinstance(p, (FileReadParams, FileWriteParams)):
        return f"path {_rel(t.path)}"
    if isinstance(p, HttpFetchParams) and t.url is not None:
        return f"{t.method} {t.url.url}"
    if isinstance(p, DockerRunParams):
        return f"image {p.image}"
    if isinstance(p, ShellExecParams):
        return f"program {p.argv[0]} in {_rel(t.path)}"
    if isinstance(p, McpCallParams):
        return f"tool {p.tool} of server {p.server}"
    return intent.tool  # pragma: no cover


# --------------------------------------------------------------------------- matching


def _mismatch(
    intent: ToolIntent, t: _Target, override: Override, workspace: str | None
) -> str | None:
    """Why `override` does not allow the intent, or None if it does."""
    c = override.constraints
    p = t.params
    try:
        if isinstance(c, ShellConstraints) and isinstance(p, ShellExecParams):
            if not checks.command_allowed(p.argv[0], c.commands):
                return f"program {p.argv[0]} is not in commands {c.commands}"
            if not checks.argv_allowed(p.argv, c.exact_argv):
                return f"argv of {p.argv[0]} is not among the exact_argv the override allows"
            if checks.path_under_roots(t.path, c.roots, workspace=workspace) is None:
                return f"cwd {_rel(t.path)} is outside roots {c.roots}"
            return None
        if isinstance(c, FileConstraints) and isinstance(p, (FileReadParams, FileWriteParams)):
            if checks.path_under_roots(t.path, c.roots, workspace=workspace) is None:
                return f"path {_rel(t.path)} is outside roots {c.roots}"
            if t.size is not None and t.size > c.max_bytes:
                return f"content is {t.size} bytes, over max_bytes {c.max_bytes}"
            return None
        if isinstance(c, HttpConstraints) and isinstance(p, HttpFetchParams):
            assert t.url is not None
            checks.check_fetch_target(t.url, c)
            checks.check_method(t.method, c.methods)
            for name in t.secrets:
                checks.check_secret_grant(name, t.url.host, c)
            return None
        if isinstance(c, DockerConstraints) and isinstance(p, DockerRunParams):
            if not checks.image_allowed(p.image, c.images):
                return f"image {p.image} is not in images {c.images}"
            return None
        if isinstance(c, McpConstraints) and isinstance(p, McpCallParams):
            if not checks.mcp_name_allowed(p.server, c.servers):
                return f"server {p.server} is not in servers {c.servers}"
            if not checks.mcp_name_allowed(p.tool, c.tools):
                return f"tool {p.tool} is not in tools {c.tools}"
            return None
    except ConstraintViolation as exc:
        return exc.message
    return f"constraints do not fit {intent.tool}"


def _allow(intent: ToolIntent, t: _Target, index: int, override: Override) -> Decision:
    c = override.constraints
    assert c is not None
    what = _describe(intent, t)
    warnings: list[str] = []
    if isinstance(c, DockerConstraints) and c.require_signed:
        warnings.append("require_signed: the broker runs this image only as a verified skill")
    kind: Literal["ALLOW", "REQUIRE_APPROVAL"]
    if override.approval == "always":
        kind, why = "REQUIRE_APPROVAL", " once an operator approves (approval: always)"
    elif override.approval == "untrusted" and intent.untrusted:
        kind, why = (
            "REQUIRE_APPROVAL",
            f" once an operator approves (approval: untrusted, origin {intent.origin})",
        )
    else:
        kind, why = "ALLOW", ""
    return Decision(
        decision=kind,
        reason=f"override #{index} allows {intent.tool} {what}{why}",
        override_index=index,
        constraints=c.model_dump(mode="json"),
        ttl_seconds=c.ttl_seconds,
        warnings=warnings,
    )


def _ungranted_secrets(t: _Target, allowing: list[tuple[int, Override]]) -> list[str]:
    """The intent's secrets that no allowing override grants for its host (whatever else
    those overrides allow): such an intent is refused as a constraint violation."""
    if not t.secrets or t.url is None:
        return []
    host = t.url.host
    return [
        name
        for name in t.secrets
        if not any(
            isinstance(o.constraints, HttpConstraints)
            and checks.secret_granted(name, host, o.constraints)
            for _, o in allowing
        )
    ]


# --------------------------------------------------------------------------- suggestions


def _why_no_fix(t: _Target, fix: dict[str, Any] | None) -> str:
    if fix is not None:
        return ""
    if t.url is not None and t.url.ip is not None:
        why = checks.address_forbidden(t.url.ip)
        if why:
            return (
                f"; no fix is suggested: {t.url.host} is {why}, reachable only with "
                "allow_private_addresses, which must be a deliberate decision"
            )
    if t.size is not None and t.size > MAX_FILE_BYTES:
        return f"; no fix is suggested: {t.size} bytes is over the {MAX_FILE_BYTES}-byte limit"
    if t.secrets and t.url is not None and t.url.scheme != "https":
        return "; no fix is suggested: a secret is never granted for plain http"
    return ""


def _fix(intent: ToolIntent, t: _Target) -> dict[str, Any] | None:
    p = t.params
    approval = "untrusted"
    constraints: dict[str, Any]
    if isinstance(p, (FileReadParams, FileWriteParams)):
        # the file's directory; a file at the top of the workspace only itself, never `.`
        root = _rel(t.path[:-1]) if len(t.path) > 1 else _rel(t.path)
        max_bytes = SUGGESTED_MAX_BYTES
        if t.size is not None:
            if t.size > MAX_FILE_BYTES:
                return None
            max_bytes = max(max_bytes, t.size)
        constraints = {"roots": [root], "max_bytes": max_bytes}
        note = f"suggested: {intent.tool} {'in' if len(t.path) > 1 else 'of'} {root}"
    elif isinstance(p, HttpFetchParams) and t.url is not None:
        u = t.url
        if u.ip is not None and checks.address_forbidden(u.ip) is not None:
            return None  # never suggest opening private or metadata addresses
        if t.secrets and u.scheme != "https":
            return None  # never suggest sending a secret in clear text
        constraints = {
            "domains": [u.host],
            "methods": [t.method],
            "schemes": [u.scheme],
            "ports": [] if checks.port_allowed(u.scheme, u.port, []) else [u.port],
            "max_bytes": SUGGESTED_MAX_BYTES,
            "secrets": list(t.secrets),
        }
        note = f"suggested: {t.method} {u.scheme}://{u.netloc}"
    elif isinstance(p, DockerRunParams):
        constraints = {"images": [p.image], "network": False, "mounts": []}
        note = f"suggested: run {p.image} without network or mounts"
    elif isinstance(p, ShellExecParams):
        constraints = {"commands": [p.argv[0]], "roots": [_rel(t.path)]}
        approval = "always"
        note = f"suggested: {posixpath.basename(p.argv[0])} in {_rel(t.path)}, each run approved"
    elif isinstance(p, McpCallParams):
        constraints = {"servers": [p.server], "tools": [p.tool]}
        if checks.mcp_tool_destructive(p.tool):
            approval = "always"
            note = f"suggested: {p.server} tool {p.tool}, each call approved"
        else:
            note = f"suggested: {p.server} tool {p.tool}"
    else:  # pragma: no cover - every tool is handled above
        return None
    doc = {
        "tool": intent.tool,
        "allow": True,
        "approval": approval,
        "enabled": True,
        "note": note,
        "constraints": constraints,
    }
    return Override.model_validate(doc).model_dump(mode="json")
