"""Constraint warnings for policy documents (DESIGN section 3).

`lint(policy, workspace)` reads a validated `Policy` and returns one `Advice` per risky setting:
its level (info, warn, danger), where it is, what it allows, why that is risky in plain words,
a tighter alternative, and — when the tighter form can be computed without guessing — the
override with that one setting tightened. Used by the policy editor, `talon policy lint` and the
engine. Nothing here decides anything: the policy engine and the broker do.
"""

from __future__ import annotations

from ..models import (
    DockerConstraints,
    FileConstraints,
    HttpConstraints,
    McpConstraints,
    Override,
    Policy,
    ShellConstraints,
)
from ._base import (
    LARGE_BYTES,
    LEVELS,
    LONG_TTL_SECONDS,
    TIGHT_TTL_SECONDS,
    Advice,
    Level,
    make_advice,
    max_bytes_advice,
    tighten,
)
from ._docker import advise_docker
from ._file import advise_roots
from ._http import advise_http
from ._mcp import advise_mcp
from ._shell import advise_shell

__all__ = ["lint", "worst_level"]


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
                    make_advice(
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


def _override_advice(index: int, o: Override, workspace: str | None) -> list[Advice]:
    c = o.constraints
    out: list[Advice] = []
    if isinstance(c, ShellConstraints):
        out.extend(advise_shell(index, o, c, workspace))
    elif isinstance(c, FileConstraints):
        out.extend(advise_roots(index, o, c.roots, workspace, writes=o.tool == "file.write"))
        out.extend(max_bytes_advice(index, o, c.max_bytes, "max_bytes", LARGE_BYTES))
    elif isinstance(c, HttpConstraints):
        out.extend(advise_http(index, o, c))
    elif isinstance(c, DockerConstraints):
        out.extend(advise_docker(index, o, c, workspace))
    elif isinstance(c, McpConstraints):
        out.extend(advise_mcp(index, o, c))
    if c is not None and c.ttl_seconds > LONG_TTL_SECONDS:
        out.append(
            make_advice(
                "warn",
                index,
                "constraints.ttl_seconds",
                f"capability tokens live {c.ttl_seconds} s (over {LONG_TTL_SECONDS} s)",
                "A token is a ready-made permission: the longer it lives, the longer a "
                "leaked or stolen token can be used, and the later a revocation or policy "
                "change takes effect.",
                f"Keep ttl_seconds at {TIGHT_TTL_SECONDS} s or less; a token is minted per "
                "intent, so short lifetimes cost nothing.",
                tighten(o, ttl_seconds=TIGHT_TTL_SECONDS),
            )
        )
    return out
