"""The engine at work: one intent's flow, approvals, the event bus, persistent state,
secrets, signed skills and capability tokens.

Modules import one another and `engine.store`, so this face re-exports nothing: import from
the module (`intents`, `approvals`, `bus`, `limits`, `state`, `secrets`, `skills`, `tokens`).
"""

__all__ = ["approvals", "bus", "intents", "limits", "secrets", "skills", "state", "tokens"]
