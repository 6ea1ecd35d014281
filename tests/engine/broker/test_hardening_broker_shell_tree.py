"""shell.exec ends the whole process tree: setsid, double forks and daemons included, at the
timeout, at the output cap, when the program exits and when the engine dies (issue 9 item 9).

Every check is by pid against the real kernel: each process the program starts writes its pid
(and a unique marker in its argv) to the workspace, and the test looks that pid up in /proc.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
import uuid

import pytest

from talon_tui.engine.broker.shell import run_shell_exec
from talon_tui.engine.errors import ConstraintViolation
from talon_tui.engine.policy.models import ShellConstraints, ShellExecParams

ENV = os.path.realpath(shutil.which("env"))
SH = os.path.realpath(shutil.which("sh"))
PY = os.path.realpath(sys.executable)
COMMANDS = [ENV, SH, PY]


@pytest.fixture
def ws(tmp_path):
    w = tmp_path / "ws"
    (w / "work").mkdir(parents=True)
    return w


@pytest.fixture
def marker():
    """A unique sleep length: identifies our processes in /proc, and they are killed after."""
    m = f"{7000 + int(uuid.uuid4().int % 999)}.{uuid.uuid4().int % 10**6:06d}"
    yield m
    for pid in _pids_with(m):
        os.kill(pid, signal.SIGKILL)


def _cmdline(pid: int) -> str | None:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace")
    except (FileNotFoundError, ProcessLookupError):
        return None


def _alive(pid: int, marker: str) -> bool:
    """pid is still our process (not a zombie, and carries the marker)."""
    cmd = _cmdline(pid)
    if not cmd or marker not in cmd:
        return False
    try:
        with open(f"/proc/{pid}/stat") as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state != "Z"


def _pids_with(marker: str) -> list[int]:
    out = []
    for name in os.listdir("/proc"):
        if name.isdigit() and int(name) != os.getpid():
            cmd = _cmdline(int(name))
            if cmd and marker in cmd:
                out.append(int(name))
    return out


def _read_pids(d, names) -> dict[str, int]:
    return {n: int((d / n).read_text().split()[0]) for n in names}


def run(ws, argv, **kw):
    kw.setdefault("commands", COMMANDS)
    kw.setdefault("roots", ["work"])
    return run_shell_exec(
        ShellExecParams(argv=argv, cwd="work"), ShellConstraints(**kw), workspace=str(ws)
    )


def test_setsid_f_does_not_survive_a_normal_exit(ws, marker):
    """The issue's case: `env setsid -f sleep N` returns at once and leaves nothing behind."""
    r = run(ws, [ENV, "setsid", "-f", SH, "-c", f"echo $$ > sess.pid; exec sleep {marker}"])
    assert r["exit_code"] == 0 and not r["timed_out"]
    work = ws / "work"
    deadline = time.monotonic() + 1
    while not (work / "sess.pid").exists() and time.monotonic() < deadline:
        time.sleep(0.01)  # written by the detached child, which may have been killed first
    leftovers = _pids_with(marker)
    assert leftovers == [], f"survivors: {leftovers}"
    if (work / "sess.pid").exists():
        assert not _alive(_read_pids(work, ["sess.pid"])["sess.pid"], marker)


SCRIPT = textwrap.dedent(
    """
    import os, sys, time
    marker = sys.argv[1]
    def daemon(name):
        # classic double fork + setsid: the grandchild is nobody's child any more
        if os.fork():
            return
        os.setsid()
        if os.fork():
            os._exit(0)
        os.execv("/bin/sh", ["sh", "-c", f"echo $$ > {name}.pid; exec sleep {marker}"])
    daemon("d1")
    daemon("d2")
    # a setsid child that itself forks a deep chain
    if os.fork() == 0:
        os.setsid()
        os.execv("/bin/sh", ["sh", "-c",
            f"(sh -c 'echo $$ > chain.pid; exec sleep {marker}' &); "
            f"echo $$ > sess.pid; exec sleep {marker}"])
    while not all(os.path.exists(n) for n in ("d1.pid", "d2.pid", "chain.pid", "sess.pid")):
        time.sleep(0.01)
    print("ready", flush=True)
    if sys.argv[2] == "wait":
        time.sleep(float(marker))
    """
)

NAMES = ["d1.pid", "d2.pid", "chain.pid", "sess.pid"]


@pytest.mark.parametrize("mode", ["exit", "wait"])
def test_double_fork_and_setsid_all_end(ws, marker, mode):
    """Daemons (double fork + setsid) and a setsid chain: all gone when the program exits
    ('exit') and when the timeout kills it ('wait')."""
    (ws / "work" / "spawn.py").write_text(SCRIPT)
    t0 = time.monotonic()
    r = run(ws, [PY, "-I", "spawn.py", marker, mode], timeout_seconds=3)
    took = time.monotonic() - t0
    assert r["stdout"] == "ready\n", r
    assert r["timed_out"] is (mode == "wait")
    if mode == "wait":
        assert r["exit_code"] == -signal.SIGKILL
        assert took < 3 + 5
    pids = _read_pids(ws / "work", NAMES)
    survivors = {n: p for n, p in pids.items() if _alive(p, marker)}
    assert survivors == {}
    assert _pids_with(marker) == []


def test_output_cap_ends_the_tree(ws, marker):
    script = (
        f"setsid -f sh -c 'echo $$ > bg.pid; exec sleep {marker}'; "
        "while [ ! -s bg.pid ]; do :; done; "
        "while :; do echo xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx; done"
    )
    r = run(ws, [SH, "-c", script], max_output_bytes=10_000, timeout_seconds=20)
    assert r["truncated"] is True and r["timed_out"] is False
    assert len(r["stdout"]) == 10_000
    assert not _alive(_read_pids(ws / "work", ["bg.pid"])["bg.pid"], marker)
    assert _pids_with(marker) == []


