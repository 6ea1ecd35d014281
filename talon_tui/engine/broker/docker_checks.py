"""docker.run's input checks: strict params, command/env/input limits, the image rule and the
mount rule. Pure and fast (no Docker call), so refusals happen before any engine is contacted.
"""

from __future__ import annotations

import json
import os
import posixpath
import re
import stat
from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError

from ..errors import BadRequest, ConstraintViolation, ToolError
from ..policy.checks import image_allowed, image_is_pinned
from ..policy.models import DockerRunParams, MountSpec, format_validation_error
from .files import open_host_path

CONTAINER_UID = 65534
WORKDIR = "/work"
TMP_DIR = "/tmp"  # noqa: S108 - a path inside the container, on its own tmpfs
# Owned by the container user: runc keeps the image directory's mode on a tmpfs, so a
# `mode=` option would not make a root-owned 0755 /tmp writable.
TMPFS_OPTIONS = f"rw,noexec,nosuid,nodev,size=64m,uid={CONTAINER_UID},gid={CONTAINER_UID}"
MAX_ARGS = 256
MAX_ARG_BYTES = 128 * 1024
MAX_ENV = 128
MAX_ENV_BYTES = 64 * 1024
MAX_INPUT_BYTES = 8 << 20

ENV_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")
LABEL_KEY_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{0,127}$")

# Host paths a container must never see, even read-only: a read-only bind of a Unix socket
# still lets a process connect to it, and the engine's socket is root on the host.
ENGINE_SOCKETS = (
    "/var/run/docker.sock",
    "/run/docker.sock",
    "/run/containerd/containerd.sock",
    "/var/run/containerd/containerd.sock",
)
FORBIDDEN_MOUNT_TREES = ("/proc", "/sys", "/dev")
RESERVED_TARGETS = ("/", TMP_DIR, WORKDIR, "/proc", "/sys", "/dev")


def validate_params(raw: DockerRunParams | Mapping[str, Any]) -> DockerRunParams:
    """Strictly validate intent params; unknown keys (privileged, volumes, user, ...) are
    refused by name and never reach Docker."""
    if isinstance(raw, DockerRunParams):
        # Re-validate: the object may have been built with model_construct or mutated.
        raw = raw.model_dump(warnings=False)
    if not isinstance(raw, Mapping):
        raise BadRequest("docker.run params must be a JSON object")
    allowed = set(DockerRunParams.model_fields)
    extra = sorted(str(k) for k in raw if k not in allowed)
    if extra:
        raise ConstraintViolation(
            f"docker.run refuses params {', '.join(extra)}: only {', '.join(sorted(allowed))} "
            "may be given; the broker sets every container option itself",
            details={"refused_params": extra},
        )
    try:
        params = DockerRunParams.model_validate(dict(raw), strict=True)
    except ValidationError as exc:
        raise BadRequest(f"invalid docker.run params: {format_validation_error(exc)}") from exc
    _check_command(params.command)
    _check_env(params.env)
    return params


def _check_command(command: list[str] | None) -> None:
    if command is None:
        return
    if not command:
        raise BadRequest("command must not be an empty list (omit it to use the image's own)")
    if len(command) > MAX_ARGS:
        raise BadRequest(f"command has {len(command)} arguments; at most {MAX_ARGS}")
    size = 0
    for arg in command:
        if "\x00" in arg:
            raise BadRequest("command arguments must not contain NUL bytes")
        size += len(arg.encode("utf-8", "surrogatepass"))
    if size > MAX_ARG_BYTES:
        raise BadRequest(f"command is {size} bytes; at most {MAX_ARG_BYTES}")


def _check_env(env: Mapping[str, str]) -> None:
    if len(env) > MAX_ENV:
        raise BadRequest(f"env has {len(env)} variables; at most {MAX_ENV}")
    size = 0
    for name, value in env.items():
        if not ENV_NAME_RE.match(name):
            raise BadRequest(
                f"env name {name!r} is not a variable name (letters, digits, _; not a digit first)"
            )
        if "\x00" in value:
            raise BadRequest(f"env {name} must not contain NUL bytes")
        size += len(name) + len(value.encode("utf-8", "surrogatepass")) + 2
    if size > MAX_ENV_BYTES:
        raise BadRequest(f"env is {size} bytes; at most {MAX_ENV_BYTES}")


