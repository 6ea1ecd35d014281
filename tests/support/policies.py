"""Policies the tests give their sessions: read-only, read behind an approval, and read plus
write behind an approval."""

from __future__ import annotations

READ_POLICY = {
    "version": 1,
    "overrides": [
        {
            "tool": "file.read",
            "allow": True,
            "approval": "never",
            "constraints": {"roots": ["work"], "max_bytes": 1 << 20},
        }
    ],
}
APPROVAL_POLICY = {
    "version": 1,
    "overrides": [
        {
            "tool": "file.read",
            "allow": True,
            "approval": "always",
            "constraints": {"roots": ["work"]},
        }
    ],
}
READ_WRITE_POLICY = {
    "version": 1,
    "overrides": [
        {
            "tool": "file.read",
            "allow": True,
            "approval": "never",
            "constraints": {"roots": ["work"], "max_bytes": 1 << 20},
        },
        {
            "tool": "file.write",
            "allow": True,
            "approval": "always",
            "constraints": {"roots": ["work"]},
        },
    ],
}

__all__ = ["APPROVAL_POLICY", "READ_POLICY", "READ_WRITE_POLICY"]
