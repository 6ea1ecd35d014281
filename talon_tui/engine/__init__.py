"""Headless engine: policy, tokens, broker, audit, pipe. Never imports textual or rich.

Public faces: `api` (the interface the console and the admin client share, and its models),
`console_api` (the pure helpers the console runs locally), `errors` (every error code),
`engine.Engine` (the in-process engine). Subpackages, each
stating its own public names: `core` (canonical bytes, ids and the clock, paths, keys,
redaction), `policy` (the policy language, its evaluation and its advisor), `audit` (the
hash-chained log, its index, verification and replay), `runtime` (intents, approvals, state,
secrets, skills, tokens), `pipe` (the agent pipe server and its ops), `broker` (the only code
that acts on the machine).
"""

__all__ = ["api", "console_api", "engine", "errors"]
