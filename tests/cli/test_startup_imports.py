"""What a `talon` process imports stays what it needs (issue 8): each verb and `talon serve`
up to its first answers run for real in a child process that writes its `sys.modules` at exit,
and packages it has no use for must be absent. Every such import costs every process its CPU
(the suite starts ~100 serves and ~220 verbs); bench/startup_bench.py has the figures."""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from support.pipe import REPO

#: `python -c LAUNCH ARGS` runs `talon ARGS` and writes the modules it imported (those actually
#: loaded: None marks a module that was kept out) to $TALON_TEST_MODULES as a JSON list
LAUNCH = textwrap.dedent(
    """
    import atexit, json, os, sys

    def _dump():
        mods = sorted(n for n, m in sys.modules.items() if m is not None)
        with open(os.environ["TALON_TEST_MODULES"], "w") as f:
            json.dump(mods, f)

    atexit.register(_dump)
    from talon_tui.cli import main
    sys.exit(main(sys.argv[1:]))
    """
)
#: imported by no verb here and by no serve that has fetched nothing: the HTTP stack (the
#: first URL check loads it), the Docker SDK (serve lists leftover containers without it;
#: `status` and a docker.run load it), the MCP SDK, the console's UI
NEVER = ("httpx", "httpcore", "h11", "docker", "mcp", "mcp_types", "textual", "rich")


def _env(out: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "TALON_ADMIN_TOKEN"}
    return {**env, "PYTHONPATH": str(REPO), "TALON_TEST_MODULES": str(out)}


def _modules(out: Path) -> set[str]:
    return set(json.loads(out.read_text()))


def _top(mods: set[str]) -> set[str]:
    return {m.split(".")[0] for m in mods}


def _talon(tmp_path: Path, name: str, *args: str, ok: tuple[int, ...] = (0,)) -> set[str]:
    out = tmp_path / f"{name}.json"
    done = subprocess.run(
        [sys.executable, "-c", LAUNCH, *args],
        capture_output=True,
        text=True,
        cwd=REPO,
        env=_env(out),
        timeout=120,
    )
    assert done.returncode in ok, (args, done.stderr)
    return _modules(out)


@pytest.mark.slow
def _python(code: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    """`python -c code` from the repository, with the probe's environment; it must exit 0."""
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        cwd=REPO,
        env=_env(tmp_path / "unused.json"),
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return done


def test_serve_and_verbs_import_only_what_they_use(tmp_path):
    data = tmp_path / "data"
    serve_out = tmp_path / "serve.json"
    proc = subprocess.Popen(
        [sys.executable, "-c", LAUNCH, "serve", "--data-dir", str(data)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=REPO,
        env=_env(serve_out),
    )
    try:
        ready, _, _ = select.select([proc.stdout], [], [], 60)
        line = proc.stdout.readline() if ready and proc.stdout else b""
        assert b"listening on" in line, line
        verbs = {
            "session list": _talon(tmp_path, "sl", "session", "list", "--data-dir", str(data)),
            "approvals list": _talon(
                tmp_path, "al", "approvals", "list", "--json", "--data-dir", str(data)
            ),
            "session create": _talon(
                tmp_path, "sc", "session", "create", "s1", "--data-dir", str(data)
            ),
        }
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    verbs["serve"] = _modules(serve_out)
    verbs["audit verify"] = _talon(tmp_path, "av", "audit", "verify", "--data-dir", str(data))
    verbs["policy lint"] = _talon(
        tmp_path, "pl", "policy", "lint", "sample_policies/deny-then-fix-after.json", ok=(0, 1)
    )
    verbs["mcp install --help"] = _talon(tmp_path, "mh", "mcp", "install", "--help")
    for verb, mods in verbs.items():
        assert _top(mods) & set(NEVER) == set(), verb
    # the verbs that answer without an engine never start an event loop or a thread pool, nor
    # does the parser load `serve`'s limits or the hook runner for another verb
    for verb in ("policy lint", "audit verify"):
        assert {"asyncio", "concurrent.futures"} & verbs[verb] == set(), verb
    for verb, mods in verbs.items():
        if verb != "serve":
            assert "talon_tui.engine.runtime.limits" not in mods, verb
        assert "talon_tui.hooks.runner" not in mods, verb
    assert "talon_tui.cli.commands.mcp_cmd" not in verbs["session list"]


def test_talon_help_loads_no_engine(tmp_path):
    mods = _talon(tmp_path, "help", "--help")
    assert {m for m in mods if m.startswith("talon_tui.engine")} == set()
    assert {"asyncio", "pydantic"} & _top(mods) == set()


def test_models_build_their_validators_on_first_use(tmp_path):
    """Importing the engine's interface builds no model's validator (defer_build); the first
    validation builds it, and it still refuses what it refused."""
    code = textwrap.dedent(
        """
        import json
        from pydantic import BaseModel, ValidationError
        import talon_tui.engine.api, talon_tui.engine.runtime.state
        import talon_tui.engine.policy.advisor, talon_tui.client
        from talon_tui.engine.policy.models import Policy

        def models(cls):
            for sub in cls.__subclasses__():
                yield sub
                yield from models(sub)

        ours = {m for m in models(BaseModel) if m.__module__.startswith("talon_tui.")}
        built = sorted(m.__qualname__ for m in ours if m.__pydantic_complete__)
        try:
            Policy.model_validate({"version": 1, "overrides": [], "surprise": 1})
            refused = False
        except ValidationError:
            refused = True
        print(json.dumps({"n": len(ours), "built": built, "refused": refused,
                          "now": Policy.__pydantic_complete__}))
        """
    )
    done = _python(code, tmp_path)
    got = json.loads(done.stdout)
    assert got["n"] > 40  # every model of the engine and the client is looked at
    assert got["built"] == []
    assert got["refused"] and got["now"]


def test_first_use_from_many_threads_gets_each_models_own_validator(tmp_path):
    """Deferred models first used by many threads at once (the broker's pool): every thread
    gets the subclass's own checks, never its parent's nor a half-built validator."""
    code = textwrap.dedent(
        """
        import json, threading
        from pydantic import ValidationError
        from talon_tui.engine.api import SessionInfo
        from talon_tui.engine.policy.models import FileConstraints

        session = {"id": "sess_1", "label": "l", "workspace": "/w", "created": "t", "runs": 3}
        barrier, out, lock = threading.Barrier(16), [], threading.Lock()

        def first_use(i):
            barrier.wait()
            try:
                if i % 2:
                    got = SessionInfo.model_validate(session)
                    seen = [type(got).__name__, got.runs]
                else:
                    FileConstraints.model_validate({"roots": ["work"], "max_bytes": -1})
                    seen = ["accepted"]
            except ValidationError as exc:
                seen = [e["type"] for e in exc.errors()]
            with lock:
                out.append(seen)

        threads = [threading.Thread(target=first_use, args=(i,)) for i in range(16)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        print(json.dumps(sorted(out)))
        """
    )
    done = _python(code, tmp_path)
    assert json.loads(done.stdout) == [["SessionInfo", 3]] * 8 + [["greater_than_equal"]] * 8
