"""docker.run checks that must refuse before Docker is touched (no engine needed).

Every refused call gets a client that fails the test on any use: a refusal that reached the
engine, even to inspect an image, is a bug.
"""

from __future__ import annotations

import socket

import pytest

from talon_tui.engine.broker import docker as dk
from talon_tui.engine.broker.docker import (
    check_mounts,
    resolve_image,
    run_docker,
    validate_params,
)
from talon_tui.engine.broker.docker_checks import MAX_INPUT_BYTES
from talon_tui.engine.errors import BadRequest, ConstraintViolation, ToolError
from talon_tui.engine.policy.models import DockerConstraints, DockerRunParams, MountSpec
from talon_tui.engine.runtime.skills import parse_skill_answer

IMAGE_ID = "sha256:" + "ab" * 32
OTHER_ID = "sha256:" + "cd" * 32
DIGEST_REF = "example.org/skills/echo@sha256:" + "ef" * 32


class EngineTrap:
    """A docker client that must never be used."""

    def __getattr__(self, name):
        raise AssertionError(f"Docker was called ({name}) for a request that must be refused")


def cons(**kw) -> DockerConstraints:
    kw.setdefault("images", [IMAGE_ID])
    return DockerConstraints(**kw)


@pytest.mark.parametrize(
    "extra",
    [
        {"privileged": True},
        {"network_mode": "host"},
        {"volumes": {"/": {"bind": "/host", "mode": "rw"}}},
        {"user": "0:0"},
        {"cap_add": ["SYS_ADMIN"]},
        {"entrypoint": ["/bin/sh"]},
        {"host_config": {"Privileged": True}},
        {"runtime": "runc"},
        {"mounts": ["/:/host"]},
        {"security_opt": ["seccomp=unconfined"]},
        {"pid_mode": "host"},
        {"Image": IMAGE_ID},
    ],
)
def test_extra_params_refused_before_docker(extra):
    raw = {"image": IMAGE_ID, "command": ["true"], **extra}
    with pytest.raises(ConstraintViolation) as exc:
        run_docker(raw, cons(), client=EngineTrap())
    assert exc.value.details["refused_params"] == sorted(extra)
    assert "refuses params" in exc.value.message


def test_constructed_params_are_revalidated():
    # model_construct skips validation: the broker validates again.
    p = DockerRunParams.model_construct(image=IMAGE_ID, command="sh -c id", env={})
    with pytest.raises(BadRequest, match="command"):
        run_docker(p, cons(), client=EngineTrap())


@pytest.mark.parametrize(
    "image",
    [
        "talon-test/busybox:latest",
        "talon-test/busybox",
        "busybox",
        "sha256:" + "ab" * 31,  # short id
        "sha256:" + "AB" * 32,  # upper-case hex
        "ab" * 32,  # bare hex
        IMAGE_ID + " ",
        " " + IMAGE_ID,
        "sha256:" + "ab" * 32 + "\n",
        "x@sha256:" + "ab" * 31,
    ],
)
def test_unpinned_image_refused_even_when_listed(image):
    c = DockerConstraints(images=[IMAGE_ID, image.strip() or "x"])
    with pytest.raises(ConstraintViolation):
        run_docker({"image": image}, c, client=EngineTrap())


def test_tag_refused_with_a_reason():
    c = DockerConstraints(images=["talon-test/busybox:latest"])
    with pytest.raises(ConstraintViolation, match="not pinned"):
        run_docker({"image": "talon-test/busybox:latest"}, c, client=EngineTrap())


def test_image_not_in_allowlist_refused():
    with pytest.raises(ConstraintViolation, match="not in the allowed images"):
        run_docker({"image": OTHER_ID}, cons(), client=EngineTrap())
    with pytest.raises(ConstraintViolation, match="not in the allowed images"):
        run_docker({"image": DIGEST_REF}, cons(), client=EngineTrap())


@pytest.mark.parametrize(
    "env",
    [{"A=B": "x"}, {"1X": "x"}, {"": "x"}, {"A B": "x"}, {"A": "x\x00y"}, {"A\x00": "x"}],
)
def test_bad_env_refused(env):
    with pytest.raises(BadRequest):
        run_docker({"image": IMAGE_ID, "env": env}, cons(), client=EngineTrap())


