"""docker.run mount sources cannot be redirected: no symlink is followed, before or during the
call, and a source is refused when anyone but root or the engine's uid could swap a component
before Docker resolves it (issue 9 item 2). Against the real Docker engine.

Layout: `arena/` (root's) holds `agent/` (uid 65534's: the attacker may rename in it), which
holds `m/` (marker "mine") and `evil`, a symlink to `secret/` (marker "secret"). The container
must never print "secret".
"""

from __future__ import annotations

import ctypes
import os
import random
import threading
import time

import pytest

from talon_tui.engine.broker.docker import run_docker
from talon_tui.engine.broker.docker_checks import check_mounts
from talon_tui.engine.errors import ConstraintViolation
from talon_tui.engine.policy.models import DockerConstraints, MountSpec

pytestmark = pytest.mark.docker


AGENT_UID = 65534
AT_FDCWD = -100
RENAME_EXCHANGE = 2
_libc = ctypes.CDLL(None, use_errno=True)


def exchange(a: str, b: str) -> None:
    """renameat2(RENAME_EXCHANGE): swap two names atomically."""
    if _libc.renameat2(AT_FDCWD, a.encode(), AT_FDCWD, b.encode(), RENAME_EXCHANGE) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))


def _dir_with_marker(path, text):
    path.mkdir()
    path.chmod(0o755)
    (path / "marker").write_text(text)
    (path / "marker").chmod(0o644)


@pytest.fixture
def arena(tmp_path):
    base = tmp_path / "arena"
    base.mkdir()
    base.chmod(0o755)
    _dir_with_marker(tmp_path / "secret", "secret")
    agent = base / "agent"
    agent.mkdir()
    agent.chmod(0o755)
    _dir_with_marker(agent / "m", "mine")
    (agent / "evil").symlink_to(tmp_path / "secret")
    return base


@pytest.fixture
def cat(docker_api, test_image, test_labels):
    """cat(source) -> what the container reads at /data/marker (source mounted at /data)."""

    def _cat(source: str) -> str:
        r = run_docker(
            {"image": test_image, "command": ["cat", "/data/marker"]},
            DockerConstraints(
                images=[test_image],
                timeout_seconds=20,
                mounts=[MountSpec(source=source, target="/data")],
            ),
            client=docker_api,
            labels=test_labels,
        )
        return r["stdout"] + r["stderr"]

    return _cat


def test_symlink_swapped_in_before_the_call_is_never_followed(arena, cat, tmp_path):
    """Root-owned path, but the source (or a directory above it) is now a symlink: refused,
    whoever made it; nothing is created."""
    (arena / "m").symlink_to(tmp_path / "secret")
    with pytest.raises(ConstraintViolation, match="symlink"):
        cat(str(arena / "m"))
    (arena / "up").symlink_to(arena / "agent")
    with pytest.raises(ConstraintViolation, match="symlink"):
        cat(str(arena / "up" / "m"))


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to give a directory to another uid")
def test_swap_before_the_call_in_an_agent_directory(arena, cat):
    """The agent swaps its source for a symlink to another directory before the intent."""
    agent = arena / "agent"
    os.chown(agent, AGENT_UID, AGENT_UID)
    exchange(str(agent / "m"), str(agent / "evil"))  # m is now the symlink
    with pytest.raises(ConstraintViolation):
        out = cat(str(agent / "m"))
        assert "secret" not in out


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to give a directory to another uid")
def test_swap_race_during_the_call_never_shows_another_directory(arena, cat):
    """A thread swaps `m` and `evil` with RENAME_EXCHANGE every few ms while intents run:
    the container never sees the secret (on the old code it did within a few tries)."""
    agent = arena / "agent"
    os.chown(agent, AGENT_UID, AGENT_UID)
    a, b = str(agent / "m"), str(agent / "evil")
    stop = threading.Event()
    swaps = 0

    def swapper():
        nonlocal swaps
        rnd = random.Random(7)
        while not stop.is_set():
            exchange(a, b)
            swaps += 1
            time.sleep(rnd.uniform(0, 0.004))

    t = threading.Thread(target=swapper, daemon=True)
    t.start()
    seen: list[str] = []
    try:
        end = time.monotonic() + 60
        # at least 16 intents spread over at least 300 swaps (a refusal takes microseconds,
        # a container on the old code about a second), bounded in time
        while (len(seen) < 16 or swaps < 300) and time.monotonic() < end:
            time.sleep(random.uniform(0, 0.003))
            try:
                seen.append(cat(a).strip())
            except ConstraintViolation as exc:
                seen.append(f"refused: {exc.message}")
    finally:
        stop.set()
        t.join(5)
    assert swaps > 100
    assert seen
    assert not [s for s in seen if "secret" in s], seen
    # the agent can swap it, so it is refused every time
    assert all(s.startswith("refused") for s in seen), seen


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to give a directory to another uid")
def test_agent_owned_source_in_a_safe_directory_is_mounted(arena, cat):
    """Only the directories *leading to* the source matter: the agent may own the source
    itself (it cannot rename it in a directory it cannot write)."""
    m = arena / "agent" / "m"
    os.chown(m, AGENT_UID, AGENT_UID)
    assert cat(str(m)).strip() == "mine"


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to give a directory to another uid")
def test_sticky_directory_rules(arena):
    """A sticky world-writable directory (like /tmp) may lead to a source the engine owns,
    not to one another uid owns (that uid could rename it)."""
    sticky = arena / "sticky"
    sticky.mkdir()
    sticky.chmod(0o1777)
    (sticky / "ours").mkdir()
    (sticky / "theirs").mkdir()
    os.chown(sticky / "theirs", AGENT_UID, AGENT_UID)
    check_mounts([MountSpec(source=str(sticky / "ours"), target="/data")])
    with pytest.raises(ConstraintViolation, match="writable by others"):
        check_mounts([MountSpec(source=str(sticky / "theirs"), target="/data")])
    (arena / "gw").mkdir()
    (arena / "gw").chmod(0o775)
    (arena / "gw" / "d").mkdir()
    with pytest.raises(ConstraintViolation, match="writable by others"):
        check_mounts([MountSpec(source=str(arena / "gw" / "d"), target="/data")])


def test_fifo_and_device_sources_refused(tmp_path):
    os.mkfifo(tmp_path / "f")
    with pytest.raises(ConstraintViolation, match="not a directory or a regular file"):
        check_mounts([MountSpec(source=str(tmp_path / "f"), target="/data")])
