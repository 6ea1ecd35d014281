"""Fixtures for tests that need the real Docker engine (import them into a test module).

No engine, or no test image: the tests are skipped with the reason, unless
TALON_REQUIRE_DOCKER=1 (CI), where they fail instead. The test image is the busybox-static
image `.ci/docker-up` imports: TALON_TEST_IMAGE, else `.ci/.test-image-id`, else whatever
`talon-test/busybox:latest` names locally. Nothing is ever pulled.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest

from talon_tui.engine.errors import ToolError

REPO = Path(__file__).resolve().parents[2]
TEST_TAG = "talon-test/busybox:latest"
TEST_LABEL = "talon-test.id"


def _unavailable(reason: str) -> None:
    if os.environ.get("TALON_REQUIRE_DOCKER") == "1":
        pytest.fail(f"TALON_REQUIRE_DOCKER=1 but {reason}", pytrace=False)
    pytest.skip(f"{reason} (run `bash .ci/docker-up`, or set TALON_REQUIRE_DOCKER=1 to fail)")


@pytest.fixture(scope="session")
def docker_api():
    """A low-level docker APIClient for the local engine."""
    from talon_tui.engine.broker.docker import connect

    try:
        return connect()
    except ToolError as exc:
        _unavailable(f"no Docker engine reachable ({exc.message})")


@pytest.fixture(scope="session")
def test_image(docker_api) -> str:
    """The test image's id (`sha256:<64 hex>`), checked to be present locally."""
    from docker.errors import ImageNotFound

    image = os.environ.get("TALON_TEST_IMAGE", "").strip()
    id_file = REPO / ".ci" / ".test-image-id"
    if not image and id_file.exists():
        image = id_file.read_text().strip()
    try:
        info = docker_api.inspect_image(image or TEST_TAG)
    except ImageNotFound:
        _unavailable(f"test image {image or TEST_TAG} is not loaded")
    if image and info["Id"] != image:
        _unavailable(f"test image {image} resolved to another id {info['Id']}")
    return info["Id"]


@pytest.fixture
def test_labels(docker_api):
    """Labels for this test's containers; afterwards, none of them may remain."""
    value = uuid.uuid4().hex
    yield {TEST_LABEL: value}
    left = docker_api.containers(all=True, filters={"label": f"{TEST_LABEL}={value}"})
    for c in left:
        docker_api.remove_container(c["Id"], force=True)
    assert left == [], f"containers left behind: {[c['Id'][:12] for c in left]}"


def containers_with(docker_api, labels: dict[str, str]) -> list[dict]:
    ((key, value),) = labels.items()
    return docker_api.containers(all=True, filters={"label": f"{key}={value}"})
