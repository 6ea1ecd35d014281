"""What an approval would do, shown before the operator decides (nothing is changed).

`preview(intent, constraints, workspace)` is taken at decision time. A file.write preview reads
the file's current content through `PathConfinement` (read-only, symlinks refused, capped at
PREVIEW_READ_CAP) and diffs it against the proposed content; http.fetch names the address it
would connect to now (DNS resolved with a short deadline) and names secret headers without
their values; shell.exec lists argv one per line; docker.run names image, command, mounts,
network and limits from the constraints the current policy would grant.
"""

from __future__ import annotations

import difflib
import time
from typing import Any

from ..errors import ConstraintViolation, TalonError, TooLarge
from ..policy.checks import check_file_path, parse_fetch_url
from ..policy.models import (
    DockerRunParams,
    FileWriteParams,
    HttpFetchParams,
    SecretRef,
    ShellExecParams,
    ToolIntent,
)
from .files import PathConfinement, decode_write_content

#: the most bytes of the current file read for a write preview
PREVIEW_READ_CAP = 1 << 20
#: DNS deadline for the address an http.fetch would connect to
PREVIEW_DNS_SECONDS = 2.0


def _text(data: bytes) -> list[str] | None:
    try:
        return data.decode("utf-8").splitlines()
    except UnicodeDecodeError:
        return None


def _file_write(
    params: FileWriteParams, constraints: dict[str, Any] | None, workspace: str | None
) -> dict[str, Any]:
    try:
        new = decode_write_content(params)
    except ConstraintViolation as exc:
        return {"fields": [("path", params.path)], "lines": [], "note": exc.message, "bytes": 0}
    fields: list[tuple[str, str]] = [("path", params.path), ("new size", f"{len(new)} bytes")]
    roots = (constraints or {}).get("roots") or ["."]
    if workspace is None:
        return {"fields": fields, "lines": [], "note": "the session has no workspace", "bytes": 0}
    try:
        comps, _root = check_file_path(params.path, list(roots), workspace=workspace)
        old: bytes | None = PathConfinement(workspace).read(comps, PREVIEW_READ_CAP, params.path)
    except TooLarge:
        fields.append(("current", f"over {PREVIEW_READ_CAP} bytes: not read, no diff"))
        return {"fields": fields, "lines": _text(new) or [], "note": "", "bytes": len(new)}
    except TalonError as exc:
        if "does not exist" not in exc.message:
            fields.append(("current", f"not read: {exc.message}"))
            return {"fields": fields, "lines": [], "note": exc.message, "bytes": len(new)}
        old = None
    if old is None:
        fields.append(("current", "new file"))
        lines = [f"+{ln}" for ln in (_text(new) or [f"({len(new)} bytes of binary content)"])]
        return {"fields": fields, "lines": lines, "note": "", "bytes": len(new)}
    fields.append(("current size", f"{len(old)} bytes"))
    a, b = _text(old), _text(new)
    if a is None or b is None:
        same = "identical" if old == new else "differs"
        return {
            "fields": fields,
            "lines": [f"binary content {same}"],
            "note": "",
            "bytes": len(new),
        }
    diff = list(
        difflib.unified_diff(a, b, f"a/{params.path}", f"b/{params.path}", lineterm="", n=3)
    )
    return {
        "fields": fields,
        "lines": diff or ["(no change: the content is identical)"],
        "note": "",
        "bytes": len(new),
    }


def _http(params: HttpFetchParams) -> dict[str, Any]:
    # the http tool (and with it httpx, httpcore, h11, ssl: ~0.06 s of CPU) is imported by the
    # first http.fetch preview, not with this module, as Broker does for the fetch itself:
    # a `talon serve` whose agents fetch nothing never loads it (bench/startup_bench.py)
    from .http import resolve_addresses

    fields: list[tuple[str, str]] = [("method", params.method), ("url", params.url)]
    try:
        parsed = parse_fetch_url(params.url)
    except ConstraintViolation as exc:
        fields.append(("connects to", f"nothing: {exc.message}"))
    else:
        try:
            addrs = resolve_addresses(parsed.host, parsed.port, PREVIEW_DNS_SECONDS)
            fields.append(("connects to", ", ".join(f"{a} port {parsed.port}" for a in addrs)))
        except TalonError as exc:
            fields.append(("connects to", f"unresolved now: {exc.message}"))
    lines = []
    for name, value in params.headers.items():
        if isinstance(value, SecretRef):
            lines.append(f"{name}: «secret:{value.secret_ref}» (value not shown)")
        else:
            lines.append(f"{name}: {value}")
    body = params.body or ""
    if body:
        lines.append("")
        lines.extend(body.splitlines())
    return {"fields": fields, "lines": lines, "note": "", "bytes": len(body.encode())}


def _shell(params: ShellExecParams) -> dict[str, Any]:
    lines = [f"argv[{i}] {a}" for i, a in enumerate(params.argv)]
    size = sum(len(a.encode()) for a in params.argv)
    return {"fields": [("cwd", params.cwd)], "lines": lines, "note": "", "bytes": size}


def _docker(params: DockerRunParams, constraints: dict[str, Any] | None) -> dict[str, Any]:
    c = constraints or {}
    fields: list[tuple[str, str]] = [("image", params.image)]
    lines = [f"command: {a}" for a in (params.command or [])] or ["command: (the image's own)"]
    for m in c.get("mounts") or []:
        mode = "ro" if m.get("read_only", True) else "rw"
        lines.append(f"mount: {m.get('source')} -> {m.get('target')} ({mode})")
    lines.append("network: " + ("allowed" if c.get("network") else "none"))
    for key in ("memory_mb", "cpus", "pids_limit", "timeout_seconds", "max_output_bytes"):
        if key in c:
            lines.append(f"limit {key}: {c[key]}")
    for name in sorted(params.env):
        lines.append(f"env {name}: {params.env[name]}")
    return {"fields": fields, "lines": lines, "note": "", "bytes": 0}


def preview(
    intent: ToolIntent, constraints: dict[str, Any] | None, workspace: str | None
) -> dict[str, Any]:
    """`{fields: [(label, value)], lines: [...], note, bytes}` for one waiting intent."""
    started = time.monotonic()
    if intent.tool == "file.write":
        out = _file_write(FileWriteParams.model_validate(intent.params), constraints, workspace)
    elif intent.tool == "http.fetch":
        out = _http(HttpFetchParams.model_validate(intent.params))
    elif intent.tool == "shell.exec":
        out = _shell(ShellExecParams.model_validate(intent.params))
    elif intent.tool == "docker.run":
        out = _docker(DockerRunParams.model_validate(intent.params), constraints)
    else:
        lines = [f"{k}: {v}" for k, v in sorted(intent.params.items())]
        out = {"fields": [], "lines": lines, "note": "", "bytes": 0}
    out["ms"] = int((time.monotonic() - started) * 1000)
    return out
