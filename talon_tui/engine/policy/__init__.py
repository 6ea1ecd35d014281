"""The policy language and its decisions (DESIGN section 3).

- `models`: policies, overrides, constraints, intents and decisions (the wire and file forms).
- `evaluate`: the one policy check, deny by default, with a suggested fix; what "approve and
  remember" adds (`remember_override`).
- `fix`: how a suggested fix joins a policy (`plan_fix`) and what a change newly allows.
- `checks`: the one path resolver, URL/host check, image and command checks the broker reuses.
- `advisor`: warnings about risky settings (`lint`), one module per tool.
"""

__all__ = ["advisor", "checks", "evaluate", "fix", "models"]
