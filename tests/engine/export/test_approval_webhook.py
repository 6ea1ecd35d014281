"""Approval webhooks and the approvals CLI end to end: a real `talon serve
--approval-webhook URL`, a real receiver on 127.0.0.1 that checks the HMAC, an agent that
waits for an approval in a thread, and the operator deciding through `talon approvals`."""

from __future__ import annotations

import json
import subprocess
import threading

import pytest
from support.pipe import APPROVAL_POLICY, TALON, Serve, make_workspace, new_session, run
from support.receivers import WebhookReceiver, wait_for

from talon_tui.client import AgentClient
from talon_tui.engine.export import sign

pytestmark = pytest.mark.slow

KEY = b"0123456789abcdef-webhook-key"


def talon(serve: Serve, *args: str, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*TALON, *args, "--data-dir", str(serve.data)],
        capture_output=True,
        text=True,
        env=serve.env,
        timeout=60,
        **kw,
    )


def waiting_agent(serve: Serve, key: str, out: dict) -> threading.Thread:
    def go() -> None:
        with AgentClient(key, socket_path=serve.socket_path, timeout=60) as agent:
            try:
                out["reply"] = agent.intent("file.read", {"path": "work/a.txt"})
            except Exception as exc:
                out["error"] = exc

    t = threading.Thread(target=go)
    t.start()
    return t


@pytest.fixture
def key_file(tmp_path):
    path = tmp_path / "webhook.key"
    path.write_bytes(KEY + b"\n")
    path.chmod(0o600)
    return path


def test_webhook_signed_and_cli_approves_while_the_agent_waits(tmp_path, key_file):
    hook = WebhookReceiver(KEY).start()
    serve = Serve(
        tmp_path / "data",
        args=[
            "--approval-webhook",
            f"{hook.base}/talon",
            "--approval-webhook-key-file",
            str(key_file),
        ],
        env={"TALON_APPROVAL_TIMEOUT": "60"},
    ).start()
    watch = None
    try:
        session_id, key = run(new_session(serve, make_workspace(tmp_path), APPROVAL_POLICY))
        watch = subprocess.Popen(
            [*TALON, "approvals", "watch", "--json", "--data-dir", str(serve.data)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=serve.env,
        )
        out: dict = {}
        agent = waiting_agent(serve, key, out)
        wait_for(lambda: hook.posts, what="the webhook POST")
        post = hook.posts[0]
        assert post["valid"] and post["signature"] == sign(KEY, post["body"])
        body = post["json"]
        assert body["type"] == "approval.waiting"
        assert body["tool"] == "file.read" and body["target"] == "work/a.txt"
        assert body["session_id"] == session_id and isinstance(body["age_s"], int)
        assert "://" not in body["summary"] and "work/a.txt" in body["summary"]
        approval_id = body["approval_id"]

        first = json.loads(watch.stdout.readline())
        assert first["action"] == "requested"
        assert first["approval"]["approval_id"] == approval_id
        assert first["approval"]["tool"] == "file.read"

        listed = talon(serve, "approvals", "list", "--json")
        assert [a["approval_id"] for a in json.loads(listed.stdout)] == [approval_id]
        assert "reply" not in out  # still waiting
        done = talon(serve, "approvals", "remember", approval_id, "--json")
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout) == {
            "approval_id": approval_id,
            "allow": True,
            "remember": True,
        }
        agent.join(30)
        assert out["reply"].decision == "ALLOW", out
        assert "hello from the workspace" in out["reply"].result["content"]
        second = json.loads(watch.stdout.readline())
        assert second == {
            "action": "approved",
            "approval": {**second["approval"], "approval_id": approval_id},
        }
        policy = json.loads(talon(serve, "policy", "show", session_id).stdout)
        assert len(policy["overrides"]) == 2  # remembered: the narrowest override was added
    finally:
        if watch is not None:
            watch.terminate()
            watch.wait(10)
        serve.stop_quietly()
        hook.stop()


def test_a_receiver_with_another_key_sees_a_bad_signature(tmp_path, key_file):
    hook = WebhookReceiver(b"not-the-engine-key-at-all")
    hook.start()
    serve = Serve(
        tmp_path / "data",
        args=["--approval-webhook", hook.base, "--approval-webhook-key-file", str(key_file)],
        env={"TALON_APPROVAL_TIMEOUT": "60"},
    ).start()
    try:
        _, key = run(new_session(serve, make_workspace(tmp_path), APPROVAL_POLICY))
        out: dict = {}
        agent = waiting_agent(serve, key, out)
        wait_for(lambda: len(hook.posts) >= 2, what="a retried POST")  # 401: retried
        assert not any(p["valid"] for p in hook.posts)
        approval_id = hook.posts[0]["json"]["approval_id"]
        denied = talon(serve, "approvals", "deny", approval_id)
        assert denied.returncode == 0, denied.stderr
        agent.join(30)
        assert "error" in out and "APPROVAL_DENIED" in str(out["error"].code), out
    finally:
        serve.stop_quietly()
        hook.stop()


@pytest.mark.parametrize(
    ("args", "config", "says"),
    [
        (["--export", "ftp=somewhere"], None, "KIND=TARGET"),
        (["--export", "syslog=host:99999"], None, "HOST:PORT"),
        (["--export", "jsonl=relative.jsonl"], None, "absolute path"),
        (["--export", "otlp=http://127.0.0.1:4318,format=cef"], None, "format"),
        (["--approval-webhook", "http://127.0.0.1:9"], None, "HMAC key"),
        ([], "export = [", "not valid TOML"),
        ([], 'exports = ["jsonl=/tmp/x"]', "unknown key 'exports'"),
        ([], "export = 3", "list of KIND=TARGET"),
        (["--approval-webhook", "http://127.0.0.1:9"], "key", "others may read it"),
    ],
)
def test_a_broken_export_config_is_one_line_and_exit_2(tmp_path, args, config, says):
    data = tmp_path / "data"
    if config == "key":  # a key file anyone may read
        (tmp_path / "k").write_bytes(KEY)
        (tmp_path / "k").chmod(0o644)
        args, config = [*args, "--approval-webhook-key-file", str(tmp_path / "k")], None
    if config is not None:
        (tmp_path / "talon.toml").write_text(config)
        args = [*args, "--config", str(tmp_path / "talon.toml")]
    proc = subprocess.run(
        [*TALON, "serve", "--data-dir", str(data), *args],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2, proc.stderr
    assert says in proc.stderr and "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    assert not (data / "run" / "agent.sock").exists()


def test_exports_from_the_config_file_in_the_data_dir(tmp_path):
    data = tmp_path / "data"
    copy = tmp_path / "copy.jsonl"
    serve = Serve(data)
    data.mkdir(mode=0o700)
    (data / "talon.toml").write_text(f'export = ["jsonl={copy}"]\n')
    serve.start()
    try:
        status = talon(serve, "status", "--json")
        rows = json.loads(status.stdout)["exports"]
        assert [r["kind"] for r in rows] == ["jsonl"]
        text = talon(serve, "status").stdout
        assert f"export     jsonl={copy}: " in text and "lag" in text
        rc, err = serve.terminate()
        assert rc == 0, err
    finally:
        serve.stop_quietly()
    assert copy.read_bytes() == (data / "audit" / "audit.jsonl").read_bytes()
