"""The broker: the only code that touches files, network, containers or processes.

`Broker.execute(intent, token, session=...)` verifies a capability token for one exact intent,
rebuilds the constraints from the token, re-checks them and runs one `run_*` tool function.
"""

from __future__ import annotations

from .broker import Broker

__all__ = ["Broker"]
