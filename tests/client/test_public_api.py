"""The agent library's public names are pinned: `from talon_tui.client import ...` is what
agents write, so a name may only be added here on purpose, never lost by a refactor."""

from __future__ import annotations

from support.imports import forbidden, imports_of

import talon_tui.client

PUBLIC = {
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
    "FrameTooLargeError",  # an oversize line is a clear error (issue 15.2)
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
}


def test_exported_names_are_pinned():
    assert set(talon_tui.client.__all__) == PUBLIC
    for name in PUBLIC:
        assert getattr(talon_tui.client, name) is not None


def test_every_error_code_has_its_exception_class():
    from talon_tui.engine.errors import ErrorCode

    assert set(talon_tui.client.ERRORS) == {code.value for code in ErrorCode}
    for cls in talon_tui.client.ERRORS.values():
        assert issubclass(cls, talon_tui.client.ClientError)


def test_the_client_imports_only_the_wire_contract():
    pairs = imports_of("import talon_tui.client", "talon_tui.client")
    engine = {b for _, b in pairs if b.startswith("talon_tui.engine")}
    allowed = (
        "talon_tui.engine.api",
        "talon_tui.engine.errors",
        "talon_tui.engine.policy.models",
        "talon_tui.engine.core.paths",
        "talon_tui.engine.core.frames",  # the line limit both sides of the pipe read
        "talon_tui.engine.core.peer",
    )
    assert engine and all(b.startswith(allowed) for b in engine), sorted(engine)
    assert forbidden(pairs, "textual", "rich", "talon_tui.app", "talon_tui.cli") == []
