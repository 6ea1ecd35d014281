"""The Docker calls every engine start and `talon status` make without the Docker SDK (issue 8):
`ping` and the leftover listing ask the local socket with the standard library and agree with
the SDK, against the real Docker engine; another transport still goes through the SDK."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid

import pytest
from support.pipe import REPO

from talon_tui.engine.broker import docker

pytestmark = pytest.mark.docker


def test_ping_answers_like_the_sdk(docker_api, monkeypatch, tmp_path):
    assert docker_api.ping() is True
    assert docker.ping() is True
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path / 'no.sock'}")
    assert docker.ping() is False  # nothing listens there
    monkeypatch.setenv("DOCKER_HOST", "tcp://127.0.0.1:1")
    assert docker.ping() is False  # the SDK's answer: no engine on that port


def test_leftovers_are_listed_without_the_sdk_and_then_reaped(docker_api, test_image, tmp_path):
    """A container an earlier engine of this data dir left is listed over the socket, then
    the SDK removes it; one of this engine, or of another data dir, is left alone."""
    data = str(tmp_path / "data")
    mark = uuid.uuid4().hex
    labels = {"talon": "1", "talon.data_dir": data, "talon.test": mark}
    made = {
        "left": docker_api.create_container(
            test_image, command=["true"], labels={**labels, "talon.engine": "earlier"}
        )["Id"],
        "ours": docker_api.create_container(
            test_image, command=["true"], labels={**labels, "talon.engine": "now"}
        )["Id"],
        "other": docker_api.create_container(
            test_image,
            command=["true"],
            labels={**labels, "talon.data_dir": data + "-other", "talon.engine": "x"},
        )["Id"],
    }
    try:
        listed = {c["Id"] for c in docker._listed_over_socket(data) or []}
        assert listed == {made["left"], made["ours"]}
        sdk = docker_api.containers(all=True, filters={"label": f"talon.data_dir={data}"})
        assert listed == {c["Id"] for c in sdk}
        reaped = docker.reap_leftovers(data, keep_engine="now")
        assert [r["container_id"] for r in reaped] == [made["left"]]
        assert docker.reap_leftovers(data, keep_engine="now") == []
        left = {c["Id"] for c in docker_api.containers(all=True, filters={"label": "talon.test"})}
        assert made["ours"] in left and made["other"] in left and made["left"] not in left
    finally:
        from docker.errors import NotFound

        for cid in made.values():
            try:
                docker_api.remove_container(cid, force=True)
            except NotFound:  # reaped
                continue


def test_nothing_to_reap_and_ping_load_no_sdk(docker_api, tmp_path):
    code = (
        "import json, sys\n"
        "from talon_tui.engine.broker import docker\n"
        f"reaped = docker.reap_leftovers({str(tmp_path / 'fresh')!r}, keep_engine='now')\n"
        "print(json.dumps([reaped, docker.ping(), 'docker' in sys.modules]))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, env=env
    )
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == [[], True, False]
