"""No container outlives its timeout, even when the engine dies; a restarted engine removes what
an earlier run left, audited as `tool.reaped` (issue 9 item 8). Against a real `talon serve`
subprocess and the real Docker engine.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
import uuid

import pytest
from support.pipe import REPO, TALON, Raw, Serve, make_workspace, new_session, run

# Spelled out (not imported) so that these tests also run, and fail, on the code before the fix.
DATA_DIR_LABEL = "talon.data_dir"
ENGINE_LABEL = "talon.engine"
WATCHDOG = str(REPO / "talon_tui" / "engine" / "broker" / "container_watchdog.py")

pytestmark = pytest.mark.docker


def docker_policy(image: str, timeout: int) -> dict:
    return {
        "version": 1,
        "overrides": [
            {
                "tool": "docker.run",
                "allow": True,
                "approval": "never",
                "constraints": {"images": [image], "timeout_seconds": timeout},
            }
        ],
    }


def _find(docker_api, mark: str) -> list[dict]:
    """Containers (any state) whose env carries our marker: found the same way on any code."""
    out = []
    for c in docker_api.containers(all=True, filters={"label": "talon"}):
        try:
            env = docker_api.inspect_container(c["Id"])["Config"]["Env"] or []
        except Exception:  # noqa: BLE001 - removed between list and inspect
            continue
        if f"TALON_TEST_MARK={mark}" in env:
            out.append(c)
    return out


def _wait_running(docker_api, mark: str, timeout: float = 60) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for c in _find(docker_api, mark):
            if c["State"] == "running":
                return c
        time.sleep(0.1)
    raise AssertionError("the container never ran")


def _start_sleep(serve: Serve, ws, image: str, timeout: int, mark: str) -> Raw:
    """An agent asks for `sleep 100` with the given timeout and does not wait for the answer."""
    _sid, key = run(new_session(serve, ws, docker_policy(image, timeout)))
    raw = Raw(serve.socket_path, timeout=30)
    assert raw.call({"id": 0, "op": "hello", "auth": {"agent_key": key}})["ok"] is True
    raw.send(
        {
            "id": 1,
            "op": "intent",
            "tool": "docker.run",
            "params": {
                "image": image,
                "command": ["sleep", "100"],
                "env": {"TALON_TEST_MARK": mark},
            },
        }
    )
    return raw


def _cleanup(docker_api, mark: str) -> None:
    for c in _find(docker_api, mark):
        docker_api.remove_container(c["Id"], force=True)


def _watchdog_pids(container_id: str) -> list[int]:
    pids = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/cmdline", "rb") as f:
                argv = f.read().split(b"\0")
        except OSError:
            continue
        if WATCHDOG.encode() in argv and container_id.encode() in argv:
            pids.append(int(name))
    return pids


def _events(data) -> list[dict]:
    path = data / "audit" / "audit.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def test_kill9_engine_container_gone_within_its_timeout(tmp_path, docker_api, test_image):
    """The issue's case: docker.run `sleep 100` with timeout 5, kill -9 the engine."""
    mark = uuid.uuid4().hex
    serve = Serve(tmp_path / "data").start()
    try:
        ws = make_workspace(tmp_path)
        raw = _start_sleep(serve, ws, test_image, 5, mark)
        c = _wait_running(docker_api, mark)
        serve.kill9()
        killed = time.monotonic()
        raw.close()
        while _find(docker_api, mark) and time.monotonic() - killed < 15:
            time.sleep(0.1)
        gone_after = time.monotonic() - killed
        print(f"container gone {gone_after:.2f}s after kill -9")
        assert _find(docker_api, mark) == [], "the container outlived the engine"
        assert gone_after < 5, f"gone only after {gone_after:.1f}s"
        assert c["Labels"].get(DATA_DIR_LABEL) == str(tmp_path / "data")
    finally:
        serve.stop_quietly()
        _cleanup(docker_api, mark)


