"""docker.run: run one pinned, allowlisted image in a locked-down, throw-away container.

Every container gets a read-only root, no capabilities, no-new-privileges, pids/memory/cpu
limits, no network unless the constraints allow it, a non-root user, a private (empty) IPC
namespace, noexec tmpfs at /tmp and /work, and no host mounts except read-only ones the
constraints list. The image is resolved locally (never pulled) and run by the image id that
was checked, so a re-tag cannot swap it. The intent's `input` is written as JSON to stdin;
stdout and stderr are read from the attach stream with one byte cap; the container is killed
on timeout or when the cap is exceeded, and is always removed.

No container outlives its timeout, even if the engine dies: see `containers.py` (labels,
watchdog, removal) and `reap_leftovers` here.
"""

from __future__ import annotations

import http.client
import json
import os
import posixpath
import re
import selectors
import socket
import ssl
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from ..errors import BadRequest, ConstraintViolation, ToolError
from ..policy.models import DockerConstraints, DockerRunParams
from .containers import (
    DATA_DIR_LABEL,
    ENGINE_LABEL,
    SESSION_LABEL,
    ContainerOwner,
    Watchdog,
    api_message,
    remove_container,
)
from .docker_checks import (
    CONTAINER_UID,
    LABEL_KEY_RE,
    TMP_DIR,
    TMPFS_OPTIONS,
    WORKDIR,
    check_image,
    check_mounts,
    encode_input,
    validate_params,
)

CONTAINER_USER = f"{CONTAINER_UID}:{CONTAINER_UID}"
LABEL = "talon"
RUN_LABEL = "talon.run"
IMAGE_ID_RE = re.compile(r"^sha256:[0-9a-f]{64}$")
RUNTIME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")

SkillCheck = Callable[[str, str], bool]
"""`skill_check(image, image_id)`: True when a verified signed skill names this image."""

_default_api: Any = None
_default_lock = threading.Lock()
_sdk_lock = threading.Lock()


def load_sdk() -> None:
    """Import the Docker SDK once, under a lock: two threads importing it for the first time
    at once (a docker.run and the start-up reaping) can see a half-initialized `docker.types`.
    ImportError when it is not installed."""
    with _sdk_lock:
        import docker  # noqa: F401


# --------------------------------------------------------------------------- engine access


def _api(client: Any) -> Any:
    """The low-level APIClient: from the given client, or a lazily made shared one."""
    global _default_api
    if client is not None:
        return getattr(client, "api", client)
    with _default_lock:
        if _default_api is None:
            _default_api = connect()
        return _default_api


def connect() -> Any:
    """A docker APIClient for the engine named by the environment (DOCKER_HOST or the local
    socket); ToolError if none answers."""
    load_sdk()
    import docker
    from docker.errors import DockerException
    from requests.exceptions import RequestException

    try:
        client = docker.from_env(timeout=60)
        client.ping()
    except (DockerException, RequestException, OSError) as exc:
        raise ToolError(
            f"no Docker engine reachable: {exc}", details={"docker_host": _docker_host_label()}
        ) from exc
    return client.api


def _docker_host_label() -> str:
    return os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"


def resolve_image(api: Any, image: str) -> dict[str, Any]:
    """Inspect the pinned image locally (never pull) and check it is exactly the one asked:
    the same image id, or a repo digest equal to the one asked."""
    from docker.errors import APIError, ImageNotFound

    try:
        info = api.inspect_image(image)
    except ImageNotFound as exc:
        raise ToolError(
            f"image {image!r} is not present on this Docker engine; Talon never pulls images, "
            "load it with `docker load` or `docker import` first",
            details={"image": image},
        ) from exc
    except APIError as exc:
        raise ToolError(f"could not inspect image {image!r}: {api_message(exc)}") from exc
    image_id = info.get("Id", "")
    if not IMAGE_ID_RE.match(image_id):
        raise ToolError(f"Docker reported an unexpected id {image_id!r} for {image!r}")
    if "@" in image:
        name, _, digest = image.partition("@")
        if not any(_same_repo_digest(rd, name, digest) for rd in info.get("RepoDigests") or []):
            raise ConstraintViolation(
                f"the local image found for {image!r} does not carry that digest",
                details={"image": image, "image_id": image_id},
            )
    elif image_id != image:
        raise ConstraintViolation(
            f"Docker resolved {image!r} to a different image {image_id!r}",
            details={"image": image, "image_id": image_id},
        )
    return info


