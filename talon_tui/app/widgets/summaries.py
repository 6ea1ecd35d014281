"""One-line summaries of intents and tool results (what was touched, what came back).

They return plain strings built from agent data: always pass them through `safe_text`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from urllib.parse import urlsplit


def intent_target(params: Any) -> str:
    """The one param that says what an intent touches (path, url, image, argv)."""
    if not isinstance(params, dict):
        return ""
    if "server" in params and "tool" in params:  # mcp.call: the upstream server's tool
        return f"{params['server']}__{params['tool']}"
    for key in ("path", "url", "image", "argv"):
        if key in params:
            value = params[key]
            if isinstance(value, list):
                return " ".join(str(v) for v in value)
            return str(value)
    return ""


def _host(url: Any) -> str:
    try:
        return urlsplit(str(url)).hostname or str(url)
    except ValueError:
        return str(url)


def result_summary(tool: str | None, params: Any, output: Any, status: str | None = None) -> str:
    """What a tool did, in a few words: bytes read, host fetched, image and exit code."""
    params = params if isinstance(params, dict) else {}
    out = output if isinstance(output, dict) else {}
    if status and status != "ok":
        return status
    if tool == "mcp.call":
        error = " (is_error)" if out.get("is_error") else ""
        return (
            f"{out.get('server', '')}__{out.get('tool', '')}: {out.get('bytes', '?')} bytes{error}"
        )
    if tool == "file.read":
        return f"read {out.get('bytes', '?')} bytes of {out.get('path', params.get('path', ''))}"
    if tool == "file.write":
        return f"wrote {out.get('bytes', '?')} bytes to {out.get('path', params.get('path', ''))}"
    if tool == "http.fetch":
        method = params.get("method", "GET")
        return (
            f"{method} {_host(params.get('url', ''))} → {out.get('status_code', '?')}, "
            f"{out.get('bytes', '?')} bytes"
        )
    if tool == "docker.run":
        timed = " (timed out)" if out.get("timed_out") else ""
        return (
            f"{out.get('image', params.get('image', ''))} exit {out.get('exit_code', '?')}{timed}"
        )
    if tool == "shell.exec":
        argv = out.get("argv") or params.get("argv") or ["?"]
        return f"{argv[0]} exit {out.get('exit_code', '?')}"
    return status or ""


def age_seconds(ts: str | None, now: datetime) -> int | None:
    if not ts:
        return None
    try:
        then = datetime.fromisoformat(ts.replace("Z", "+00:00"))
    except ValueError:
        return None
    return max(0, int((now - then).total_seconds()))


def human_age(seconds: int | None) -> str:
    """`42s`, `5m`, `3h`, `2d`."""
    if seconds is None:
        return "—"
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m"
    if seconds < 86400:
        return f"{seconds // 3600}h"
    return f"{seconds // 86400}d"


def short_ts(ts: str | None) -> str:
    """`2026-11-25 17:00:03` from an audit timestamp."""
    if not ts:
        return "—"
    return ts.replace("T", " ")[:19]


def counted(n: int, noun: str) -> str:
    """`1 step`, `4 steps`: a count with its noun, singular when it is one."""
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"