@pytest.mark.slow
def test_restart_reaps_leftovers_with_tool_reaped(tmp_path, docker_api, test_image):
    """Engine and watchdog both killed (-9): the container is left. The next start of an
    engine on the same data dir removes it and writes `tool.reaped`; a container labelled with
    another data dir is left alone."""
    mark = uuid.uuid4().hex
    data = tmp_path / "data"
    other = docker_api.create_container(
        test_image,
        command=["sleep", "100"],
        labels={"talon": "1", DATA_DIR_LABEL: str(tmp_path / "other-data"), ENGINE_LABEL: "x"},
        environment=[f"TALON_TEST_MARK={mark}-other"],
    )
    serve = Serve(data).start()
    try:
        ws = make_workspace(tmp_path)
        raw = _start_sleep(serve, ws, test_image, 60, mark)
        c = _wait_running(docker_api, mark)
        for pid in _watchdog_pids(c["Id"]):
            os.kill(pid, signal.SIGKILL)
        serve.kill9()
        raw.close()
        time.sleep(1)
        assert [x["Id"] for x in _find(docker_api, mark)] == [c["Id"]]  # left behind

        serve = Serve(data).start()
        deadline = time.monotonic() + 30
        reaped = []
        while not reaped and time.monotonic() < deadline:
            reaped = [e for e in _events(data) if e["type"] == "tool.reaped"]
            time.sleep(0.1)
        assert [e["data"]["container_id"] for e in reaped] == [c["Id"]]
        assert reaped[0]["data"]["state"] == "running"
        assert reaped[0]["data"]["session"].startswith("sess_")
        assert _find(docker_api, mark) == []
        assert docker_api.inspect_container(other["Id"])["Id"] == other["Id"]  # not ours
        code, err = serve.terminate()
        assert code == 0, err
        verify = subprocess.run(
            [*TALON, "audit", "verify", "--data-dir", str(data)],
            capture_output=True,
            text=True,
            cwd=REPO,
            timeout=120,
        )
        assert verify.returncode == 0, verify.stdout + verify.stderr
    finally:
        serve.stop_quietly()
        _cleanup(docker_api, mark)
        docker_api.remove_container(other["Id"], force=True)


# --------------------------------------------------------------------------- the watchdog


def _sleeper(docker_api, test_image, test_labels) -> str:
    c = docker_api.create_container(test_image, command=["sleep", "100"], labels=test_labels)
    docker_api.start(c["Id"])
    return c["Id"]


def _gone_within(docker_api, cid: str, seconds: float) -> float:
    from docker.errors import NotFound

    t0 = time.monotonic()
    while time.monotonic() - t0 < seconds:
        try:
            docker_api.inspect_container(cid)
        except NotFound:
            return time.monotonic() - t0
        time.sleep(0.1)
    raise AssertionError(f"container {cid[:12]} still there after {seconds}s")


@pytest.mark.slow
def test_watchdog_removes_at_its_deadline(docker_api, test_image, test_labels):
    """The broker wedged (never says done): removed at timeout + grace."""
    from talon_tui.engine.broker.containers import Watchdog

    cid = _sleeper(docker_api, test_image, test_labels)
    wd = Watchdog.spawn(cid, 1)
    wd.started()
    took = _gone_within(docker_api, cid, 30)
    assert took > 1  # not before the timeout
    wd.finish(removed=True)


def test_watchdog_removes_when_the_broker_hangs_up(docker_api, test_image, test_labels):
    from talon_tui.engine.broker.containers import Watchdog

    cid = _sleeper(docker_api, test_image, test_labels)
    wd = Watchdog.spawn(cid, 600)
    wd.started()
    wd.finish(removed=False)  # end of file without "done", as when the engine dies
    assert _gone_within(docker_api, cid, 15) < 15


def test_watchdog_done_leaves_the_container(docker_api, test_image, test_labels):
    from talon_tui.engine.broker.containers import Watchdog

    cid = _sleeper(docker_api, test_image, test_labels)
    wd = Watchdog.spawn(cid, 600)
    wd.started()
    wd.finish(removed=True)
    wd.proc.wait(10)
    assert docker_api.inspect_container(cid)["State"]["Running"] is True
    docker_api.remove_container(cid, force=True)


def test_broker_reports_timed_out_when_the_watchdog_won_the_race(
    docker_api, test_image, test_labels
):
    """The watchdog removed the container just before the broker's own kill (a broker slower
    than timeout + grace): the intent ends as timed out, not as an engine failure."""
    from talon_tui.engine.broker.docker import run_docker
    from talon_tui.engine.policy.models import DockerConstraints

    class WatchdogFirst:
        """The real API client; its `kill` is preceded by the removal the watchdog does."""

        def __getattr__(self, name):
            return getattr(docker_api, name)

        def kill(self, container, *a, **kw):
            docker_api.remove_container(container, force=True, v=True)
            return docker_api.kill(container, *a, **kw)

    r = run_docker(
        {"image": test_image, "command": ["sleep", "100"]},
        DockerConstraints(images=[test_image], timeout_seconds=1),
        client=WatchdogFirst(),
        labels=test_labels,
    )
    assert r["timed_out"] is True and r["exit_code"] is None
