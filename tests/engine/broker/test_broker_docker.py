"""docker.run against the real engine: each test runs the busybox test image through the broker
and checks what the process inside could actually do. Each test also checks that none of its
containers is left behind (the `test_labels` fixture)."""

from __future__ import annotations

import json
import time

import pytest
from support.docker import containers_with

from talon_tui.engine.broker.docker import run_docker
from talon_tui.engine.errors import ConstraintViolation, ToolError
from talon_tui.engine.policy.models import DockerConstraints, MountSpec
from talon_tui.engine.runtime.skills import parse_skill_answer

pytestmark = pytest.mark.docker


@pytest.fixture
def run(docker_api, test_image, test_labels):
    """run(command, input=None, env=None, **constraints) -> result dict."""

    def _run(command, input=None, env=None, *, runtime=None, skill_check=None, **constraints):
        constraints.setdefault("images", [test_image])
        constraints.setdefault("timeout_seconds", 10)
        params = {"image": test_image, "command": command, "input": input, "env": env or {}}
        return run_docker(
            params,
            DockerConstraints(**constraints),
            client=docker_api,
            labels=test_labels,
            runtime=runtime,
            skill_check=skill_check,
        )

    return _run


def sh(script: str) -> list[str]:
    return ["sh", "-c", script]


def test_result_shape_and_exit_code(run, test_image):
    r = run(sh("echo out; echo err >&2; exit 7"))
    assert r == {
        "image": test_image,
        "image_id": test_image,
        "exit_code": 7,
        "stdout": "out\n",
        "stderr": "err\n",
        "timed_out": False,
        "truncated": False,
    }


def test_runs_as_nobody(run):
    r = run(sh("id -u; id -g; id -G"))
    assert r["stdout"].split() == ["65534", "65534", "65534"]


def test_no_capabilities_and_no_new_privileges(run):
    r = run(
        [
            "grep",
            "-E",
            "^(CapInh|CapPrm|CapEff|CapBnd|CapAmb|NoNewPrivs|Seccomp):",
            "/proc/self/status",
        ]
    )
    fields = dict(line.split(":\t") for line in r["stdout"].splitlines())
    for cap in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"):
        assert fields[cap] == "0000000000000000", (cap, fields)
    assert fields["NoNewPrivs"] == "1"
    assert fields["Seccomp"] == "2"  # the engine's default seccomp filter stays on


def test_root_is_read_only_but_work_and_tmp_are_writable(run):
    r = run(
        sh(
            "touch /x; echo root=$?; touch /bin/x; echo bin=$?; pwd; "
            "echo hi > /work/f && cat /work/f; echo t > /tmp/t && cat /tmp/t"
        )
    )
    lines = r["stdout"].splitlines()
    assert lines[0] != "root=0" and lines[1] != "bin=0"
    assert "Read-only file system" in r["stderr"]
    assert lines[2:] == ["/work", "hi", "t"]


def test_mount_options(run):
    r = run(["cat", "/proc/mounts"])
    mounts = {}
    for line in r["stdout"].splitlines():
        _dev, target, fstype, opts, *_ = line.split()
        mounts[target] = (fstype, set(opts.split(",")))
    assert "ro" in mounts["/"][1]
    for target in ("/tmp", "/work"):
        fstype, opts = mounts[target]
        assert fstype == "tmpfs"
        assert {"rw", "noexec", "nosuid", "nodev"} <= opts, (target, opts)
    assert "/dev/shm" not in mounts  # ipc_mode none: no shared memory mount
    assert not any(t.startswith("/var/run") or "docker.sock" in t for t in mounts)


def test_tmp_and_work_are_noexec(run):
    r = run(
        sh(
            "cp /bin/busybox /tmp/bb && echo copied; /tmp/bb echo EXEC-TMP; echo tmp=$?; "
            "cp /bin/busybox /work/bb && /work/bb echo EXEC-WORK; echo work=$?"
        )
    )
    assert "copied" in r["stdout"]  # the write worked, so the failure is noexec
    assert "EXEC-" not in r["stdout"]
    assert "tmp=126" in r["stdout"] and "work=126" in r["stdout"]


def test_no_network_unless_allowed(run):
    r = run(["cat", "/proc/net/dev"])
    interfaces = {line.split(":")[0].strip() for line in r["stdout"].splitlines()[2:]}
    assert interfaces == {"lo"}
    r = run(sh("wget -q -T 2 -O- http://192.0.2.1/ >/dev/null 2>&1; echo rc=$?"))
    assert r["stdout"].strip() != "rc=0"


