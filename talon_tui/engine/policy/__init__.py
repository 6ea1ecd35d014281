"""The policy language and its decisions (DESIGN section 3).

- `models`: policies, overrides, constraints, intents and decisions (the wire and file forms).
- `evaluate`: the one policy check, deny by default, with a suggested fix.
- `checks`: the one path resolver, URL/host check, image and command checks the broker reuses.
- `advisor`: warnings about risky settings (`lint`), one module per tool.
"""

__all__ = ["advisor", "checks", "evaluate", "models"]
