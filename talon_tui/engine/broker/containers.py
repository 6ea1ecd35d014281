"""Container lifetime: who owns a container (labels), its watchdog process, its removal.

No container outlives its timeout, even if the engine dies (SECURITY.md "Containers end with
their intent"): a detached watchdog process per container (`container_watchdog.py`) removes it
at timeout + `WATCHDOG_GRACE` seconds, or at once when the broker's pipe to it closes without a
`done` (engine crash). Every container is labelled with the engine's data dir and instance; at
start the engine removes containers its earlier instances left (`docker.reap_leftovers`,
audited as `tool.reaped`).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import dataclass
from typing import Any

from ..errors import ToolError

#: the engine's data dir: containers an engine of this data dir left behind are its to reap
DATA_DIR_LABEL = "talon.data_dir"
#: the engine instance (one per start) that made the container: a running engine reaps only
#: containers of earlier instances
ENGINE_LABEL = "talon.engine"
SESSION_LABEL = "talon.session"

WATCHDOG = os.path.join(os.path.dirname(os.path.abspath(__file__)), "container_watchdog.py")
#: seconds past the timeout the watchdog leaves the broker to kill, wait and remove itself
WATCHDOG_GRACE = 5.0
#: seconds the watchdog waits for the container to start before its deadline starts counting
WATCHDOG_START_WAIT = 120.0


@dataclass(frozen=True)
class ContainerOwner:
    """Who a container belongs to, written into its labels."""

    data_dir: str
    engine: str
    session_id: str | None = None

    def labels(self) -> dict[str, str]:
        out = {DATA_DIR_LABEL: self.data_dir, ENGINE_LABEL: self.engine}
        if self.session_id is not None:
            out[SESSION_LABEL] = self.session_id
        return out


class Watchdog:
    """The broker's end of one container's watchdog process (see `container_watchdog.py`)."""

    def __init__(self, proc: subprocess.Popen[bytes]) -> None:
        self.proc = proc

    @classmethod
    def spawn(cls, container_id: str, timeout: int) -> Watchdog:
        """Start the detached watchdog; ToolError (and no container start) if it cannot run."""
        try:
            proc = subprocess.Popen(
                [
                    sys.executable,
                    "-I",
                    WATCHDOG,
                    "--container",
                    container_id,
                    "--after",
                    str(timeout + WATCHDOG_GRACE),
                    "--start-wait",
                    str(WATCHDOG_START_WAIT),
                    "--sys-path",
                    os.pathsep.join(p for p in sys.path if os.path.isabs(p)),
                ],
                stdin=subprocess.PIPE,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                close_fds=True,
                start_new_session=True,
                cwd="/",
            )
        except OSError as exc:
            raise ToolError(
                f"cannot start the container watchdog: {exc.strerror}; nothing was started"
            ) from exc
        return cls(proc)

    def _say(self, word: bytes) -> None:
        assert self.proc.stdin is not None
        try:
            self.proc.stdin.write(word + b"\n")
            self.proc.stdin.flush()
        except (BrokenPipeError, OSError):
            pass  # it died: the engine start reaps what it would have removed

    def started(self) -> None:
        self._say(b"started %r" % time.monotonic())

    def finish(self, removed: bool) -> None:
        """`done` when the broker removed the container itself; else just hang up, which makes
        the watchdog remove it. Either way the watchdog exits on its own."""
        if removed:
            self._say(b"done")
        try:
            assert self.proc.stdin is not None
            self.proc.stdin.close()
        except OSError:
            pass
        # Never wait: it may still be starting up (or removing); it is detached and exits on
        # its own, and subprocess reaps it later.
        self.proc.poll()


def api_message(exc: Any) -> str:
    """The Docker engine's own words for an API error."""
    explanation = getattr(exc, "explanation", None)
    return str(explanation or exc)


def remove_container(api: Any, container_id: str) -> None:
    """Force-remove the container (and any anonymous volumes); retry once."""
    from docker.errors import APIError, NotFound
    from requests.exceptions import RequestException

    for attempt in range(2):
        try:
            api.remove_container(container_id, force=True, v=True)
            return
        except NotFound:
            return
        except (APIError, RequestException) as exc:
            if attempt == 1:
                raise ToolError(
                    f"container {container_id[:12]} could not be removed: {api_message(exc)}",
                    details={"container_id": container_id},
                ) from exc
            time.sleep(0.2)