ENGINE = textwrap.dedent(
    """
    import sys
    from talon_tui.engine.broker.shell import run_shell_exec
    from talon_tui.engine.policy.models import ShellConstraints, ShellExecParams
    ws, sh, marker = sys.argv[1:4]
    run_shell_exec(
        ShellExecParams(argv=[sh, "-c",
            f"setsid -f sh -c 'echo $$ > bg.pid; exec sleep {marker}'; "
            f"echo $$ > fg.pid; exec sleep {marker}"], cwd="work"),
        ShellConstraints(commands=[sh], roots=["work"], timeout_seconds=300),
        workspace=ws,
    )
    """
)


def test_engine_death_ends_the_tree(ws, marker):
    """kill -9 of the process running the broker: the supervisor ends the tree at once, long
    before the 300 s timeout."""
    engine = subprocess.Popen(
        [sys.executable, "-c", ENGINE, str(ws), SH, marker],
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )
    work = ws / "work"
    try:
        deadline = time.monotonic() + 30
        while not all(
            (work / n).exists() and (work / n).read_text().strip() for n in ("bg.pid", "fg.pid")
        ):
            assert time.monotonic() < deadline, "the program never started"
            assert engine.poll() is None, "the engine stand-in exited"
            time.sleep(0.02)
        pids = _read_pids(work, ["bg.pid", "fg.pid"])
        assert all(_alive(p, marker) for p in pids.values())
    finally:
        engine.kill()
        engine.wait()
    deadline = time.monotonic() + 5
    while any(_alive(p, marker) for p in pids.values()) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert {n: p for n, p in pids.items() if _alive(p, marker)} == {}


def test_program_is_executed_from_the_checked_file(ws, tmp_path):
    """The program is opened without following symlinks: a symlinked path component refused."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    real = bindir / "tool"
    real.write_text("#!/bin/sh\necho real-tool\n")
    real.chmod(0o755)
    r = run(ws, [str(real)], commands=[str(real)])
    assert r["stdout"] == "real-tool\n"  # a #! script runs from its fd too
    link = tmp_path / "binlink"
    link.symlink_to(bindir)
    with pytest.raises(ConstraintViolation):
        run(ws, [str(link / "tool")], commands=[str(link / "tool")])


def test_a_program_that_kills_its_supervisor_gets_a_tool_error(ws, marker):
    """Same uid, so the program can SIGKILL its supervisor: the broker notices the missing
    report, kills the supervisor's process group and says so (SECURITY.md residual)."""
    from talon_tui.engine.errors import ToolError

    script = f"echo $$ > fg.pid; kill -9 $PPID; exec sleep {marker}"
    t0 = time.monotonic()
    with pytest.raises(ToolError, match="supervisor"):
        run(ws, [SH, "-c", script], timeout_seconds=60)
    assert time.monotonic() - t0 < 30
    fg = _read_pids(ws / "work", ["fg.pid"])["fg.pid"]
    deadline = time.monotonic() + 5
    while _alive(fg, marker) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not _alive(fg, marker)


def test_kill9_of_a_real_engine_ends_the_tree(tmp_path, marker):
    """The same under a real `talon serve`: an agent's shell.exec (timeout 300 s) leaves a
    setsid child; kill -9 of the engine ends both at once."""
    from support.pipe import Raw, Serve, make_workspace, new_session
    from support.pipe import run as run_async

    policy = {
        "version": 1,
        "overrides": [
            {
                "tool": "shell.exec",
                "allow": True,
                "approval": "never",
                "constraints": {"commands": [SH], "roots": ["work"], "timeout_seconds": 300},
            }
        ],
    }
    serve = Serve(tmp_path / "data").start()
    try:
        ws = make_workspace(tmp_path)
        _sid, key = run_async(new_session(serve, ws, policy))
        raw = Raw(serve.socket_path, timeout=30)
        assert raw.call({"id": 0, "op": "hello", "auth": {"agent_key": key}})["ok"] is True
        script = (
            f"setsid -f sh -c 'echo $$ > bg.pid; exec sleep {marker}'; "
            f"echo $$ > fg.pid; exec sleep {marker}"
        )
        raw.send(
            {
                "id": 1,
                "op": "intent",
                "tool": "shell.exec",
                "params": {"argv": [SH, "-c", script], "cwd": "work"},
            }
        )
        work = ws / "work"
        deadline = time.monotonic() + 30
        names = ("bg.pid", "fg.pid")
        while not all((work / n).exists() and (work / n).read_text().strip() for n in names):
            assert time.monotonic() < deadline, "the program never started"
            time.sleep(0.02)
        pids = _read_pids(work, ["bg.pid", "fg.pid"])
        assert all(_alive(p, marker) for p in pids.values())
        serve.kill9()
        raw.close()
        deadline = time.monotonic() + 15  # the supervisor sees its stdin hang up at once; load
        while any(_alive(p, marker) for p in pids.values()) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert {n: p for n, p in pids.items() if _alive(p, marker)} == {}
    finally:
        serve.stop_quietly()


CHAIN = textwrap.dedent(
    """
    import os, sys
    # a fork chain: each process forks and exits at once, so some process of it is always
    # alive and never the same one for long
    while True:
        try:
            if os.fork():
                os._exit(0)
        except OSError:
            pass
    """
)


def test_a_fork_chain_is_caught(ws, marker):
    (ws / "work" / "chain.py").write_text(CHAIN)
    t0 = time.monotonic()
    run(ws, [PY, "-I", "chain.py", marker], timeout_seconds=5)
    assert time.monotonic() - t0 < 30
    time.sleep(0.2)
    assert _pids_with(marker) == []