@pytest.mark.parametrize(
    "command",
    [[], ["sh", "a\x00b"], [1, 2], "id", [["nested"]], ["x"] * 300, ["x" * 200_000]],
)
def test_bad_command_refused(command):
    with pytest.raises(BadRequest):
        run_docker({"image": IMAGE_ID, "command": command}, cons(), client=EngineTrap())


def test_env_values_must_be_strings():
    with pytest.raises(BadRequest):
        run_docker({"image": IMAGE_ID, "env": {"A": 1}}, cons(), client=EngineTrap())


@pytest.mark.parametrize("value", [float("nan"), float("inf"), {1, 2}, b"bytes"])
def test_input_must_be_json(value):
    with pytest.raises(BadRequest, match="input is not JSON"):
        run_docker({"image": IMAGE_ID, "input": value}, cons(), client=EngineTrap())


def test_input_size_is_capped():
    with pytest.raises(BadRequest, match="input is"):
        run_docker(
            {"image": IMAGE_ID, "input": "x" * (MAX_INPUT_BYTES + 1)},
            cons(),
            client=EngineTrap(),
        )


def test_params_must_be_an_object():
    with pytest.raises(BadRequest):
        validate_params(["image", IMAGE_ID])


def test_require_signed_without_verifier_refused():
    with pytest.raises(ConstraintViolation, match="signed skills only"):
        run_docker({"image": IMAGE_ID}, cons(require_signed=True), client=EngineTrap())


@pytest.mark.parametrize("runtime", ["", "run sc", "../runc", "runc;rm", "-x"])
def test_bad_runtime_name_refused(runtime):
    with pytest.raises(BadRequest):
        run_docker({"image": IMAGE_ID}, cons(), runtime=runtime, client=EngineTrap())


def test_reserved_labels_refused():
    for key in ("talon", "talon.run", "Bad Key"):
        with pytest.raises(BadRequest):
            run_docker({"image": IMAGE_ID}, cons(), client=EngineTrap(), labels={key: "x"})


# --------------------------------------------------------------------------- mounts


def test_writable_mount_refused(tmp_path):
    m = MountSpec(source=str(tmp_path), target="/data", read_only=False)
    with pytest.raises(ConstraintViolation, match="writable"):
        run_docker({"image": IMAGE_ID}, cons(mounts=[m]), client=EngineTrap())


@pytest.mark.parametrize(
    "source", ["/", "/var/run", "/run", "/var/run/docker.sock", "/proc", "/proc/1", "/sys", "/dev"]
)
def test_dangerous_mount_sources_refused(source):
    m = MountSpec(source=source, target="/data")
    with pytest.raises(ConstraintViolation):
        check_mounts([m])


def test_symlink_to_engine_socket_dir_refused(tmp_path):
    link = tmp_path / "innocent"
    link.symlink_to("/var/run")
    with pytest.raises(ConstraintViolation, match="symlinks are never followed"):
        check_mounts([MountSpec(source=str(link), target="/data")])


def test_socket_mount_source_refused(tmp_path):
    path = tmp_path / "s.sock"
    s = socket.socket(socket.AF_UNIX)
    try:
        s.bind(str(path))
        with pytest.raises(ConstraintViolation, match="socket"):
            check_mounts([MountSpec(source=str(path), target="/data")])
    finally:
        s.close()


def test_docker_host_socket_refused(tmp_path, monkeypatch):
    (tmp_path / "engine").mkdir()
    sock = tmp_path / "engine" / "d.sock"
    sock.write_text("")
    monkeypatch.setenv("DOCKER_HOST", f"unix://{sock}")
    with pytest.raises(ConstraintViolation, match="engine's socket"):
        check_mounts([MountSpec(source=str(tmp_path), target="/data")])


@pytest.mark.parametrize(
    "target", ["/", "/tmp", "/work", "/proc", "/proc/sys", "/sys/fs", "/dev/x", "/a/../tmp", "/a/"]
)
def test_reserved_or_unclean_mount_targets_refused(tmp_path, target):
    with pytest.raises(ConstraintViolation):
        check_mounts([MountSpec(source=str(tmp_path), target=target)])


def test_missing_mount_source_refused(tmp_path):
    with pytest.raises(ConstraintViolation, match="does not exist"):
        check_mounts([MountSpec(source=str(tmp_path / "nope"), target="/data")])


