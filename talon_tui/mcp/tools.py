"""What `talon mcp` lists: Talon's built-in tools as MCP tools, described by what the session's
policy allows, and the upstream servers' tools the policy lets through (`<server>__<name>`).

Pure functions over the policy document the agent op `policy.view` returns: no I/O here.
"""

from __future__ import annotations

import functools
import json
from typing import Any

from pydantic import BaseModel, ValidationError

from talon_tui.engine.policy.models import PARAM_MODELS

#: MCP tool name -> Talon tool
BUILTIN: dict[str, str] = {
    "file_read": "file.read",
    "file_write": "file.write",
    "http_fetch": "http.fetch",
    "docker_run": "docker.run",
    "shell_exec": "shell.exec",
}

MCP_CALL = "mcp.call"
SEPARATOR = "__"

_PURPOSE = {
    "file.read": "Read a file of the session's workspace (path relative to it).",
    "file.write": "Write a file of the session's workspace (atomic; path relative to it).",
    "http.fetch": "Fetch a URL over HTTP(S).",
    "docker.run": "Run a container image pinned by digest, without network unless allowed.",
    "shell.exec": "Run an exact program with arguments (argv; never through a shell).",
}

#: the constraint fields a description names, per tool
_SHOWN = {
    "file.read": ("roots", "max_bytes"),
    "file.write": ("roots", "max_bytes"),
    "http.fetch": ("domains", "methods", "schemes", "ports", "max_bytes"),
    "docker.run": ("images", "network", "mounts", "timeout_seconds"),
    "shell.exec": ("commands", "roots", "timeout_seconds"),
}

#: argument names that look like an attempt to approve or escalate from inside the call;
#: they are dropped before validation (only the operator approves, in the console)
APPROVAL_WORDS = ("approv", "override", "origin", "operator", "authoriz", "confirm", "consent")


def _overrides(policy: dict[str, Any], tool: str) -> tuple[list[dict[str, Any]], bool]:
    """The enabled allowing overrides for `tool`, and whether an enabled denying one exists."""
    allows: list[dict[str, Any]] = []
    denied = False
    for o in policy.get("overrides") or []:
        if not isinstance(o, dict) or o.get("tool") != tool or o.get("enabled", True) is not True:
            continue
        if o.get("allow", True) is True:
            allows.append(o)
        else:
            denied = True
    return allows, denied


def _value(v: Any) -> str:
    if isinstance(v, list):
        return ", ".join(_value(x) for x in v) if v else "none"
    if isinstance(v, dict):
        return json.dumps(v, sort_keys=True, separators=(",", ":"))
    if isinstance(v, bool):
        return "yes" if v else "no"
    return str(v)


def describe_override(tool: str, override: dict[str, Any]) -> str:
    """One line: what one override allows (`roots: work; max_bytes: 1024; approval: never`)."""
    cons = override.get("constraints") or {}
    parts = [f"{k}: {_value(cons[k])}" for k in _SHOWN.get(tool, ()) if k in cons]
    if tool == MCP_CALL:
        parts = [f"{k}: {_value(cons[k])}" for k in ("servers", "tools") if k in cons]
    approval = override.get("approval", "untrusted")
    parts.append(
        "an operator approves each call" if approval == "always" else f"approval: {approval}"
    )
    return "; ".join(parts)


def builtin_tools(policy: dict[str, Any]) -> list[dict[str, Any]]:
    """`[{name, description, input_schema}]` for each built-in tool the policy can allow."""
    out = []
    for name, tool in BUILTIN.items():
        allows, denied = _overrides(policy, tool)
        if denied or not allows:
            continue  # the policy can never allow it: not listed
        lines = [_PURPOSE[tool], "Talon's policy for this session allows:"]
        lines += [f"- {describe_override(tool, o)}" for o in allows]
        lines.append("Anything else is refused; a refusal says why and how to ask for it.")
        out.append(
            {"name": name, "description": "\n".join(lines), "input_schema": input_schema(tool)}
        )
    return out


@functools.cache
def _schema_json(tool: str) -> str:
    schema: dict[str, Any] = PARAM_MODELS[tool].model_json_schema()
    schema.pop("title", None)
    return json.dumps(schema)


def input_schema(tool: str) -> dict[str, Any]:
    """The JSON schema of the tool's param model (made once; a fresh copy each call)."""
    schema: dict[str, Any] = json.loads(_schema_json(tool))
    return schema


def _listed(entries: Any, value: str) -> bool:
    return isinstance(entries, list) and (value in entries or "*" in entries)


def upstream_tools(policy: dict[str, Any], tools: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The upstream tools (from `mcp.tools`) that some `mcp.call` override can allow, named
    `<server>__<name>`; their descriptions are marked as the upstream's own words."""
    allows, denied = _overrides(policy, MCP_CALL)
    if denied or not allows:
        return []
    out = []
    for t in tools:
        server, name = t.get("server"), t.get("name")
        if not isinstance(server, str) or not isinstance(name, str) or SEPARATOR in server:
            continue
        fits = [
            o
            for o in allows
            if _listed((o.get("constraints") or {}).get("servers"), server)
            and _listed((o.get("constraints") or {}).get("tools"), name)
        ]
        if not fits:
            continue
        schema = t.get("input_schema")
        if not isinstance(schema, dict) or schema.get("type") != "object":
            schema = {"type": "object"}
        description = t.get("description") if isinstance(t.get("description"), str) else ""
        out.append(
            {
                "name": f"{server}{SEPARATOR}{name}",
                "description": (
                    f"[MCP server {server!r} through Talon; "
                    f"{describe_override(MCP_CALL, fits[0])}] {description}"
                ),
                "input_schema": schema,
                "server": server,
                "tool": name,
            }
        )
    return out


def strip_approval(arguments: dict[str, Any], declared: set[str]) -> dict[str, Any]:
    """`arguments` without the undeclared keys that look like approvals or escalations."""
    return {
        k: v
        for k, v in arguments.items()
        if k in declared or not any(w in k.lower() for w in APPROVAL_WORDS)
    }


class BadArguments(ValueError):
    """The arguments do not fit the tool's schema (JSON-RPC -32602)."""


def builtin_params(name: str, arguments: dict[str, Any] | None) -> tuple[str, dict[str, Any]]:
    """The Talon tool and validated params of a call of built-in tool `name`; approval-looking
    arguments the model does not declare are dropped first. BadArguments on anything else."""
    tool = BUILTIN[name]
    model: type[BaseModel] = PARAM_MODELS[tool]
    args = strip_approval(arguments or {}, set(model.model_fields))
    try:
        params = model.model_validate(args)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'arguments'}: {e['msg']}" for e in exc.errors()
        )
        raise BadArguments(f"{name}: {problems}") from None
    return tool, params.model_dump(mode="json", exclude_unset=True)


def fix_summary(fix: Any) -> str:
    """One line for a denial's `suggested_fix` override."""
    if not isinstance(fix, dict) or not fix.get("tool"):
        return "none (ask the operator)"
    return (
        f"ask the operator to add an override allowing {fix['tool']} with "
        f"{describe_override(str(fix['tool']), fix)}"
    )
