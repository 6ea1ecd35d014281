"""How a denial's suggested fix joins a policy, and what a policy change newly allows.

A fix grants exactly its own narrow class of intents. `plan_fix` adds it as its own override
at the end of the policy, or merges it into the last enabled allowing override of its tool
only when the two differ in exactly one allowlist that is a plain disjunction (roots, domains,
methods, schemes, ports, images, commands) and are equal in everything else (approval,
every limit and flag, ttl, mounts, exact_argv): only then is the merged override exactly the
union of the two. Being last, it never takes over an intent another override decided.
The fix never asks less than the strictest approval of the tool's other allowing overrides.

`newly_allowed(old, new)` lists every combination the new overrides allow that the old did
not, in words (a method, scheme, host and port; a file root; an image with its network and
mounts; a program with its arguments and directory), for the operator to confirm.
"""

from __future__ import annotations

import copy
import shlex
from dataclasses import dataclass
from math import prod
from typing import Any

from pydantic import ValidationError

from .checks import DEFAULT_PORTS
from .evaluate import stricter_approval
from .models import Override

#: per tool, the allowlists an intent must match one entry of (and nothing else depends on)
DISJUNCTIVE: dict[str, tuple[str, ...]] = {
    "file.read": ("roots",),
    "file.write": ("roots",),
    "http.fetch": ("domains", "methods", "schemes", "ports"),
    "docker.run": ("images",),
    "shell.exec": ("commands", "roots"),
}
#: more combinations than this in one override are summarized, not listed one by one
MAX_COMBINATIONS = 2000


@dataclass(frozen=True)
class FixPlan:
    """`overrides` is the policy's override list with the fix applied at `index`."""

    overrides: list[dict[str, Any]]
    index: int
    merged: bool
    override: dict[str, Any]
    newly_allowed: list[str]
    denied_by: int | None  # an enabled `allow: false` override of the tool: the fix does nothing


def _allowing(o: dict[str, Any]) -> bool:
    return bool(o.get("allow", True)) and bool(o.get("enabled", True))


def merge_fix(existing: dict[str, Any], fix: dict[str, Any]) -> dict[str, Any] | None:
    """`existing` with the one allowlist in which it differs from `fix` united, when that
    allows exactly the union of both overrides' intents; else None."""
    if existing.get("tool") != fix.get("tool") or not (_allowing(existing) and _allowing(fix)):
        return None
    try:  # compare the documents with every default filled in
        e_doc = Override.model_validate(existing).model_dump(mode="json")
        f_doc = Override.model_validate(fix).model_dump(mode="json")
    except ValidationError:
        return None
    if e_doc["approval"] != f_doc["approval"]:
        return None
    ec, fc = e_doc["constraints"] or {}, f_doc["constraints"] or {}
    lists = DISJUNCTIVE.get(str(fix.get("tool")), ())
    differing = [k for k in sorted(set(ec) | set(fc)) if ec.get(k) != fc.get(k)]
    if any(k not in lists for k in differing) or len(differing) > 1:
        return None
    merged = copy.deepcopy(e_doc)
    for key in differing:
        current = list(ec.get(key) or [])
        merged["constraints"][key] = current + [v for v in fc[key] if v not in current]
    return merged


def plan_fix(overrides: list[dict[str, Any]], fix: dict[str, Any]) -> FixPlan:
    """Where `fix` goes in `overrides` (see the module docstring), and what that allows."""
    tool = fix.get("tool")
    fix = copy.deepcopy(fix)
    same = [(i, o) for i, o in enumerate(overrides) if o.get("tool") == tool]
    for _i, o in same:
        if _allowing(o):
            fix["approval"] = stricter_approval(fix.get("approval", "untrusted"), o["approval"])
    denied_by = next(
        (i for i, o in same if not o.get("allow", True) and o.get("enabled", True)), None
    )
    after = copy.deepcopy(overrides)
    allowing = [i for i, o in same if _allowing(o)]
    merged = merge_fix(overrides[allowing[-1]], fix) if allowing else None
    if merged is not None:
        index = allowing[-1]
        after[index] = merged
    else:
        index = len(after)
        after.append(fix)
    return FixPlan(
        overrides=after,
        index=index,
        merged=merged is not None,
        override=after[index],
        newly_allowed=newly_allowed(overrides, after),
        denied_by=denied_by,
    )


