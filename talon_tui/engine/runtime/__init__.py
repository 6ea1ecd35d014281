"""The engine at work: one intent's flow, approvals, the event bus, persistent state,
secrets, signed skills, capability tokens, and the store that holds them open on a data dir.

The flows (`intents`, `mcp`'s McpFlow) work on the store, and the store is built from the
parts (`state`, `secrets`, `skills`, `tokens`, `mcp`'s registry): modules import one another,
so this face re-exports nothing: import from the module.
"""

__all__ = ["approvals", "bus", "intents", "limits", "secrets", "skills", "state", "store", "tokens"]
