"""Constraint warnings for policy documents (DESIGN section 3): `lint(policy, workspace)`.

One module per tool's rules (`_file`, `_shell`, `_http`, `_docker`), the shared shape of a
warning in `_base`, the dispatch in `_lint`. Nothing here decides anything: the policy engine
and the broker do.
"""

from __future__ import annotations

from ._base import (
    LARGE_BYTES,
    LARGE_OUTPUT_BYTES,
    LEVELS,
    LONG_TTL_SECONDS,
    TIGHT_MAX_BYTES,
    TIGHT_TTL_SECONDS,
    Advice,
    Level,
)
from ._http import READ_ONLY_METHODS, SHARED_SUFFIXES
from ._lint import lint, worst_level
from ._shell import INTERPRETERS

__all__ = [
    "INTERPRETERS",
    "LARGE_BYTES",
    "LARGE_OUTPUT_BYTES",
    "LEVELS",
    "LONG_TTL_SECONDS",
    "READ_ONLY_METHODS",
    "SHARED_SUFFIXES",
    "TIGHT_MAX_BYTES",
    "TIGHT_TTL_SECONDS",
    "Advice",
    "Level",
    "lint",
    "worst_level",
]
