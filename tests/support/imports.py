"""What Talon's own code imports, recorded by an import hook in a fresh interpreter.

Checking `sys.modules` after the fact also sees what third parties pull in (httpx imports
rich when `click` is installed), so the headless checks record instead, for every `import`
statement executed by a module under one of the watched prefixes, the absolute name of the
module it asked for.
"""

from __future__ import annotations

import json
import subprocess
import sys

HOOK = r"""
import builtins, importlib, importlib.util, json, sys
WATCH = tuple(json.loads(sys.argv[1]))
seen = []
real_import = builtins.__import__

def hook(name, globals=None, locals=None, fromlist=(), level=0):
    importer = (globals or {}).get("__name__") or ""
    if importer.startswith(WATCH):
        target = name
        if level:
            package = (globals or {}).get("__package__") or importer.rpartition(".")[0]
            target = importlib.util.resolve_name("." * level + name, package)
        seen.append([importer, target])
        for item in fromlist or ():
            if item != "*":
                seen.append([importer, target + "." + item])
    return real_import(name, globals, locals, fromlist, level)

builtins.__import__ = hook
exec(sys.argv[2])
print("IMPORTS=" + json.dumps(seen))
"""


def imports_of(code: str, *watch: str) -> list[tuple[str, str]]:
    """(importer, imported) for every import made by modules named under `watch` while
    `code` runs in a fresh interpreter."""
    out = subprocess.run(
        [sys.executable, "-c", HOOK, json.dumps(list(watch)), code],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    line = [x for x in out.stdout.splitlines() if x.startswith("IMPORTS=")][-1]
    return [tuple(pair) for pair in json.loads(line.removeprefix("IMPORTS="))]


def forbidden(pairs: list[tuple[str, str]], *prefixes: str) -> list[tuple[str, str]]:
    """The pairs whose imported module is, or is inside, one of `prefixes`."""
    return [(a, b) for a, b in pairs if any(b == p or b.startswith(p + ".") for p in prefixes)]
