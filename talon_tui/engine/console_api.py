"""The pure helpers of the engine that the console runs in its own process.

`api` is what the console asks the engine (in process or over the pipe); this module is the
rest of what the console may use, all of it local and stateless: the clock, the policy
advisor's warnings for the editor, how a suggested fix merges into the overrides and what a
change newly allows (for the editor's confirmations), the lexical URL and host name checks
behind the host chips, the audit viewer's line scan, and verifying the log files with the data
dir's public key. The console imports the engine only through `api`, this module, `errors` and
`policy.models` (an import-linter contract in pyproject.toml checks it), so nothing here may
decide or act.
"""

from __future__ import annotations

from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from .audit.linescan import (
    FIRST_BATCH,
    MAX_BATCH,
    AuditFilter,
    complete_end,
    event_decision,
    parse_filter,
    read_line,
    scan_back,
    scan_forward,
)
from .audit.verify import verify_log
from .core import keys
from .core.ids import utcnow
from .core.paths import DataDir
from .policy.advisor import LONG_TTL_SECONDS, Advice, lint, worst_level
from .policy.checks import canonical_domain, parse_fetch_url
from .policy.fix import merge_fix, newly_allowed, plan_fix

__all__ = [
    "FIRST_BATCH",
    "LONG_TTL_SECONDS",
    "MAX_BATCH",
    "Advice",
    "AuditFilter",
    "audit_public_key",
    "canonical_domain",
    "complete_end",
    "event_decision",
    "lint",
    "merge_fix",
    "newly_allowed",
    "parse_fetch_url",
    "parse_filter",
    "plan_fix",
    "read_line",
    "scan_back",
    "scan_forward",
    "utcnow",
    "verify_log",
    "worst_level",
]


def audit_public_key(audit_path: Path) -> Ed25519PublicKey | None:
    """The audit public key of the data dir that holds `audit_path` (`<data>/audit/…`), or
    None when it cannot be read (the console then asks the engine to verify)."""
    keys_dir = DataDir(Path(audit_path).parent.parent).keys_dir
    try:
        return keys.load_public(keys_dir, "audit")
    except (OSError, ValueError):
        return None
