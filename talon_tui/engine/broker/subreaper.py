"""shell.exec's process supervisor: one per program, a child subreaper that ends the whole tree.

The broker never runs an agent's program directly. It starts this file as a separate, fresh
interpreter (`python -I -S subreaper.py …`: standard library only, no site, no script directory
on sys.path) in a new session; the supervisor marks itself a child subreaper
(`prctl(PR_SET_CHILD_SUBREAPER)`), forks, and the child `execve`s the program from the file
descriptor the broker checked. From then on every process the program starts stays in the
supervisor's tree whatever it does: `setsid`, double forks and daemonizing only reparent
orphans to the supervisor, never to init.

The supervisor ends the tree, every descendant, when the first of these happens:
- the program exits (nothing it left running survives it: documented rule);
- the timeout passes;
- the broker writes to the control pipe (stdin) — output cap reached — or closes it, which is
  also what happens when the engine dies: the tree never outlives the engine.

Ending the tree: SIGKILL every direct child (their pids cannot be reused: only the supervisor
reaps them), reap, repeat; each killed process's children are reparented to the supervisor and
killed in the next round, until the supervisor has no child left. No pid outside the tree is
ever signalled. SIGTERM, SIGINT, SIGHUP and SIGQUIT are ignored, so only SIGKILL ends the
supervisor early.

Protocol: argv `--status-fd N --exe-fd M --timeout SECONDS --path PATH -- argv…`; stdout and
stderr are the program's (the supervisor points its own at /dev/null once the program runs);
one JSON line is written to the status fd at the end:
`{"exit_code": int|null, "reason": "exited"|"timeout"|"stopped"|"engine", "error": str?}`.
"""

from __future__ import annotations

import ctypes
import errno
import json
import os
import select
import signal
import sys
import time

PR_SET_CHILD_SUBREAPER = 36
_IGNORED = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGQUIT)
_RESET = (*_IGNORED, signal.SIGPIPE, signal.SIGXFSZ)


class _Args:
    def __init__(self, argv: list[str]) -> None:
        if "--" not in argv:
            raise ValueError("missing --")
        split = argv.index("--")
        opts, self.argv = argv[:split], argv[split + 1 :]
        if len(opts) % 2 or not self.argv:
            raise ValueError("bad options")
        pairs = dict(zip(opts[::2], opts[1::2], strict=True))
        self.status_fd = int(pairs["--status-fd"])
        self.exe_fd = int(pairs["--exe-fd"])
        self.timeout = float(pairs["--timeout"])
        self.path = pairs["--path"]


def _report(fd: int, **fields: object) -> None:
    data = (json.dumps(fields) + "\n").encode()
    try:
        while data:
            data = data[os.write(fd, data) :]
    except OSError:
        pass  # the broker is gone; the tree is ended anyway


def _children() -> list[int]:
    """Direct children of this (single-threaded) process."""
    me = os.getpid()
    try:
        with open(f"/proc/{me}/task/{me}/children") as f:
            return [int(p) for p in f.read().split()]
    except FileNotFoundError:  # kernel without CONFIG_PROC_CHILDREN: scan /proc
        pass
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as f:
                stat = f.read()
        except OSError:
            continue
        fields = stat[stat.rfind(b")") + 2 :].split()
        if len(fields) > 1 and int(fields[1]) == me:
            found.append(int(name))
    return found


class Supervisor:
    def __init__(self, args: _Args) -> None:
        self.args = args
        self.pid = -1
        self.status: int | None = None

    def _note(self, pid: int, status: int) -> None:
        if pid == self.pid and self.status is None:
            self.status = status

    def reap_ready(self) -> bool:
        """Reap every exited child; False once there is no child at all."""
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return False
            if pid == 0:
                return True
            self._note(pid, status)

    def end_tree(self) -> None:
        """SIGKILL every descendant, level by level, until no child is left."""
        while True:
            children = _children()
            for pid in children:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            if not self.reap_ready():
                return
            # Never a blocking wait: a child reparented while the list was read may be missing
            # from it, and it must be found by the next scan, not waited for.
            time.sleep(0.001 if children else 0.005)

    def start(self) -> None:
        args = self.args
        err_r, err_w = os.pipe()
        self.pid = os.fork()
        if self.pid == 0:  # the program
            code = 127
            try:
                os.close(err_r)
                for sig in _RESET:
                    signal.signal(sig, signal.SIG_DFL)
                null = os.open(os.devnull, os.O_RDONLY)
                os.dup2(null, 0)
                os.close(null)
                # the checked program, by fd: argv only, never a shell
                os.execve(args.exe_fd, args.argv, {"PATH": args.path})  # noqa: S606
            except OSError as exc:
                os.write(err_w, str(exc.errno or errno.EIO).encode())
            finally:
                os._exit(code)
        os.close(err_w)
        with os.fdopen(err_r, "rb") as f:
            failed = f.read()
        if failed:
            os.waitpid(self.pid, 0)
            raise OSError(int(failed), os.strerror(int(failed)))

    def run(self) -> str:
        """Wait for exit, timeout or the broker; end the tree; say why."""
        deadline = time.monotonic() + self.args.timeout
        try:
            pidfd = os.pidfd_open(self.pid)  # readable when the program exits
        except (AttributeError, OSError):
            pidfd = -1  # kernel before 5.3: look every 20 ms instead
        tick = 1.0 if pidfd >= 0 else 0.02
        poller = select.poll()
        poller.register(0, select.POLLIN | select.POLLHUP)
        if pidfd >= 0:
            poller.register(pidfd, select.POLLIN)
        try:
            while True:
                left = deadline - time.monotonic()
                if left <= 0:
                    return "timeout"
                events = dict(poller.poll(min(left, tick) * 1000))
                self.reap_ready()  # the program, and orphans that died meanwhile
                if self.status is not None:
                    return "exited"
                if 0 in events:
                    try:
                        data = os.read(0, 64)
                    except OSError:
                        data = b""
                    return "stopped" if data else "engine"
        finally:
            if pidfd >= 0:
                os.close(pidfd)


def main() -> int:
    for sig in _IGNORED:
        signal.signal(sig, signal.SIG_IGN)
    try:
        args = _Args(sys.argv[1:])
    except (ValueError, KeyError) as exc:
        print(f"subreaper: {exc}", file=sys.stderr)
        return 2
    os.set_inheritable(args.status_fd, False)
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        _report(args.status_fd, exit_code=None, reason="error", error="cannot become a subreaper")
        return 1
    sup = Supervisor(args)
    try:
        sup.start()
    except OSError as exc:
        _report(
            args.status_fd, exit_code=None, reason="error", error=f"cannot start: {exc.strerror}"
        )
        return 1
    os.close(args.exe_fd)
    null = os.open(os.devnull, os.O_WRONLY)
    os.dup2(null, 1)  # the output pipes close once the tree is gone
    os.dup2(null, 2)
    os.close(null)
    error = None
    try:
        reason = sup.run()
    except Exception as exc:  # noqa: BLE001 - reported below; the tree ends regardless
        reason, error = "error", f"the supervisor failed: {exc!r}"
    finally:
        sup.end_tree()  # whatever happened above: nothing outlives the supervisor's watch
    code = None if sup.status is None else os.waitstatus_to_exitcode(sup.status)
    if error is not None:
        _report(args.status_fd, exit_code=code, reason=reason, error=error)
        return 1
    _report(args.status_fd, exit_code=code, reason=reason)
    return 0


if __name__ == "__main__":
    sys.exit(main())