def _same_repo_digest(repo_digest: str, name: str, digest: str) -> bool:
    rname, _, rdigest = repo_digest.partition("@")
    return rdigest == digest and _familiar(rname) == _familiar(name)


def _familiar(name: str) -> str:
    """Compare repository names as Docker shows them; a tag beside a digest is ignored."""
    last = name.rsplit("/", 1)
    if ":" in last[-1]:
        name = name[: len(name) - len(last[-1])] + last[-1].split(":", 1)[0]
    for prefix in ("docker.io/library/", "index.docker.io/library/", "docker.io/"):
        if name.startswith(prefix):
            return name.removeprefix(prefix)
    return name


# --------------------------------------------------------------------------- run


def run_docker(
    params: DockerRunParams | Mapping[str, Any],
    constraints: DockerConstraints,
    *,
    runtime: str | None = None,
    client: Any = None,
    skill_check: SkillCheck | None = None,
    labels: Mapping[str, str] | None = None,
    owner: ContainerOwner | None = None,
) -> dict[str, Any]:
    """Run one docker.run intent and return `{image, image_id, exit_code, stdout, stderr,
    timed_out, truncated}`.

    Raises ConstraintViolation (nothing was created) for refused params, an unpinned or
    unlisted image, a bad mount or an unverified skill; BadRequest for malformed params;
    ToolError when Docker is unreachable, the image is missing or the engine fails.
    `runtime` (e.g. "runsc") is used for the container when given; `client` is a docker
    DockerClient or APIClient (default: one from the environment); `labels` are added to the
    container's labels (the broker's own `talon` labels cannot be overridden); `owner` names
    the engine (data dir, instance, session) in the container's labels for reaping.
    """
    load_sdk()
    p = validate_params(params)
    if not isinstance(constraints, DockerConstraints):
        raise BadRequest("docker.run needs DockerConstraints")
    check_image(p.image, constraints.images)
    stdin_data = encode_input(p.input)
    mounts = check_mounts(constraints.mounts)
    if runtime is not None and not RUNTIME_RE.match(runtime):
        raise BadRequest(f"runtime {runtime!r} is not a runtime name")
    if constraints.require_signed and skill_check is None:
        raise ConstraintViolation(
            "this override runs signed skills only, and no skill verifier is configured"
        )
    run_id = uuid.uuid4().hex
    all_labels = _labels(labels, run_id, owner)

    api = _api(client)
    info = resolve_image(api, p.image)
    image_id: str = info["Id"]
    if constraints.require_signed and skill_check is not None:
        if not skill_check(p.image, image_id):
            raise ConstraintViolation(
                f"image {p.image!r} is not a registered skill with a verified signature",
                details={"image": p.image, "image_id": image_id},
            )

    host_config = _host_config(api, constraints, mounts, info, runtime)
    return _run_container(
        api,
        image=p.image,
        image_id=image_id,
        command=p.command,
        env=p.env,
        stdin_data=stdin_data,
        host_config=host_config,
        labels=all_labels,
        timeout=constraints.timeout_seconds,
        cap=constraints.max_output_bytes,
    )


def _labels(
    extra: Mapping[str, str] | None, run_id: str, owner: ContainerOwner | None = None
) -> dict[str, str]:
    out: dict[str, str] = {}
    for k, v in (extra or {}).items():
        if not isinstance(k, str) or not LABEL_KEY_RE.match(k) or not isinstance(v, str):
            raise BadRequest(f"label {k!r} is not a label name with a string value")
        if k == LABEL or k.startswith(LABEL + "."):
            raise BadRequest(f"label {k!r} is reserved for the broker")
        out[k] = v
    out[LABEL] = "1"
    out[RUN_LABEL] = run_id
    if owner is not None:
        out.update(owner.labels())
    return out