def test_network_true_gives_an_interface(run):
    r = run(["cat", "/proc/net/dev"], network=True)
    interfaces = {line.split(":")[0].strip() for line in r["stdout"].splitlines()[2:]}
    assert "lo" in interfaces and len(interfaces) > 1


def _cgroup_limits(run, **constraints) -> dict[str, str]:
    script = (
        "for f in pids/pids.max memory/memory.limit_in_bytes memory/memory.memsw.limit_in_bytes "
        "cpu/cpu.cfs_quota_us cpu/cpu.cfs_period_us pids.max memory.max memory.swap.max cpu.max; "
        'do [ -r /sys/fs/cgroup/$f ] && echo "$f=$(cat /sys/fs/cgroup/$f)"; done; true'
    )
    r = run(sh(script), **constraints)
    return dict(line.split("=", 1) for line in r["stdout"].splitlines())


def test_memory_pids_and_cpu_limits_are_set(run):
    got = _cgroup_limits(run, memory_mb=96, pids_limit=17, cpus=0.5)
    if "pids/pids.max" in got:  # cgroup v1
        assert got["pids/pids.max"] == "17"
        assert got["memory/memory.limit_in_bytes"] == str(96 * 1024 * 1024)
        if "memory/memory.memsw.limit_in_bytes" in got:
            assert got["memory/memory.memsw.limit_in_bytes"] == str(96 * 1024 * 1024)
        assert int(got["cpu/cpu.cfs_quota_us"]) * 2 == int(got["cpu/cpu.cfs_period_us"])
    else:  # cgroup v2
        assert got["pids.max"] == "17"
        assert got["memory.max"] == str(96 * 1024 * 1024)
        assert got.get("memory.swap.max", "0") == "0"
        quota, period = got["cpu.max"].split()
        assert int(quota) * 2 == int(period)


def test_pids_limit_stops_a_fork_flood(run):
    r = run(sh("i=0; while [ $i -lt 40 ]; do sleep 2 & i=$((i+1)); done; echo done"), pids_limit=8)
    assert "can't fork" in r["stderr"] or "Resource temporarily unavailable" in r["stderr"]


def test_timeout_kills_and_removes(run, docker_api, test_labels):
    start = time.monotonic()
    r = run(["sleep", "60"], timeout_seconds=1)
    elapsed = time.monotonic() - start
    assert r["timed_out"] is True
    assert r["exit_code"] == 137
    assert elapsed < 8
    assert containers_with(docker_api, test_labels) == []


def test_timeout_when_output_closed_but_process_runs(run):
    start = time.monotonic()
    r = run(sh("exec >&- 2>&-; sleep 60"), timeout_seconds=1)
    assert r["timed_out"] is True
    assert time.monotonic() - start < 8


def test_stdout_flood_is_capped_and_killed(run, docker_api, test_labels):
    start = time.monotonic()
    r = run(["yes"], max_output_bytes=10_000)
    assert r["truncated"] is True and r["timed_out"] is False
    assert len(r["stdout"].encode()) == 10_000
    assert r["exit_code"] == 137
    assert time.monotonic() - start < 8
    assert containers_with(docker_api, test_labels) == []


def test_stderr_counts_toward_the_same_cap(run):
    r = run(sh("echo 12345; yes >&2"), max_output_bytes=1000)
    assert r["truncated"] is True
    assert len(r["stdout"].encode()) + len(r["stderr"].encode()) == 1000
    # The engine copies the two streams independently: stdout may arrive before or after
    # the cap was used up by stderr, never more than what was written.
    assert "12345\n".startswith(r["stdout"])
    assert set(r["stderr"]) <= {"y", "\n"} and len(r["stderr"]) >= 1000 - 6


def test_zero_output_cap(run):
    r = run(["echo", "x"], max_output_bytes=0)
    assert r["stdout"] == "" and r["truncated"] is True


def test_invalid_utf8_is_replaced(run):
    r = run(sh(r"printf '\377ok'"))
    assert r["stdout"] == "\ufffdok"


def test_stdin_contract_cat_echoes_json(run):
    payload = {"query": "héllo ✓", "n": [1, 2, 3], "nested": {"ok": True, "none": None}}
    r = run(["cat"], input=payload)
    assert r["stdout"].endswith("}\n") and r["stdout"].count("\n") == 1
    assert json.loads(r["stdout"]) == payload
    assert parse_skill_answer(r["stdout"]) == payload


def test_input_is_one_line(run):
    r = run(sh('read -r line; echo "got:$line"; cat'), input={"text": "two\nlines"})
    assert r["stdout"] == 'got:{"text":"two\\nlines"}\n'


