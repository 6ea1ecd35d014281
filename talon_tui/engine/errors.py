"""Error codes of the pipe protocol (DESIGN section 6) and the exceptions that carry them."""

from __future__ import annotations

from enum import StrEnum
from typing import Any


class ErrorCode(StrEnum):
    BAD_REQUEST = "BAD_REQUEST"
    UNAUTHENTICATED = "UNAUTHENTICATED"
    FORBIDDEN = "FORBIDDEN"
    NOT_FOUND = "NOT_FOUND"
    POLICY_DENIED = "POLICY_DENIED"
    CONSTRAINT_VIOLATION = "CONSTRAINT_VIOLATION"
    APPROVAL_DENIED = "APPROVAL_DENIED"
    APPROVAL_TIMEOUT = "APPROVAL_TIMEOUT"
    TOKEN_INVALID = "TOKEN_INVALID"
    TOOL_ERROR = "TOOL_ERROR"
    TOO_LARGE = "TOO_LARGE"
    RATE_LIMITED = "RATE_LIMITED"
    INTERNAL = "INTERNAL"


class TalonError(Exception):
    """An error with a protocol code, a message an operator understands, and details."""

    code: ErrorCode = ErrorCode.INTERNAL

    def __init__(
        self, message: str, *, code: ErrorCode | None = None, details: dict[str, Any] | None = None
    ) -> None:
        super().__init__(message)
        if code is not None:
            self.code = code
        self.message = message
        self.details: dict[str, Any] = dict(details or {})

    def to_wire(self) -> dict[str, Any]:
        return {"code": str(self.code), "message": self.message, "details": self.details}


class BadRequest(TalonError):
    code = ErrorCode.BAD_REQUEST


class EngineUnreachable(TalonError):
    """The engine is gone for this client: its connection was lost (closed, reset, a frame it
    cannot read) or the engine does not answer. The console says so and reconnects."""


class NotFound(TalonError):
    code = ErrorCode.NOT_FOUND


class Forbidden(TalonError):
    code = ErrorCode.FORBIDDEN


class PolicyDenied(TalonError):
    code = ErrorCode.POLICY_DENIED


class ConstraintViolation(TalonError):
    """The broker found an intent outside its token's constraints; nothing was executed."""

    code = ErrorCode.CONSTRAINT_VIOLATION


class TokenInvalid(TalonError):
    code = ErrorCode.TOKEN_INVALID


class ToolError(TalonError):
    """The tool ran (or tried to) and failed for a reason outside policy."""

    code = ErrorCode.TOOL_ERROR


class TooLarge(TalonError):
    code = ErrorCode.TOO_LARGE


class PolicyInvalid(BadRequest):
    """A policy document failed validation; the message names the field."""
