"""The audit log's exceptions, all `TalonError`s so they reach the operator as clear errors."""

from __future__ import annotations

from ..errors import NotFound, TalonError


class AuditError(TalonError):
    """Base class of audit log problems."""


class AuditLogMissing(NotFound):
    """There is no audit log where one was expected."""


class AuditCorrupt(AuditError):
    """The log cannot be opened for appending without dropping more than a torn last line."""


class AuditWriteError(AuditError):
    """Writing or syncing the log failed; the log refuses further appends."""


class AuditClosed(AuditError):
    """The log is not open (call `open()` first, or it was closed)."""


class UnknownEventType(AuditError):
    """An event type outside DESIGN section 5's list."""


class IndexMismatch(AuditError):
    """An event read through the index is not what the index says (or not in the chain)."""