def _host_config(
    api: Any,
    c: DockerConstraints,
    mounts: list[dict[str, Any]],
    info: Mapping[str, Any],
    runtime: str | None,
) -> dict[str, Any]:
    from docker.types import LogConfig, Ulimit

    tmpfs = {TMP_DIR: TMPFS_OPTIONS, WORKDIR: TMPFS_OPTIONS}
    # An image's VOLUME would become a writable anonymous volume on the host disk; cover
    # each one with a small noexec tmpfs instead.
    for vol in sorted(((info.get("Config") or {}).get("Volumes") or {}).keys()):
        vol = posixpath.normpath(vol)
        if vol not in tmpfs and not any(vol == m["Target"] for m in mounts):
            tmpfs[vol] = TMPFS_OPTIONS
    memory = c.memory_mb * 1024 * 1024
    return api.create_host_config(
        read_only=True,
        cap_drop=["ALL"],
        security_opt=["no-new-privileges:true"],
        privileged=False,
        pids_limit=c.pids_limit,
        mem_limit=memory,
        memswap_limit=memory,
        nano_cpus=round(c.cpus * 1_000_000_000),
        network_mode="bridge" if c.network else "none",
        ipc_mode="none",
        tmpfs=tmpfs,
        mounts=mounts or None,
        ulimits=[Ulimit(name="core", soft=0, hard=0), Ulimit(name="nofile", soft=1024, hard=1024)],
        # Output is read from the attach stream; nothing is written to the host's disk.
        log_config=LogConfig(type="none"),
        runtime=runtime,
        auto_remove=False,
        publish_all_ports=False,
    )


@dataclass
class _Output:
    cap: int
    stdout: bytearray = field(default_factory=bytearray)
    stderr: bytearray = field(default_factory=bytearray)
    total: int = 0
    truncated: bool = False
    pending: bytearray = field(default_factory=bytearray)

    def feed(self, chunk: bytes) -> None:
        """Split the attach stream's frames (8-byte header: stream, 0, 0, 0, size) and keep
        at most `cap` payload bytes in all."""
        self.pending += chunk
        while len(self.pending) >= 8 and not self.truncated:
            size = int.from_bytes(self.pending[4:8], "big")
            if len(self.pending) < 8 + size:
                return
            kind = self.pending[0]
            payload = bytes(self.pending[8 : 8 + size])
            del self.pending[: 8 + size]
            take = min(len(payload), self.cap - self.total)
            target = self.stderr if kind in (2, 3) else self.stdout
            target += payload[:take]
            self.total += take
            if take < len(payload):
                self.truncated = True


def _run_container(
    api: Any,
    *,
    image: str,
    image_id: str,
    command: list[str] | None,
    env: Mapping[str, str],
    stdin_data: bytes,
    host_config: dict[str, Any],
    labels: dict[str, str],
    timeout: int,
    cap: int,
) -> dict[str, Any]:
    from docker.errors import APIError, NotFound
    from requests.exceptions import RequestException

    name = f"talon-{labels[RUN_LABEL]}"
    container_id: str | None = None
    watchdog: Watchdog | None = None
    removed = False
    sock: Any = None
    out = _Output(cap=cap)
    timed_out = False
    exit_code: int | None = None
    try:
        try:
            created = api.create_container(
                image=image_id,
                command=command,
                name=name,
                user=CONTAINER_USER,
                working_dir=WORKDIR,
                environment=[f"{k}={v}" for k, v in env.items()],
                stdin_open=True,
                tty=False,
                labels=labels,
                host_config=host_config,
                # docker-py would copy proxy settings from ~/.docker/config.json into env.
                use_config_proxy=False,
            )
            container_id = created["Id"]
            watchdog = Watchdog.spawn(container_id, timeout)
            sock = api.attach_socket(
                container_id, params={"stdin": 1, "stdout": 1, "stderr": 1, "stream": 1}
            )
            api.start(container_id)
            watchdog.started()
        except (APIError, RequestException) as exc:
            raise ToolError(f"Docker could not start the container: {api_message(exc)}") from exc
        deadline = time.monotonic() + timeout
        finished = _pump(_raw_socket(sock), stdin_data, out, deadline)
        timed_out = finished == "timeout"
        try:
            if finished == "eof":
                try:
                    remaining = max(deadline - time.monotonic(), 0.5)
                    exit_code = api.wait(container_id, timeout=remaining)["StatusCode"]
                except RequestException:
                    # The streams closed but the process kept running past the deadline.
                    timed_out = True
            if exit_code is None:
                # Drop the attach stream first: the engine does not finish a container whose
                # output it cannot deliver, so a kill would wait on our full socket.
                _close(sock)
                sock = None
                _kill(api, container_id)
                exit_code = api.wait(container_id, timeout=10)["StatusCode"]
        except NotFound:
            # The watchdog removed it at its deadline (this broker was too slow): it ran out.
            timed_out = True
        except (APIError, RequestException) as exc:
            raise ToolError(
                f"Docker failed while running the container: {api_message(exc)}"
            ) from exc
    finally:
        try:
            if sock is not None:
                _close(sock)
        finally:
            try:
                # By name too: a create call that failed late may still have made the container.
                remove_container(api, container_id or name)
                removed = True
            finally:
                if watchdog is not None:
                    # Not removed: the watchdog's end of file makes it retry the removal.
                    watchdog.finish(removed)
    return {
        "image": image,
        "image_id": image_id,
        "exit_code": exit_code,
        "stdout": out.stdout.decode("utf-8", "replace"),
        "stderr": out.stderr.decode("utf-8", "replace"),
        "timed_out": timed_out,
        "truncated": out.truncated,
    }