def test_no_input_means_empty_closed_stdin(run):
    r = run(["cat"], timeout_seconds=5)
    assert r["stdout"] == "" and r["exit_code"] == 0 and not r["timed_out"]


def test_large_input_is_delivered_whole(run):
    payload = {"blob": "x" * 2_000_000}
    r = run(sh("cat | wc -c"))
    assert r["stdout"].strip() == "0"
    r = run(sh("cat | wc -c"), input=payload)
    assert int(r["stdout"].strip()) == len(json.dumps(payload, separators=(",", ":"))) + 1


def test_large_input_to_a_process_that_never_reads_cannot_hang(run):
    r = run(["sleep", "60"], input={"blob": "x" * 3_000_000}, timeout_seconds=1)
    assert r["timed_out"] is True


def test_process_that_closes_stdin_early_still_reports(run):
    r = run(sh("exec 0<&-; echo closed"), input={"blob": "x" * 3_000_000})
    assert r["stdout"] == "closed\n" and r["exit_code"] == 0


def test_env_only_from_params(run):
    r = run(["env"], env={"SKILL_MODE": "test", "LANG_X": "é"})
    env = dict(line.split("=", 1) for line in r["stdout"].splitlines())
    assert env["SKILL_MODE"] == "test" and env["LANG_X"] == "é"
    assert not any("proxy" in k.lower() for k in env)
    assert set(env) <= {"SKILL_MODE", "LANG_X", "PATH", "HOSTNAME", "HOME", "PWD", "SHLVL"}


def test_container_options_as_sent_to_docker(run, docker_api, test_image):
    seen = {}

    class Spy:
        def __getattr__(self, name):
            return getattr(docker_api, name)

        def create_container(self, **kw):
            seen.update(kw)
            return docker_api.create_container(**kw)

    r = run_docker(
        {"image": test_image, "command": ["true"]},
        DockerConstraints(images=[test_image], memory_mb=64, cpus=0.25, pids_limit=9),
        client=Spy(),
    )
    assert r["exit_code"] == 0
    hc = seen["host_config"]
    assert seen["image"] == test_image  # run by the verified id
    assert seen["user"] == "65534:65534"
    assert seen["working_dir"] == "/work"
    assert hc["ReadonlyRootfs"] is True
    assert hc["CapDrop"] == ["ALL"]
    assert "CapAdd" not in hc or not hc["CapAdd"]
    assert hc["SecurityOpt"] == ["no-new-privileges:true"]
    assert hc.get("Privileged") in (False, None)
    assert hc["NetworkMode"] == "none"
    assert hc["IpcMode"] == "none"
    assert hc["PidsLimit"] == 9
    assert hc["Memory"] == hc["MemorySwap"] == 64 * 1024 * 1024
    assert hc["NanoCpus"] == 250_000_000
    assert hc["LogConfig"]["Type"] == "none"
    assert not hc.get("Binds") and not hc.get("Mounts")
    assert set(hc["Tmpfs"]) == {"/tmp", "/work"}


def test_tag_refused_even_though_it_exists_locally(run, docker_api, test_labels):
    c = DockerConstraints(images=["talon-test/busybox:latest"])
    with pytest.raises(ConstraintViolation, match="not pinned"):
        run_docker(
            {"image": "talon-test/busybox:latest", "command": ["true"]},
            c,
            client=docker_api,
            labels=test_labels,
        )
    assert containers_with(docker_api, test_labels) == []


def test_image_not_in_allowlist_refused(docker_api, test_image, test_labels):
    c = DockerConstraints(images=["sha256:" + "0" * 64])
    with pytest.raises(ConstraintViolation, match="not in the allowed images"):
        run_docker(
            {"image": test_image, "command": ["true"]}, c, client=docker_api, labels=test_labels
        )


@pytest.mark.parametrize(
    "extra",
    [
        {"privileged": True},
        {"network_mode": "host"},
        {"volumes": ["/:/host"]},
        {"user": "0"},
        {"cap_add": ["ALL"]},
    ],
)
def test_extra_params_refused_and_nothing_created(docker_api, test_image, test_labels, extra):
    c = DockerConstraints(images=[test_image])
    with pytest.raises(ConstraintViolation, match="refuses params"):
        run_docker(
            {"image": test_image, "command": ["id"], **extra},
            c,
            client=docker_api,
            labels=test_labels,
        )
    assert containers_with(docker_api, test_labels) == []


