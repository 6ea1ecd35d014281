"""shell.exec: one exact program, argv only, never a shell.

Rules (each refusal is CONSTRAINT_VIOLATION before anything runs):
- argv[0] must be a clean absolute path listed exactly in `commands` (`checks.command_allowed`).
- Its real path (symlinks resolved) must be argv[0] itself or also be listed: `/bin/ls` on a
  merged-/usr system resolves to `/usr/bin/ls`, which the operator must then list too. The
  broker executes that checked real path (argv[0] is passed unchanged as the program name).
- The working directory is a workspace-relative path under one of `roots`, opened with the same
  symlink-refusing resolver as the file tools; the child enters it through the held directory
  fd (`/proc/self/fd/N`), so it cannot be swapped between check and use.
- Environment: only `PATH` (a fixed system PATH, not the engine's). stdin is /dev/null. The
  program runs in its own session and process group.
- Limits: a total timeout kills the whole process group (`timed_out: true`); stdout and stderr
  are each read incrementally and capped at `max_output_bytes` — exceeding either kills the
  group and sets `truncated: true`. When the program exits, whatever it left running in its
  process group is killed too.
Result: `{argv, exit_code, stdout, stderr, timed_out, truncated}` (output decoded as UTF-8 with
replacement characters).
"""

from __future__ import annotations

import os
import selectors
import signal
import stat
import subprocess
import time
from typing import Any

from ..errors import ConstraintViolation, ToolError
from ..policy.checks import check_file_path, command_allowed
from ..policy.models import ShellConstraints, ShellExecParams
from .files import PathConfinement

SAFE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
MAX_ARGS = 4096
MAX_ARG_CHARS = 128 * 1024
_READ = 65536


def _check_argv(argv: list[str], commands: list[str]) -> str:
    """The real path to execute, after every argv check."""
    if not argv:
        raise ConstraintViolation("argv is empty")
    if len(argv) > MAX_ARGS:
        raise ConstraintViolation(f"argv has more than {MAX_ARGS} arguments")
    for i, arg in enumerate(argv):
        if not isinstance(arg, str):
            raise ConstraintViolation(f"argv[{i}] is not a string")
        if "\x00" in arg:
            raise ConstraintViolation(f"argv[{i}] contains a NUL byte")
        if len(arg) > MAX_ARG_CHARS:
            raise ConstraintViolation(f"argv[{i}] is longer than {MAX_ARG_CHARS} characters")
    prog = argv[0]
    if not command_allowed(prog, commands):
        raise ConstraintViolation(
            f"program {prog!r} is not in the allowed commands {list(commands)} "
            "(exact absolute paths only)",
            details={"program": prog},
        )
    real = os.path.realpath(prog)
    if real != prog and not command_allowed(real, commands):
        raise ConstraintViolation(
            f"program {prog!r} is a symlink to {real!r}, which is not in the allowed commands; "
            "list the real path too",
            details={"program": prog, "real_path": real},
        )
    try:
        st = os.stat(real)
    except OSError as exc:
        raise ToolError(f"program {prog!r} cannot be found: {exc.strerror}") from None
    if not stat.S_ISREG(st.st_mode) or not os.access(real, os.X_OK):
        raise ToolError(f"program {prog!r} is not an executable file")
    return real


def _killpg(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _leader_exited(pid: int) -> bool:
    """Has the child exited? (Not reaped, so its pgid cannot be reused before we kill it.)"""
    try:
        info = os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
    except ChildProcessError:
        return True
    return info is not None


def run_shell_exec(
    params: ShellExecParams, constraints: ShellConstraints, *, workspace: str
) -> dict[str, Any]:
    """Run one allowed program with limits; see the module docstring."""
    argv = list(params.argv)
    real = _check_argv(argv, constraints.commands)
    comps, _root = check_file_path(params.cwd, constraints.roots, workspace=workspace)
    cap = constraints.max_output_bytes
    with PathConfinement(workspace).directory(comps) as dfd:
        try:
            proc = subprocess.Popen(
                argv,
                executable=real,
                cwd=f"/proc/self/fd/{dfd}",
                env={"PATH": SAFE_PATH},
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                start_new_session=True,
                close_fds=True,
                shell=False,
            )
        except OSError as exc:
            raise ToolError(f"cannot start {argv[0]!r}: {exc.strerror}") from None
    deadline = time.monotonic() + constraints.timeout_seconds
    out = {"stdout": bytearray(), "stderr": bytearray()}
    timed_out = truncated = False
    pgid = proc.pid
    sel = selectors.DefaultSelector()
    assert proc.stdout is not None and proc.stderr is not None
    sel.register(proc.stdout, selectors.EVENT_READ, "stdout")
    sel.register(proc.stderr, selectors.EVENT_READ, "stderr")
    killed = False
    try:
        while sel.get_map():
            left = deadline - time.monotonic()
            if left <= 0:
                if not killed:
                    timed_out = True
                    _killpg(pgid)
                    killed = True
                    deadline = time.monotonic() + 2  # drain what is left, briefly
                    continue
                break
            for key, _ in sel.select(timeout=min(left, 0.05)):
                chunk = os.read(key.fd, _READ)
                if not chunk:
                    sel.unregister(key.fileobj)
                    continue
                buf = out[key.data]
                room = cap - len(buf)
                buf += chunk[: max(room, 0)]
                if len(chunk) > room and not killed:
                    truncated = True
                    _killpg(pgid)
                    killed = True
            if not killed and _leader_exited(proc.pid):
                _killpg(pgid)  # nothing the program started outlives it
                killed = True
                deadline = min(deadline, time.monotonic() + 2)
        # both pipes closed: give the program until the deadline to exit on its own
        while not killed and not _leader_exited(proc.pid):
            if time.monotonic() >= deadline:
                timed_out = True
                break
            time.sleep(0.005)
    finally:
        sel.close()
        _killpg(pgid)  # the program (if still running) and anything it left behind
        proc.stdout.close()
        proc.stderr.close()
        proc.wait()
    return {
        "argv": argv,
        "exit_code": proc.returncode,
        "stdout": bytes(out["stdout"]).decode("utf-8", errors="replace"),
        "stderr": bytes(out["stderr"]).decode("utf-8", errors="replace"),
        "timed_out": timed_out,
        "truncated": truncated,
    }
