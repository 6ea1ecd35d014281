"""The agent pipe (DESIGN section 6): a Unix-socket JSON Lines server and its ops."""

from __future__ import annotations

from .ops import ADMIN_OPS, AGENT_OPS, COMMON_OPS, OpContext, dispatch
from .server import (
    DEFAULT_BURST,
    DEFAULT_IDLE_TIMEOUT,
    DEFAULT_MAX_CONNECTIONS,
    DEFAULT_RATE,
    MAX_LINE_BYTES,
    PipeServer,
    PipeSetupError,
    check_socket_dir,
    encode,
    parse_frame,
)

__all__ = [
    "ADMIN_OPS",
    "AGENT_OPS",
    "COMMON_OPS",
    "DEFAULT_BURST",
    "DEFAULT_IDLE_TIMEOUT",
    "DEFAULT_MAX_CONNECTIONS",
    "DEFAULT_RATE",
    "MAX_LINE_BYTES",
    "OpContext",
    "PipeServer",
    "PipeSetupError",
    "check_socket_dir",
    "dispatch",
    "encode",
    "parse_frame",
]