def encode_input(value: Any) -> bytes:
    if value is None:
        return b""
    try:
        data = json.dumps(value, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
        # One line: skills reading a line (readline, `read`) get the whole input.
        encoded = data.encode("utf-8") + b"\n"
    except (TypeError, ValueError, UnicodeEncodeError) as exc:
        raise BadRequest(f"input is not JSON: {exc}") from exc
    if len(encoded) > MAX_INPUT_BYTES:
        raise BadRequest(f"input is {len(encoded)} bytes; at most {MAX_INPUT_BYTES}")
    return encoded


def check_image(image: str, images: list[str]) -> None:
    """The image must be pinned (digest or id, never a tag) and in the allowlist."""
    if not image_is_pinned(image):
        raise ConstraintViolation(
            f"image {image!r} is not pinned: give it as name@sha256:<digest> or sha256:<image id>"
            " (a tag can be moved to another image)",
            details={"image": image},
        )
    if not image_allowed(image, images):
        raise ConstraintViolation(
            f"image {image!r} is not in the allowed images of this override",
            details={"image": image, "allowed": list(images)},
        )


def check_mounts(mounts: list[MountSpec]) -> list[dict[str, Any]]:
    """Turn the constraints' mounts into read-only bind mounts, refusing dangerous ones.

    A source is used exactly as written, never resolved: it must be the real path (a symlink
    anywhere in it is refused) and no one but root or the engine's uid may be able to change
    what it names, so Docker resolves it to what was checked.
    """
    from docker.types import Mount

    out: list[dict[str, Any]] = []
    targets: set[str] = set()
    for m in mounts:
        if not m.read_only:
            raise ConstraintViolation(
                f"mount {m.source}:{m.target} is writable; the broker only gives containers "
                "read-only host directories",
                details={"mount": m.model_dump()},
            )
        for p in (m.source, m.target):
            if posixpath.normpath(p) != p or p.startswith("//") or "\x00" in p:
                raise ConstraintViolation(f"mount path {p!r} is not a normalized absolute path")
        tgt = m.target
        if tgt in RESERVED_TARGETS or _under(tgt, FORBIDDEN_MOUNT_TREES):
            raise ConstraintViolation(f"mount target {tgt!r} is reserved by the sandbox")
        if tgt in targets:
            raise ConstraintViolation(f"mount target {tgt!r} is listed twice")
        targets.add(tgt)
        src = m.source
        if src == "/" or _under(src, FORBIDDEN_MOUNT_TREES):
            raise ConstraintViolation(f"mount source {src!r} exposes the host system")
        for sock in (*ENGINE_SOCKETS, _docker_host_socket()):
            if sock and (src == sock or sock.startswith(src.rstrip("/") + "/")):
                raise ConstraintViolation(
                    f"mount source {src!r} would expose the container engine's socket"
                )
        _check_source_on_disk(src)
        out.append(Mount(target=tgt, source=src, type="bind", read_only=True))
    return out


def _check_source_on_disk(src: str) -> None:
    """Walk `src` from `/` without following symlinks, and require that nobody but root or the
    engine's uid can change what it names until Docker resolves it (SECURITY.md "Mount sources
    cannot be redirected"): a directory or regular file, reached through directories that no
    one else can rename entries in."""
    try:
        fd = open_host_path(src, what="mount source", check=_not_redirectable)
    except ToolError as exc:
        raise ConstraintViolation(exc.message, details={"source": src}) from None
    try:
        st = os.fstat(fd)
    finally:
        os.close(fd)
    if stat.S_ISSOCK(st.st_mode):
        raise ConstraintViolation(f"mount source {src!r} is a socket")
    if not (stat.S_ISDIR(st.st_mode) or stat.S_ISREG(st.st_mode)):
        raise ConstraintViolation(
            f"mount source {src!r} is not a directory or a regular file", details={"source": src}
        )


def trusted_uids() -> frozenset[int]:
    """Owners whose directories may lead to a mount source: root and the engine's uid."""
    return frozenset({0, os.geteuid()})


def _not_redirectable(shown: str, parent: os.stat_result, st: os.stat_result) -> None:
    """`shown`'s parent directory must not let anyone but a trusted uid rename or replace the
    entry `shown`: owned by a trusted uid, and not group- or world-writable unless sticky with
    `shown` itself owned by a trusted uid (as /tmp, then a directory of the engine's)."""
    trusted = trusted_uids()
    where = posixpath.dirname(shown) or "/"
    if parent.st_uid not in trusted:
        raise ConstraintViolation(
            f"mount source path: {where!r} belongs to uid {parent.st_uid}, who could swap "
            f"{shown!r} before Docker mounts it; only root or the engine's uid may own the "
            "directories leading to a mount source",
            details={"directory": where, "uid": parent.st_uid},
        )
    if parent.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        if parent.st_mode & stat.S_ISVTX and st.st_uid in trusted:
            return
        raise ConstraintViolation(
            f"mount source path: {where!r} is writable by others "
            f"(mode {stat.S_IMODE(parent.st_mode):o}), who could swap {shown!r} before Docker "
            "mounts it",
            details={"directory": where},
        )


def _under(path: str, trees: tuple[str, ...]) -> bool:
    return any(path == t or path.startswith(t + "/") for t in trees)


def _docker_host_socket() -> str | None:
    host = os.environ.get("DOCKER_HOST", "")
    if host.startswith("unix://"):
        return os.path.realpath(host.removeprefix("unix://"))
    return None
