"""Issue 9, the local trust model: the separate-user deployment, end to end.

`talon serve --socket-group G` runs (as root here, the engine's own user); an agent runs as a
throwaway user in G. The agent can say hello and run an allowed intent over the pipe, and can
read neither admin.token, nor keys/, nor audit/, nor state.json. `talon doctor` names the
engine's and the agents' uids and warns when an agent runs as the engine's uid. Runs in CI
(root); skips only off CI when not root.
"""

from __future__ import annotations

import asyncio
import json
import os
import select
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from support.local_users import DROP, require_root, shared_base, throwaway_group, throwaway_user
from support.pipe import READ_POLICY, REPO, TALON

from talon_tui.client import (
    AdminClient,
    AgentClient,
    UnauthenticatedError,
)

AGENT = (
    DROP
    + """
import json
from pathlib import Path
from talon_tui.client import AgentClient, ClientError, IntentResult
IntentResult.model_validate({"run_id": "r", "decision": "ALLOW"})  # load lazily built parts
data, key, uid, gid, extra = Path(sys.argv[1]), sys.argv[2], *map(int, sys.argv[3:6])
drop(uid, gid, [gid, extra])
out = {"uid": os.getuid()}
for name, path in [
    ("admin.token", data / "admin.token"),
    ("keys", data / "keys"),
    ("policy key", data / "keys" / "policy_ed25519.key"),
    ("audit", data / "audit"),
    ("audit log", data / "audit" / "audit.jsonl"),
    ("state.json", data / "state.json"),
    ("secrets", data / "secrets"),
]:
    try:
        if path.is_dir():
            os.listdir(path)
        else:
            path.read_bytes()
        out[name] = "READ"
    except PermissionError:
        out[name] = "denied"
try:
    with AgentClient(key, socket_path=data / "run" / "agent.sock", timeout=20) as agent:
        out["session_id"] = agent.session_id
        out["content"] = agent.intent("file.read", {"path": "work/a.txt"}).result["content"]
except ClientError as exc:
    out["error"] = f"{exc.code}: {exc.message}"
print(json.dumps(out), flush=True)
"""
)


# `talon ARGS` as another user: Python and every module loaded as root, then dropped.
ENGINE_AS = (
    DROP
    + """
import importlib, pkgutil
import talon_tui.engine
from talon_tui import cli
for m in pkgutil.walk_packages(talon_tui.engine.__path__, prefix="talon_tui.engine."):
    importlib.import_module(m.name)
import talon_tui.client
for name in ("serve_cmd", "doctor_cmd", "common"):
    importlib.import_module("talon_tui.cli.commands." + name)
# models build their validators on first use (defer_build), loading pydantic's schema code then
from pydantic import BaseModel
todo = [BaseModel]
while todo:
    for model in todo.pop().__subclasses__():
        todo.append(model)
        if model.__module__.startswith("talon_tui."):
            model.model_rebuild()
uid, gid, extra = map(int, sys.argv[1:4])
drop(uid, gid, [gid, extra])
sys.exit(cli.main(sys.argv[4:]))
"""
)


def serve(data: Path, *extra: str) -> subprocess.Popen:
    proc = subprocess.Popen(
        [*TALON, "serve", "--data-dir", str(data), *extra],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=REPO,
    )
    ready, _, _ = select.select([proc.stdout], [], [], 30)
    line = proc.stdout.readline().decode() if ready else ""
    if "listening on" not in line:
        proc.kill()
        raise RuntimeError(f"talon serve did not start: {line!r} {proc.stderr.read().decode()}")
    return proc


def stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()


def run_agent(
    data: Path, key: str, uid: int, gid: int, extra_gid: int, env: dict | None = None
) -> dict:
    r = subprocess.run(
        [sys.executable, "-c", AGENT, str(data), key, str(uid), str(gid), str(extra_gid)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
        env={
            **{k: v for k, v in os.environ.items() if k != "TALON_ENGINE_UID"},
            "PYTHONPATH": str(REPO),
            **(env or {}),
        },
    )
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout.strip().splitlines()[-1])


