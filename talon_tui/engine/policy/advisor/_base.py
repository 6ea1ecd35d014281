"""The shared parts of the policy advisor (`advisor`): the `Advice` model, its levels, the
size and lifetime thresholds, and the helpers every per-tool rule uses to build advice.
"""

from __future__ import annotations

import posixpath
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from ..models import Override

Level = Literal["info", "warn", "danger"]
LEVELS: tuple[Level, ...] = ("info", "warn", "danger")

# Anything above these is "large": the defaults are 1 MiB.
LARGE_BYTES = 10 * 1024 * 1024
LARGE_OUTPUT_BYTES = 16 * 1024 * 1024
LONG_TTL_SECONDS = 300
TIGHT_TTL_SECONDS = 60
TIGHT_MAX_BYTES = 1_048_576


class Advice(BaseModel):
    """One warning about one setting of one override."""

    model_config = ConfigDict(defer_build=True)  # built on first use (as policy.models)

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


def make_advice(
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


def tighten(override: Override, **changes: Any) -> dict[str, Any]:
    """The override's document with top-level keys (or `constraints.<key>`) replaced."""
    doc = override.model_dump(mode="json")
    for key, value in changes.items():
        if key in ("approval", "allow", "enabled"):
            doc[key] = value
        else:
            doc["constraints"][key] = value
    return doc


def max_bytes_advice(index: int, o: Override, value: int, key: str, limit: int) -> list[Advice]:
    if value <= limit:
        return []
    return [
        make_advice(
            "warn",
            index,
            f"constraints.{key}",
            f"{key} is {value:,} bytes ({value / 1048576:.0f} MiB)",
            "Large transfers let an agent copy out (or write in) a lot of data in one step, "
            "and fill memory or disk before anyone sees it.",
            f"Use the smallest size the task needs; {TIGHT_MAX_BYTES:,} bytes (1 MiB) fits "
            "most documents.",
            tighten(o, **{key: TIGHT_MAX_BYTES}),
        )
    ]


def inside(path: str, base: str) -> bool:
    path = posixpath.normpath(path)
    base = posixpath.normpath(base)
    return path == base or path.startswith(base.rstrip("/") + "/")
