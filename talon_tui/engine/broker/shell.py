"""shell.exec: one exact program, argv only, never a shell.

Rules (each refusal is CONSTRAINT_VIOLATION before anything runs):
- argv[0] must be a clean absolute path listed exactly in `commands` (`checks.command_allowed`).
- With `exact_argv` set (a remembered approval pins it), the whole argv must be one of those
  vectors exactly (`checks.argv_allowed`).
- Its real path (symlinks resolved) must be argv[0] itself or also be listed: `/bin/ls` on a
  merged-/usr system resolves to `/usr/bin/ls`, which the operator must then list too. The
  broker opens that real path from `/` without following any symlink and the program is
  executed from that fd (`execve` of the fd: no swap between check and exec); argv[0] is
  passed unchanged as the program name.
- The working directory is a workspace-relative path under one of `roots`, opened with the same
  symlink-refusing resolver as the file tools; the child enters it through the held directory
  fd (`/proc/self/fd/N`), so it cannot be swapped between check and use.
- Environment: only `PATH` (a fixed system PATH, not the engine's). stdin is /dev/null.
- Process tree (SECURITY.md "Processes end with their intent"): the program runs under its own
  supervisor (`subreaper.py`, a child subreaper in a new session), so nothing it starts can
  leave its tree — not with `setsid`, double forks or daemonizing. The supervisor kills every
  descendant when the program exits (nothing it leaves running survives it), at the timeout
  (`timed_out: true`), when the broker asks (output cap) and when the engine dies (its control
  pipe closes). If the supervisor itself is killed (the program may signal its parent: same
  uid), the broker kills the supervisor's process group and reports a ToolError; descendants
  that left that group may then survive.
- Limits: stdout and stderr are each read incrementally and capped at `max_output_bytes` —
  exceeding either ends the tree and sets `truncated: true`.
Result: `{argv, exit_code, stdout, stderr, timed_out, truncated}` (output decoded as UTF-8 with
replacement characters).
"""

from __future__ import annotations

import json
import os
import selectors
import signal
import stat
import subprocess
import sys
import time
from typing import Any

from ..errors import ConstraintViolation, ToolError
from ..policy.checks import argv_allowed, check_file_path, command_allowed
from ..policy.models import ShellConstraints, ShellExecParams
from .files import PathConfinement, open_host_path

SAFE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
MAX_ARGS = 4096
MAX_ARG_CHARS = 128 * 1024
_READ = 65536
#: run as a fresh interpreter, never imported by the engine (see its docstring)
SUPERVISOR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "subreaper.py")
#: how long past the timeout the broker waits for the supervisor's report
SUPERVISOR_GRACE = 10.0


