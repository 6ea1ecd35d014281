"""Building blocks every part of the engine shares; they import nothing else of Talon.

- `canon`: every byte that is hashed or signed (one function per purpose).
- `clock`: the injectable Clock; `ids`: identifiers and timestamps drawn from it.
- `frames`: the pipe's line limit (server and clients) and what admin frames carry of agent
  data (previews with `cut` markers, pages, replies that always fit).
- `paths`: the data directory layout and private file writes.
- `peer`: who listens on the engine's socket, checked before a credential is sent.
- `keys`: Ed25519 key pairs and key ids.
- `redact`: redaction of secret values from anything that leaves the broker.
"""

__all__ = ["canon", "clock", "frames", "ids", "keys", "paths", "peer", "redact"]
