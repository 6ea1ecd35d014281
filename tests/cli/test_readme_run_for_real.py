"""The README's "Run it for real" section, run as written: its shell blocks and its Python
snippet, from a temporary directory outside the repo, with `talon` on PATH as the README says to
install it, against a real `talon serve` on the default data dir of a fresh HOME."""

from __future__ import annotations

import os
import re
import select
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from support.pipe import REPO

README = REPO / "README.md"


def section(title: str) -> str:
    text = README.read_text(encoding="utf-8")
    start = text.index(f"## {title}\n")
    end = text.find("\n## ", start + 1)
    return text[start : end if end != -1 else len(text)]


def blocks(text: str) -> list[tuple[str, str]]:
    """(language, body) of every fenced code block, in order."""
    return re.findall(r"```(\w*)\n(.*?)```", text, flags=re.S)


def shell_block(text: str, heading: str) -> str:
    found = [body for lang, body in blocks(text) if lang == "sh" and body.startswith(heading)]
    assert len(found) == 1, f"README has no single block starting {heading!r}"
    return found[0]


@pytest.fixture
def operator():
    """A fresh HOME with nothing in it, a working dir outside the repo, and `talon` on PATH
    (this tree's code: the shim stands in for the venv the README tells you to activate). A
    short dir: the socket path under HOME must fit a Unix socket address (108 bytes)."""
    tmp_path = Path(tempfile.mkdtemp(prefix="tln-readme-", dir="/tmp"))
    home, cwd, bin_dir = tmp_path / "h", tmp_path / "w", tmp_path / "bin"
    for d in (home, cwd, bin_dir):
        d.mkdir()
    shim = bin_dir / "talon"
    shim.write_text(f'#!/bin/sh\nexec {sys.executable} -m talon_tui.cli "$@"\n')
    shim.chmod(shim.stat().st_mode | stat.S_IXUSR)
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("TALON_", "XDG_")) and k not in ("HOME", "PYTHONPATH")
    }
    env.update(
        HOME=str(home),
        PATH=f"{bin_dir}:{os.environ['PATH']}",
        PYTHONPATH=str(REPO),
        LC_ALL="C.UTF-8",
    )
    yield cwd, env
    shutil.rmtree(tmp_path, ignore_errors=True)


def bash(script: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", "-e", "-c", script], cwd=cwd, env=env, capture_output=True, text=True, timeout=120
    )


@pytest.mark.slow
def test_run_it_for_real_works_as_written(operator):
    cwd, env = operator
    text = section("Run it for real")
    assert "sample_policies/" not in shell_block(text, "# terminal 2: a workspace")

    engine = subprocess.Popen(
        ["bash", "-c", "exec " + shell_block(text, "# terminal 1").split("\n", 1)[1].strip()],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        seen = ""
        while "listening on" not in seen:  # a loaded 2-core machine can take a while
            ready, _, _ = select.select([engine.stdout], [], [], 90)
            line = engine.stdout.readline() if ready else ""
            assert line, seen + (engine.stderr.read() if engine.poll() is not None else "")
            seen += line
        data_dir = Path(env["HOME"]) / ".local" / "share" / "talon"
        assert (data_dir / "run" / "agent.sock").is_socket()

        made = bash(shell_block(text, "# terminal 2: a workspace"), cwd, env)
        assert made.returncode == 0, made.stderr
        keys = re.findall(r"agent key \(shown once\): (\S+)", made.stdout)
        assert len(keys) == 1, made.stdout
        env["TALON_AGENT_KEY"] = keys[0]
        workspace = cwd / "talon-try"
        assert (workspace / "work" / "notes.md").is_file()

        agent = bash(shell_block(text, "# terminal 2: the agent"), workspace, env)
        assert agent.returncode == 0, agent.stderr
        assert "Plan: summarise these notes." in agent.stdout
        assert "POLICY_DENIED" in agent.stderr and "suggested fix" in agent.stderr

        snippet = [body for lang, body in blocks(text) if lang == "python"]
        assert len(snippet) == 1
        (workspace / "agent.py").write_text(snippet[0])
        ran = subprocess.run(
            [sys.executable, "agent.py"],
            cwd=workspace,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert ran.returncode == 0, ran.stderr
        assert "Traceback" not in ran.stderr
        lines = ran.stdout.splitlines()
        assert lines[0].startswith("file.read allowed:") and "Plan: summarise" in lines[0]
        assert lines[1].startswith("http.fetch denied:") and "fix: {" in lines[1]

        console = shell_block(text, "# terminal 2: the console").split("\n", 1)[1].strip()
        assert console == "talon"
        status = bash("talon status", workspace, env)  # the console's engine is this one
        assert status.returncode == 0 and "1" in status.stdout, status.stderr
    finally:
        engine.send_signal(signal.SIGTERM)
        try:
            engine.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            engine.kill()
            engine.communicate()


def test_readme_links_resolve_inside_the_repo():
    text = README.read_text(encoding="utf-8")
    for target in re.findall(r"\]\(([^)#]+)\)", text):
        if not target.startswith(("http://", "https://")):
            assert (REPO / target).exists(), target
    for path in re.findall(r"`((?:docs|bench|sample_policies)/[\w./-]+)`", text):
        assert (REPO / path).exists(), path


def test_make_bench_runs_every_benchmark():
    makefile = (REPO / "Makefile").read_text()
    for script in sorted((REPO / "bench").glob("*.py")):
        if not script.name.startswith("_"):  # _common.py: what the benches share, not a bench
            assert f"bench/{script.name}" in makefile, script.name