# --------------------------------------------------------------------------- combinations


def _ports(scheme: str, ports: list[Any]) -> list[Any]:
    default = DEFAULT_PORTS.get(scheme)
    listed = [p for p in ports if p != default]
    return ([default] if default is not None else []) + sorted(set(listed), key=str)


def combinations(override: dict[str, Any]) -> set[str]:
    """Every combination an enabled allowing override allows, one phrase each (a summary when
    there are more than MAX_COMBINATIONS)."""
    return {text for text, _size in _combinations(override).values()}


def _combinations(override: dict[str, Any]) -> dict[str, tuple[str, int]]:
    """key → (phrase, size limit): a combination is new if its key is, or if its size limit
    (file.write / file.read max_bytes, the one limit the policy decides on) grew."""
    if not _allowing(override):
        return {}
    tool = str(override.get("tool"))
    c = override.get("constraints") or {}
    if tool in ("file.read", "file.write"):
        size = int(c.get("max_bytes", 1_048_576))
        return {
            f"{tool} {r}": (f"{tool} of {r} (and below it), up to {size} bytes", size)
            for r in c.get("roots") or []
        }
    return {text: (text, 0) for text in _phrases(tool, c)}


def _phrases(tool: str, c: dict[str, Any]) -> set[str]:
    if tool == "http.fetch":
        domains, methods = c.get("domains") or [], c.get("methods") or ["GET"]
        schemes, ports = c.get("schemes") or ["https"], list(c.get("ports") or [])
        private = " (private addresses too)" if c.get("allow_private_addresses") else ""
        count = len(domains) * len(methods) * sum(len(_ports(s, ports)) for s in schemes)
        if count > MAX_COMBINATIONS:
            return {
                f"http.fetch: {count} combinations of methods {methods} × schemes {schemes} × "
                f"domains {domains} × ports {ports} (and the default ports){private}"
            }
        return {
            f"{m} {s}://{d}:{p}{private}"
            for s in schemes
            for p in _ports(s, ports)
            for d in domains
            for m in methods
        }
    if tool == "docker.run":
        extra = " with network" if c.get("network") else " without network"
        for m in c.get("mounts") or []:
            if isinstance(m, dict):
                mode = "read-only" if m.get("read_only", True) else "read-write"
                extra += f", mount {m.get('source')} at {m.get('target')} {mode}"
            else:
                extra += f", mount {m}"
        return {f"docker.run {image}{extra}" for image in c.get("images") or []}
    if tool == "shell.exec":
        commands, roots = c.get("commands") or [], c.get("roots") or ["."]
        exact = c.get("exact_argv")
        if exact is None:
            if len(commands) * len(roots) > MAX_COMBINATIONS:
                return {f"shell.exec: any of {commands} with any arguments in any of {roots}"}
            return {f"run {p} with any arguments in {r}" for p in commands for r in roots}
        if prod((len(exact), len(roots))) > MAX_COMBINATIONS:
            return {f"shell.exec: {len(exact)} exact argument lists in any of {roots}"}
        return {
            f"run exactly {shlex.join(v)} in {r}" for v in exact if v[0] in commands for r in roots
        }
    return set()  # pragma: no cover - Tool is a closed Literal


def newly_allowed(old: list[dict[str, Any]], new: list[dict[str, Any]]) -> list[str]:
    """Each combination `new` allows and `old` did not, sorted (per tool; a tool with an
    enabled `allow: false` override allows nothing)."""

    def allowed(overrides: list[dict[str, Any]]) -> dict[str, tuple[str, int]]:
        denied = {
            o.get("tool") for o in overrides if not o.get("allow", True) and o.get("enabled", True)
        }
        out: dict[str, tuple[str, int]] = {}
        for o in overrides:
            if o.get("tool") in denied:
                continue
            for key, (text, size) in _combinations(o).items():
                if key not in out or out[key][1] < size:
                    out[key] = (text, size)
        return out

    before, after = allowed(old), allowed(new)
    return sorted(
        text for key, (text, size) in after.items() if key not in before or before[key][1] < size
    )