async def new_session(data: Path, ws: Path) -> tuple[str, str]:
    async with await AdminClient.connect(data) as admin:
        session, key = await admin.create_session("sep", str(ws), READ_POLICY)
        return session.id, key


def make_workspace(base: Path) -> Path:
    ws = base / "ws"
    (ws / "work").mkdir(parents=True)
    (ws / "work" / "a.txt").write_text("hello from the workspace\n")
    return ws


def mode(path: Path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


@pytest.mark.slow
def test_agent_of_the_socket_group_uses_the_pipe_but_reads_no_engine_file():
    require_root()
    with (
        shared_base() as base,
        throwaway_group() as (group, gid),
        throwaway_user(groups=(group,)) as agent,
    ):
        data = base / "data"
        ws = make_workspace(base)
        proc = serve(data, "--socket-group", group)
        try:
            assert (mode(data), os.lstat(data).st_gid) == (0o710, gid)
            assert (mode(data / "run"), os.lstat(data / "run").st_gid) == (0o710, gid)
            sock = data / "run" / "agent.sock"
            assert (mode(sock), os.lstat(sock).st_gid) == (0o660, gid)
            for private in ("keys", "audit", "secrets", "workspaces"):
                assert mode(data / private) == 0o700, private
            assert mode(data / "admin.token") == 0o600

            _sid, key = asyncio.run(new_session(data, ws))
            seen = run_agent(data, key, agent.uid, agent.gid, gid)
            assert seen["uid"] == agent.uid
            assert seen.get("error") is None, seen
            assert seen["content"].startswith("hello from the workspace")
            for name in ("admin.token", "keys", "policy key", "audit", "audit log", "state.json"):
                assert seen[name] == "denied", (name, seen)

            # the engine recorded the agent's uid, and the doctor shows it without warning
            doctor = subprocess.run(
                [*TALON, "doctor", "--json", "--data-dir", str(data)],
                capture_output=True,
                text=True,
                cwd=REPO,
                timeout=60,
            )
            report = json.loads(doctor.stdout)
            assert report["engine_uid"] == 0
            events = asyncio.run(_agent_connected_uids(data))
            assert agent.uid in events

            # the doctor, run by the agent's user, sees nothing to warn about and cannot look in
            as_agent = subprocess.run(
                [sys.executable, "-c", ENGINE_AS, str(agent.uid), str(agent.gid), str(gid)]
                + ["doctor", "--json", "--data-dir", str(data)],
                capture_output=True,
                text=True,
                cwd=REPO,
                timeout=60,
            )
            seen_by_agent = json.loads(as_agent.stdout)
            assert as_agent.returncode == 0, seen_by_agent
            assert any("may not look inside" in c["message"] for c in seen_by_agent["checks"])

            # an agent outside the group cannot even reach the socket
            with throwaway_user() as stranger:
                shut_out = run_agent(data, key, stranger.uid, stranger.gid, stranger.gid)
                assert "cannot reach" in shut_out.get("error", ""), shut_out
        finally:
            stop(proc)


async def _agent_connected_uids(data: Path) -> set[int]:
    async with await AdminClient.connect(data) as admin:
        events = await admin.query_audit(types=["agent.connected"], limit=1000)
    return {e["data"].get("uid") for e in events if e["data"].get("role") == "agent"}


def test_doctor_warns_when_an_agent_runs_as_the_engine_uid(tmp_path):
    data = tmp_path / "data"
    ws = make_workspace(tmp_path)
    proc = serve(data)
    try:
        _sid, key = asyncio.run(new_session(data, ws))
        quiet = subprocess.run(
            [*TALON, "doctor", "--data-dir", str(data)],
            capture_output=True,
            text=True,
            cwd=REPO,
            timeout=60,
        )
        assert quiet.returncode == 0, quiet.stdout + quiet.stderr
        with AgentClient(key, data_dir=data, timeout=20):
            r = subprocess.run(
                [*TALON, "doctor", "--data-dir", str(data)],
                capture_output=True,
                text=True,
                cwd=REPO,
                timeout=60,
            )
        assert r.returncode == 1, r.stdout
        assert f"runs as uid {os.geteuid()}, the engine's own uid" in r.stdout
    finally:
        stop(proc)


def test_agent_uid_allow_list_refuses_other_uids(tmp_path):
    data = tmp_path / "data"
    ws = make_workspace(tmp_path)
    other = os.geteuid() + 4242
    proc = serve(data, "--agent-uid", str(other))
    try:
        _sid, key = asyncio.run(new_session(data, ws))
        with pytest.raises(UnauthenticatedError, match=f"uid {os.geteuid()}"):
            AgentClient(key, data_dir=data, timeout=20)
    finally:
        stop(proc)


def test_engine_as_a_dedicated_user_with_an_agent_in_its_socket_group(monkeypatch):
    """The deployment of docs/talon.service: engine user E (in group G), agent user A (in G),
    operator root trusting E by TALON_ENGINE_UID."""
    require_root()
    with (
        shared_base() as base,
        throwaway_group() as (group, gid),
        throwaway_user(groups=(group,)) as engine_user,
        throwaway_user(groups=(group,)) as agent,
    ):
        data = base / "data"
        data.mkdir(mode=0o700)
        os.chown(data, engine_user.uid, engine_user.gid)
        ws = make_workspace(base)
        os.chown(ws / "work" / "a.txt", engine_user.uid, engine_user.gid)
        argv = [str(engine_user.uid), str(engine_user.gid), str(gid)]
        proc = subprocess.Popen(
            [sys.executable, "-c", ENGINE_AS, *argv, "serve", "--data-dir", str(data)]
            + ["--socket-group", group],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            cwd=REPO,
        )
        try:
            ready, _, _ = select.select([proc.stdout], [], [], 30)
            line = proc.stdout.readline().decode() if ready else ""
            assert "listening on" in line, proc.stderr.read1().decode()
            assert os.lstat(data / "admin.token").st_uid == engine_user.uid
            # root trusts neither E's token file nor E's socket until told E is the engine
            with pytest.raises(UnauthenticatedError, match=f"uid {engine_user.uid}"):
                asyncio.run(new_session(data, ws))
            monkeypatch.setenv("TALON_ENGINE_UID", engine_user.name)
            _sid, key = asyncio.run(new_session(data, ws))
            seen = run_agent(
                data, key, agent.uid, agent.gid, gid, env={"TALON_ENGINE_UID": engine_user.name}
            )
            assert seen.get("error") is None, seen
            assert seen["content"].startswith("hello from the workspace")
            for name in ("admin.token", "keys", "policy key", "audit", "audit log", "state.json"):
                assert seen[name] == "denied", (name, seen)
            # without TALON_ENGINE_UID the agent will not hand its key to E
            wary = run_agent(data, key, agent.uid, agent.gid, gid)
            assert "nothing was sent" in wary.get("error", ""), wary
        finally:
            stop(proc)


def test_unknown_socket_group_or_agent_user_is_one_clear_line(tmp_path):
    for extra, expected in (
        (["--socket-group", "no-such-group-xyz"], "no such group"),
        (["--agent-uid", "no-such-user-xyz"], "no such user"),
    ):
        r = subprocess.run(
            [*TALON, "serve", "--data-dir", str(tmp_path / "data"), *extra],
            capture_output=True,
            text=True,
            cwd=REPO,
            timeout=60,
        )
        assert r.returncode == 2 and expected in r.stderr
        assert len(r.stderr.strip().splitlines()) == 1
        assert not (tmp_path / "data").exists()
