"""shell.exec: exact programs, no shell, confined cwd, empty env, timeout and output caps."""

from __future__ import annotations

import os
import shutil
import sys
import time

import pytest

from talon_tui.engine.broker.shell import SAFE_PATH, run_shell_exec
from talon_tui.engine.errors import ConstraintViolation, ToolError
from talon_tui.engine.policy.models import ShellConstraints, ShellExecParams

ECHO = os.path.realpath(shutil.which("echo"))
SH = os.path.realpath(shutil.which("sh"))
ENV = os.path.realpath(shutil.which("env"))
PWD = os.path.realpath(shutil.which("pwd"))
PY = os.path.realpath(sys.executable)


@pytest.fixture
def ws(tmp_path):
    w = tmp_path / "ws"
    (w / "work" / "sub").mkdir(parents=True)
    (tmp_path / "outside").mkdir()
    return w


def run(ws, argv, cwd=".", **kw):
    kw.setdefault("commands", [ECHO, SH, ENV, PWD, PY])
    return run_shell_exec(
        ShellExecParams(argv=argv, cwd=cwd), ShellConstraints(**kw), workspace=str(ws)
    )


def test_echo(ws):
    r = run(ws, [ECHO, "hello", "$HOME", "; rm -rf /"])
    assert r == {
        "argv": [ECHO, "hello", "$HOME", "; rm -rf /"],
        "exit_code": 0,
        "stdout": "hello $HOME ; rm -rf /\n",
        "stderr": "",
        "timed_out": False,
        "truncated": False,
    }


def test_not_listed_refused(ws):
    for argv in [
        ["echo", "x"],
        ["/bin/../bin/echo"],
        [ECHO + "/"],
        ["/usr/bin/id"],
        [ECHO.upper()],
    ]:
        with pytest.raises(ConstraintViolation):
            run(ws, argv)


def test_symlinked_program_needs_real_path_listed(ws, tmp_path):
    link = tmp_path / "myecho"
    os.symlink(SH, link)  # looks like echo, is a shell
    with pytest.raises(ConstraintViolation, match="symlink"):
        run(ws, [str(link), "-c", "id"], commands=[str(link)])
    r = run(ws, [str(link), "-c", "echo via-link"], commands=[str(link), SH])
    assert r["stdout"] == "via-link\n"


def test_env_only_path(ws, monkeypatch):
    monkeypatch.setenv("TALON_SECRET_ENV", "leak")
    r = run(ws, [ENV])
    assert r["stdout"].strip().splitlines() == [f"PATH={SAFE_PATH}"]


def test_stdin_is_devnull(ws):
    r = run(ws, [PY, "-c", "import sys; print(repr(sys.stdin.read()))"])
    assert r["stdout"] == "''\n"


def test_cwd_confined(ws, tmp_path):
    r = run(ws, [PWD], cwd="work/sub", roots=["work"])
    assert r["stdout"].strip() == str(ws / "work" / "sub")
    for cwd in ["..", "/tmp", "work/../..", "work2", "."]:
        with pytest.raises(ConstraintViolation):
            run(ws, [PWD], cwd=cwd, roots=["work"])
    os.symlink(tmp_path / "outside", ws / "work" / "out")
    with pytest.raises(ConstraintViolation, match="symlink"):
        run(ws, [PWD], cwd="work/out", roots=["work"])
    with pytest.raises(ToolError):
        run(ws, [PWD], cwd="work/missing", roots=["work"])


def test_timeout_kills_process_group(ws, tmp_path):
    marker = tmp_path / "outside" / "survivor"
    script = f"sleep 2 && echo alive > {marker} & sleep 30"
    t0 = time.monotonic()
    r = run(ws, [SH, "-c", script], timeout_seconds=1)
    assert r["timed_out"] is True and r["exit_code"] != 0
    assert time.monotonic() - t0 < 5
    time.sleep(2.5)
    assert not marker.exists()  # the background child died with the group


def test_background_child_killed_when_program_exits(ws, tmp_path):
    marker = tmp_path / "outside" / "bg"
    r = run(ws, [SH, "-c", f"(sleep 1; echo alive > {marker}) >/dev/null 2>&1 & echo started"])
    assert r["stdout"] == "started\n" and r["timed_out"] is False
    time.sleep(1.5)
    assert not marker.exists()


def test_output_capped(ws):
    t0 = time.monotonic()
    r = run(
        ws,
        [PY, "-c", "import sys\nwhile True: sys.stdout.write('x' * 65536)"],
        max_output_bytes=1000,
        timeout_seconds=20,
    )
    assert r["truncated"] is True and len(r["stdout"]) == 1000 and r["timed_out"] is False
    assert time.monotonic() - t0 < 10
    r = run(ws, [PY, "-c", "import sys; sys.stderr.write('e' * 5000)"], max_output_bytes=100)
    assert r["truncated"] is True and r["stderr"] == "e" * 100


def test_exit_code_and_stderr(ws):
    r = run(ws, [PY, "-c", "import sys; sys.stderr.write('bad'); sys.exit(3)"])
    assert r["exit_code"] == 3 and r["stderr"] == "bad"


def test_nul_in_argv_refused(ws):
    with pytest.raises(ConstraintViolation, match="NUL"):
        run(ws, [ECHO, "a\x00b"])


def test_program_closing_pipes_then_exiting_keeps_its_exit_code(ws):
    code = "import os, time; os.close(1); os.close(2); time.sleep(0.3); raise SystemExit(7)"
    for _ in range(3):
        r = run(ws, [PY, "-c", code])
        assert r["exit_code"] == 7 and r["timed_out"] is False


def test_program_closing_pipes_still_hits_timeout(ws):
    r = run(
        ws,
        [PY, "-c", "import os, time; os.close(1); os.close(2); time.sleep(30)"],
        timeout_seconds=1,
    )
    assert r["timed_out"] is True and r["exit_code"] == -9