def _check_argv(
    argv: list[str], commands: list[str], exact_argv: list[list[str]] | None = None
) -> str:
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
    if not argv_allowed(argv, exact_argv):
        raise ConstraintViolation(
            "these arguments are not among the exact argument vectors the policy allows",
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


def _open_program(real: str, shown: str) -> int:
    """An fd of the checked program, opened without following any symlink: the supervisor
    executes this very file, so no component can be swapped between the check and the exec."""
    fd = open_host_path(real, what="program")
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or not st.st_mode & 0o111:
            raise ToolError(f"program {shown!r} is not an executable file")
    except BaseException:
        os.close(fd)
        raise
    return fd


def _killpg(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _status(raw: bytes) -> dict[str, Any] | None:
    line = raw.split(b"\n", 1)[0]
    try:
        value = json.loads(line)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """Ask the supervisor to end the tree now (output cap)."""
    assert proc.stdin is not None
    try:
        proc.stdin.write(b"k")
        proc.stdin.flush()
    except (BrokenPipeError, OSError):
        pass


def run_shell_exec(
    params: ShellExecParams, constraints: ShellConstraints, *, workspace: str
) -> dict[str, Any]:
    """Run one allowed program with limits; see the module docstring."""
    argv = list(params.argv)
    real = _check_argv(argv, constraints.commands, constraints.exact_argv)
    comps, _root = check_file_path(params.cwd, constraints.roots, workspace=workspace)
    cap = constraints.max_output_bytes
    exe_fd = _open_program(real, argv[0])
    status_r, status_w = os.pipe()
    try:
        with PathConfinement(workspace).directory(comps) as dfd:
            try:
                proc = subprocess.Popen(
                    [
                        sys.executable,
                        "-I",
                        "-S",
                        SUPERVISOR,
                        "--status-fd",
                        str(status_w),
                        "--exe-fd",
                        str(exe_fd),
                        "--timeout",
                        str(constraints.timeout_seconds),
                        "--path",
                        SAFE_PATH,
                        "--",
                        *argv,
                    ],
                    cwd=f"/proc/self/fd/{dfd}",
                    env={"PATH": SAFE_PATH},
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                    pass_fds=(status_w, exe_fd),
                    start_new_session=True,
                    close_fds=True,
                    shell=False,
                )
            except OSError as exc:
                raise ToolError(f"cannot start {argv[0]!r}: {exc.strerror}") from None
    except BaseException:
        os.close(status_r)
        raise
    finally:
        os.close(status_w)
        os.close(exe_fd)
    # The supervisor enforces the timeout; this deadline only guards against a lost one.
    deadline = time.monotonic() + constraints.timeout_seconds + SUPERVISOR_GRACE
    out = {"stdout": bytearray(), "stderr": bytearray()}
    status_raw = bytearray()
    status: dict[str, Any] | None = None
    truncated = stopped = lost = False
    sel = selectors.DefaultSelector()
    assert proc.stdout is not None and proc.stderr is not None and proc.stdin is not None
    sel.register(proc.stdout, selectors.EVENT_READ, "stdout")
    sel.register(proc.stderr, selectors.EVENT_READ, "stderr")
    sel.register(status_r, selectors.EVENT_READ, "status")
    try:
        while sel.get_map() and (status is not None or status_r in sel.get_map()):
            left = deadline - time.monotonic()
            if left <= 0:
                lost = True
                break
            for key, _ in sel.select(timeout=left):
                chunk = os.read(key.fd, _READ)
                if key.data == "status":
                    status_raw += chunk[:4096]
                    if not chunk:
                        sel.unregister(key.fileobj)
                        status = _status(bytes(status_raw))
                        if status is None:
                            break  # the supervisor died without a report: no more waiting
                        # the tree is gone: drain what its pipes still hold, briefly
                        deadline = min(deadline, time.monotonic() + 2)
                    continue
                if not chunk:
                    sel.unregister(key.fileobj)
                    continue
                buf = out[key.data]
                room = cap - len(buf)
                buf += chunk[: max(room, 0)]
                if len(chunk) > room and not stopped:
                    truncated = stopped = True
                    _stop(proc)
    finally:
        sel.close()
        os.close(status_r)
        proc.stdout.close()
        proc.stderr.close()
        if status is None:
            # The supervisor died or hung (an allowed program may signal its own parent):
            # end what is still in its process group; descendants that left it may survive.
            _killpg(proc.pid)
        try:
            proc.stdin.close()
        except OSError:
            pass
        proc.wait()
    if status is None:
        raise ToolError(
            f"the process supervisor of {argv[0]!r} ended without a report"
            + (" (no answer in time)" if lost else "")
            + "; its process group was killed, detached descendants may survive",
            details={"program": argv[0]},
        )
    if status.get("reason") == "error":
        raise ToolError(f"shell.exec {argv[0]!r}: {status.get('error') or 'unknown error'}")
    code = status.get("exit_code")
    return {
        "argv": argv,
        "exit_code": code if isinstance(code, int) else None,
        "stdout": bytes(out["stdout"]).decode("utf-8", errors="replace"),
        "stderr": bytes(out["stderr"]).decode("utf-8", errors="replace"),
        "timed_out": status.get("reason") == "timeout",
        "truncated": truncated,
    }