def test_duplicate_mount_target_refused(tmp_path):
    m = MountSpec(source=str(tmp_path), target="/data")
    with pytest.raises(ConstraintViolation, match="twice"):
        check_mounts([m, m])


def test_allowed_mount_is_read_only_bind(tmp_path):
    (mount,) = check_mounts([MountSpec(source=str(tmp_path), target="/data")])
    assert mount["Type"] == "bind"
    assert mount["ReadOnly"] is True
    assert mount["Source"] == str(tmp_path)  # used as written: no symlink in it
    assert mount["Target"] == "/data"


# --------------------------------------------------------------------------- image resolution


class FakeImages:
    def __init__(self, info=None, error=None):
        self.info, self.error = info, error

    def inspect_image(self, ref):
        if self.error:
            raise self.error
        return self.info


def test_image_id_resolving_elsewhere_refused():
    with pytest.raises(ConstraintViolation, match="different image"):
        resolve_image(FakeImages({"Id": OTHER_ID}), IMAGE_ID)


def test_digest_must_be_among_repo_digests():
    name = DIGEST_REF.split("@")[0]
    info = {
        "Id": OTHER_ID,
        "RepoDigests": [f"{name}@sha256:{'00' * 32}", f"other@{DIGEST_REF.split('@')[1]}"],
    }
    with pytest.raises(ConstraintViolation, match="does not carry that digest"):
        resolve_image(FakeImages(info), DIGEST_REF)
    info["RepoDigests"].append(DIGEST_REF)
    assert resolve_image(FakeImages(info), DIGEST_REF)["Id"] == OTHER_ID


def test_docker_hub_names_compare_in_familiar_form():
    digest = "sha256:" + "12" * 32
    info = {"Id": IMAGE_ID, "RepoDigests": [f"busybox@{digest}"]}
    assert resolve_image(FakeImages(info), f"docker.io/library/busybox@{digest}")["Id"] == IMAGE_ID


def test_odd_image_id_from_engine_refused():
    with pytest.raises(ToolError, match="unexpected id"):
        resolve_image(FakeImages({"Id": "sha256:xyz"}), IMAGE_ID)


def test_missing_image_is_a_clear_error_and_never_pulled():
    from docker.errors import ImageNotFound

    with pytest.raises(ToolError, match="never pulls"):
        resolve_image(FakeImages(error=ImageNotFound("no such image")), IMAGE_ID)


def test_no_engine_reachable(monkeypatch, tmp_path):
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/nothing.sock")
    monkeypatch.setattr(dk, "_default_api", None)
    with pytest.raises(ToolError, match="no Docker engine reachable"):
        run_docker({"image": IMAGE_ID, "command": ["true"]}, cons())
    assert dk._default_api is None


# --------------------------------------------------------------------------- frames, answers


def frame(kind: int, data: bytes) -> bytes:
    return bytes([kind, 0, 0, 0]) + len(data).to_bytes(4, "big") + data


def test_output_frames_split_across_reads_and_capped():
    out = dk._Output(cap=10)
    stream = frame(1, b"hello ") + frame(2, b"err") + frame(1, b"world!!")
    for i in range(0, len(stream), 3):
        out.feed(stream[i : i + 3])
    assert bytes(out.stdout) == b"hello w"
    assert bytes(out.stderr) == b"err"
    assert out.total == 10
    assert out.truncated


def test_output_exactly_at_cap_is_not_truncated():
    out = dk._Output(cap=5)
    out.feed(frame(1, b"12345"))
    assert not out.truncated and bytes(out.stdout) == b"12345"


@pytest.mark.parametrize(
    ("stdout", "expected"),
    [
        ('{"answer": 1}', {"answer": 1}),
        ('  \n{"intents": [{"tool": "file.read"}]}\n', {"intents": [{"tool": "file.read"}]}),
        ("[1, 2]", None),
        ("null", None),
        ("", None),
        ("not json", None),
        ('{"a": 1} trailing', None),
        ('{"a": 1}\n{"b": 2}', None),
        ('{"tool": "file.read", "tool": "shell.exec"}', None),
        ('{"a": NaN}', None),
        ('{"a": Infinity}', None),
        ("{" * 100_000, None),
    ],
)
def test_parse_skill_answer(stdout, expected):
    assert parse_skill_answer(stdout) == expected