class _UnixHTTPConnection(http.client.HTTPConnection):
    """HTTP/1.1 to the Docker engine's Unix socket."""

    def __init__(self, path: str, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self._path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(self._path)
        except OSError:
            sock.close()
            raise
        self.sock = sock


def _local_socket() -> str | None:
    """The Unix socket the SDK's `from_env` would reach (DOCKER_HOST, else the default), or
    None when it would use another transport (tcp, ssh)."""
    host = _docker_host_label()
    return host.removeprefix("unix://") if host.startswith("unix:///") else None


def ping() -> bool:
    """Whether a Docker engine answers its ping: asked of the local socket with the standard
    library when the SDK would use that socket (no SDK import, ~0.18 s of CPU: `talon status`
    and the console ask), else with the SDK (`connect`)."""
    path = _local_socket()
    if path is None:
        try:
            connect()
        except ToolError:
            return False
        return True
    conn = _UnixHTTPConnection(path, 60.0)
    try:
        conn.request("GET", "/_ping")
        reply = conn.getresponse()
        return reply.status == 200 and reply.read().strip() == b"OK"
    except (OSError, http.client.HTTPException):
        return False
    finally:
        conn.close()


def _listed_over_socket(data_dir: str, timeout: float = 60.0) -> list[dict[str, Any]] | None:
    """Every container labelled with `data_dir`, as the SDK's `containers(all=True, filters=...)`
    lists it, asked of the local socket with the standard library; None when this cannot
    answer (another transport, an unexpected reply): the SDK then asks. ToolError, as
    `connect` says, when no engine listens on the socket."""
    path = _local_socket()
    if path is None:
        return None
    filters = json.dumps({"label": [f"{DATA_DIR_LABEL}={data_dir}"]})
    conn = _UnixHTTPConnection(path, timeout)
    try:
        conn.request("GET", "/containers/json?" + urlencode({"all": "1", "filters": filters}))
        reply = conn.getresponse()
        body = reply.read()
    except (FileNotFoundError, ConnectionRefusedError) as exc:
        raise ToolError(
            f"no Docker engine reachable: {exc}", details={"docker_host": _docker_host_label()}
        ) from exc
    except (OSError, http.client.HTTPException):
        return None
    finally:
        conn.close()
    if reply.status != 200:
        return None
    try:
        found = json.loads(body)
    except ValueError:
        return None
    if not isinstance(found, list) or not all(isinstance(c, dict) for c in found):
        return None
    return found


def _leftover(container: dict[str, Any], data_dir: str, keep_engine: str) -> bool:
    labels = container.get("Labels") or {}
    return labels.get(DATA_DIR_LABEL) == data_dir and labels.get(ENGINE_LABEL) != keep_engine


def reap_leftovers(data_dir: str, *, keep_engine: str, client: Any = None) -> list[dict[str, Any]]:
    """Force-remove every container labelled with `data_dir` that an engine instance other
    than `keep_engine` made (a crash left it); return what was removed, for the audit log.
    ToolError when Docker is unreachable.

    Every engine start calls this, and nearly always there is nothing to reap: the list is
    first asked of the local socket with the standard library, and the Docker SDK (docker,
    requests, urllib3: ~0.18 s of CPU per start, bench/startup_bench.py) is loaded only when a
    leftover is listed or that cannot answer; the SDK then lists again and removes."""
    if client is None:
        listed = _listed_over_socket(data_dir)
        if listed is not None and not any(_leftover(c, data_dir, keep_engine) for c in listed):
            return []
    load_sdk()
    from docker.errors import APIError
    from requests.exceptions import RequestException

    api = _api(client)
    try:
        found = api.containers(all=True, filters={"label": f"{DATA_DIR_LABEL}={data_dir}"})
    except (APIError, RequestException) as exc:
        raise ToolError(f"could not list containers: {api_message(exc)}") from exc
    reaped: list[dict[str, Any]] = []
    for c in found:
        if not _leftover(c, data_dir, keep_engine):
            continue
        labels = c.get("Labels") or {}
        remove_container(api, c["Id"])
        names = c.get("Names") or []
        reaped.append(
            {
                "container_id": c["Id"],
                "name": str(names[0]).lstrip("/") if names else "",
                "state": str(c.get("State", "")),
                "image_id": str(c.get("ImageID", "")),
                "engine": str(labels.get(ENGINE_LABEL, "")),
                "session": str(labels.get(SESSION_LABEL, "")),
            }
        )
    return reaped


def _raw_socket(sock: Any) -> socket.socket:
    raw = getattr(sock, "_sock", sock)
    if not isinstance(raw, socket.socket):
        raise ToolError("Docker attach did not give a socket (unsupported DOCKER_HOST transport)")
    return raw


def _pump(raw: socket.socket, data: bytes, out: _Output, deadline: float) -> str:
    """Write `data` to the container's stdin then close it, while reading its output.
    Returns "eof" (streams closed), "timeout" or "truncated"."""
    raw.setblocking(False)
    sel = selectors.DefaultSelector()
    view = memoryview(data)
    sent = 0
    writing = True
    try:
        if not data:
            writing = _close_stdin(raw)
        sel.register(raw, selectors.EVENT_READ | (selectors.EVENT_WRITE if writing else 0))
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return "timeout"
            for _key, mask in sel.select(timeout=remaining):
                if mask & selectors.EVENT_WRITE and writing:
                    try:
                        sent += raw.send(view[sent : sent + 65536])
                    except (BlockingIOError, ssl.SSLWantWriteError):
                        pass
                    except OSError:
                        # The container closed stdin or exited; its output still counts.
                        sent = len(data)
                    if sent >= len(data):
                        writing = _close_stdin(raw)
                        sel.modify(raw, selectors.EVENT_READ)
                if mask & selectors.EVENT_READ:
                    status = _read_available(raw, out)
                    if status is not None:
                        return status
    finally:
        sel.close()
        view.release()


def _read_available(raw: socket.socket, out: _Output) -> str | None:
    try:
        chunk = raw.recv(65536)
        while isinstance(raw, ssl.SSLSocket) and raw.pending():
            chunk += raw.recv(raw.pending())
    except (BlockingIOError, ssl.SSLWantReadError):
        return None
    except OSError:
        # The engine dropped the stream; wait() then tells whether the container ended.
        return "eof"
    if not chunk:
        return "eof"
    out.feed(chunk)
    return "truncated" if out.truncated else None


def _close_stdin(raw: socket.socket) -> bool:
    """Half-close the attach connection: Docker then closes the container's stdin."""
    try:
        raw.shutdown(socket.SHUT_WR)
    except OSError:
        pass
    return False


def _close(sock: Any) -> None:
    """Close the hijacked attach connection (the response first, then the socket)."""
    for obj in (getattr(sock, "_response", None), sock, getattr(sock, "_sock", None)):
        if obj is not None:
            try:
                obj.close()
            except (OSError, ValueError):
                pass


def _kill(api: Any, container_id: str) -> None:
    from docker.errors import APIError

    try:
        api.kill(container_id)
    except APIError as exc:
        # 409: it already stopped on its own; 404: its watchdog removed it. Either way it ended.
        if getattr(exc, "status_code", None) not in (404, 409):
            raise ToolError(f"could not kill container: {api_message(exc)}") from exc
