"""docker.run's container watchdog: one small detached process per container, so that no
container outlives its timeout, even when the engine is killed.

The broker starts this file as a fresh interpreter (`python -I container_watchdog.py …`: no
script directory on sys.path, so the broker's own `docker.py` and `http.py` never shadow the
real packages) in a new session, right after the container is created and before it starts.
It reads lines from its stdin, a pipe only the broker holds:

- `started T` — the container runs since T (the broker's `time.monotonic()`: CLOCK_MONOTONIC
  is one clock for every process on Linux): its deadline is T + `--after` seconds (the
  intent's timeout plus a grace the broker leaves itself to kill, wait and remove);
- `done` — the broker removed the container itself: exit, doing nothing;
- end of file without `done` — the broker is gone (engine crash, kill -9, or the broker gave
  up): force-remove the container now. SIGTERM does the same.

Before `started`, the deadline is `--start-wait` + `--after` seconds from launch. At the
deadline the container is force-removed (kill + remove in one call). Removal is retried while
the Docker engine does not answer, for `RETRY_SECONDS`; a container still left is removed by the
next engine start (`tool.reaped`). The Docker engine is the one the environment names
(DOCKER_HOST, as the broker's). The broker passes its own `sys.path` (`--sys-path`), so the
watchdog imports the very Docker SDK the broker uses; it imports it at once, before waiting,
so a removal never waits on the import.
"""

from __future__ import annotations

import argparse
import os
import select
import signal
import sys
import time

RETRY_SECONDS = 300.0


def _remove(container: str) -> bool:
    """Force-remove the container; True once it is gone."""
    try:
        import docker
        from docker.errors import DockerException, NotFound
        from requests.exceptions import RequestException
    except ImportError:
        return False  # retried; the next engine start reaps it if this never works
    try:
        api = docker.from_env(timeout=30).api
        api.remove_container(container, force=True, v=True)
    except NotFound:
        return True
    except (DockerException, RequestException, OSError):
        return False
    return True


def _remove_with_retries(container: str) -> int:
    give_up = time.monotonic() + RETRY_SECONDS
    while True:
        if _remove(container):
            return 0
        if time.monotonic() > give_up:
            return 1
        time.sleep(2.0)


class _Stop(Exception):
    pass


def _on_term(_sig: int, _frame: object) -> None:
    raise _Stop


def watch(container: str, after: float, start_wait: float) -> int:
    """Wait for the broker's word or the deadline; remove the container unless told `done`."""
    deadline = time.monotonic() + start_wait + after
    buf = b""
    try:
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                break  # the deadline: remove
            ready, _, _ = select.select([0], [], [], left)
            if not ready:
                continue
            chunk = os.read(0, 256)
            if not chunk:
                break  # the broker is gone: remove now
            buf += chunk
            while b"\n" in buf:
                line, buf = buf.split(b"\n", 1)
                word, _, arg = line.partition(b" ")
                if word == b"started":
                    try:
                        since = float(arg)
                    except ValueError:
                        since = time.monotonic()
                    deadline = min(since, time.monotonic()) + after
                elif line == b"done":
                    return 0
            buf = buf[-64:]
    except _Stop:
        pass
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # removing now; let it finish
    return _remove_with_retries(container)


def main() -> int:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, _on_term)
    parser = argparse.ArgumentParser(prog="container_watchdog")
    parser.add_argument("--container", required=True)
    parser.add_argument("--after", type=float, required=True)
    parser.add_argument("--start-wait", type=float, required=True)
    parser.add_argument("--sys-path", default="")
    args = parser.parse_args()
    sys.path[:0] = [p for p in args.sys_path.split(os.pathsep) if os.path.isabs(p)]
    try:
        try:
            import docker  # noqa: F401 - now, so that a removal never waits on it
        except ImportError as exc:
            print(f"container_watchdog: {exc}", file=sys.stderr)
    except _Stop:  # SIGTERM while importing: remove, as in `watch`
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        return _remove_with_retries(args.container)
    return watch(args.container, args.after, args.start_wait)


if __name__ == "__main__":
    sys.exit(main())