def test_missing_image_is_a_tool_error(docker_api, test_labels):
    missing = "sha256:" + "0" * 64
    with pytest.raises(ToolError, match="never pulls"):
        run_docker(
            {"image": missing},
            DockerConstraints(images=[missing]),
            client=docker_api,
            labels=test_labels,
        )
    ref = "talon-test/busybox@sha256:" + "1" * 64
    with pytest.raises(ToolError, match="not present"):
        run_docker(
            {"image": ref}, DockerConstraints(images=[ref]), client=docker_api, labels=test_labels
        )


def test_unknown_runtime_fails_and_removes(run, docker_api, test_labels):
    # The configured runtime is passed to the engine, never silently dropped.
    with pytest.raises(ToolError, match="(?i)runtime"):
        run(["true"], runtime="talon-no-such-runtime")
    assert containers_with(docker_api, test_labels) == []


def test_signed_skill_check(run, test_image):
    calls = []

    def verified(image, image_id):
        calls.append((image, image_id))
        return image_id == test_image

    assert run(["true"], require_signed=True, skill_check=verified)["exit_code"] == 0
    assert calls == [(test_image, test_image)]
    with pytest.raises(ConstraintViolation, match="verified signature"):
        run(["true"], require_signed=True, skill_check=lambda image, image_id: False)


def test_allowed_mount_is_read_only(run, tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    data.chmod(0o755)
    (data / "hello.txt").write_text("from host\n")
    (data / "hello.txt").chmod(0o644)
    r = run(
        sh("cat /data/hello.txt; echo x > /data/new; echo rc=$?; rm /data/hello.txt; echo rm=$?"),
        mounts=[MountSpec(source=str(data), target="/data")],
    )
    assert r["stdout"].splitlines()[0] == "from host"
    assert "rc=0" not in r["stdout"] and "rm=0" not in r["stdout"]
    assert (data / "hello.txt").read_text() == "from host\n"
    assert not (data / "new").exists()


def test_image_volumes_become_tmpfs_not_host_volumes(docker_api, test_image, test_labels):
    base = docker_api.create_container(test_image, command=["true"], labels=test_labels)
    image_id = None
    try:
        image_id = docker_api.commit(base["Id"], changes=["VOLUME /data"])["Id"]
    finally:
        docker_api.remove_container(base["Id"], force=True)
    try:
        before = {v["Name"] for v in docker_api.volumes().get("Volumes") or []}
        r = run_docker(
            {
                "image": image_id,
                "command": sh("grep ' /data ' /proc/mounts; touch /data/x; echo $?"),
            },
            DockerConstraints(images=[image_id]),
            client=docker_api,
            labels=test_labels,
        )
        after = {v["Name"] for v in docker_api.volumes().get("Volumes") or []}
        assert r["stdout"].split()[2] == "tmpfs"
        assert "noexec" in r["stdout"]
        assert after - before == set()
    finally:
        # noprune: never take the (possibly untagged) test image down with its child
        docker_api.remove_image(image_id, force=True, noprune=True)


def test_through_the_broker_with_a_capability_token(docker_api, test_image, test_labels):
    """End to end: the token's signed constraints, not the caller, decide the container."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from talon_tui.engine.broker import Broker
    from talon_tui.engine.core.canon import intent_hash
    from talon_tui.engine.policy.models import Session, ToolIntent
    from talon_tui.engine.runtime.tokens import CapabilityIssuer, CapabilityVerifier

    key = Ed25519PrivateKey.generate()
    issuer = CapabilityIssuer(key)
    broker = Broker(CapabilityVerifier(key.public_key()))
    session = Session(id="sess_d", label="d", workspace="/nonexistent", created="2026-01-01")
    cons = DockerConstraints(images=[test_image], timeout_seconds=10).model_dump(mode="json")

    def token_for(params):
        return issuer.issue(
            session_id="sess_d",
            subject="agent:t",
            tool="docker.run",
            constraints=cons,
            intent_hash=intent_hash("docker.run", params),
        ).token

    params = {"image": test_image, "command": ["sh", "-c", "id -u; cat /proc/net/dev"]}
    r = broker.execute(
        ToolIntent(tool="docker.run", params=params), token_for(params), session=session
    )
    assert r["exit_code"] == 0 and r["stdout"].splitlines()[0] == "65534"
    assert " eth0:" not in r["stdout"]

    bad = {"image": test_image, "command": ["id"], "privileged": True}
    with pytest.raises(ConstraintViolation):
        broker.execute(ToolIntent(tool="docker.run", params=bad), token_for(bad), session=session)
