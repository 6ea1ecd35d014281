"""The public agent library: clients of the agent pipe, depending only on the wire contract.

from talon_tui.client import AgentClient, AdminClient
"""

from __future__ import annotations

from .admin import AdminClient
from .agent import (
    ERRORS,
    AgentClient,
    ApprovalDeniedError,
    ApprovalTimeoutError,
    AsyncAgentClient,
    BadRequestError,
    ClientError,
    ConnectionClosedError,
    ConstraintViolationError,
    ForbiddenError,
    FrameTooLargeError,
    IntentResult,
    InternalError,
    NotFoundError,
    PolicyDeniedError,
    RateLimitedError,
    TokenInvalidError,
    TooLargeError,
    ToolFailedError,
    UnauthenticatedError,
    UntrustedEngineError,
    check_engine_peer,
    error_from_reply,
    read_admin_token,
    trusted_engine_uids,
)

__all__ = [
    "ERRORS",
    "AdminClient",
    "AgentClient",
    "ApprovalDeniedError",
    "ApprovalTimeoutError",
    "AsyncAgentClient",
    "BadRequestError",
    "ClientError",
    "ConnectionClosedError",
    "ConstraintViolationError",
    "ForbiddenError",
    "FrameTooLargeError",
    "IntentResult",
    "InternalError",
    "NotFoundError",
    "PolicyDeniedError",
    "RateLimitedError",
    "TokenInvalidError",
    "TooLargeError",
    "ToolFailedError",
    "UnauthenticatedError",
    "UntrustedEngineError",
    "check_engine_peer",
    "error_from_reply",
    "read_admin_token",
    "trusted_engine_uids",
]
