"""Self-protection: whatever the policy says, no agent tool writes the agents' hook and MCP
configuration or touches Talon's data directory, and every failure of the hook denies."""

from __future__ import annotations

import json
import os
import socket
import threading

import pytest
from support.hooks import guard_policy, program, reason, verdict
from support.pipe import make_workspace

from talon_tui.hooks import mapping, runner

pytestmark = pytest.mark.xdist_group("hook-serve")


def everything_policy() -> dict:
    """A policy that would allow all of it: self-protection must hold anyway."""
    return {
        "version": 1,
        "overrides": [
            {
                "tool": "file.read",
                "allow": True,
                "approval": "never",
                "constraints": {"roots": ["."]},
            },
            {
                "tool": "file.write",
                "allow": True,
                "approval": "never",
                "constraints": {"roots": ["."]},
            },
            {
                "tool": "shell.exec",
                "allow": True,
                "approval": "never",
                "constraints": {
                    "commands": [
                        "/bin/sh",
                        *[program(p) for p in ("ls", "cat", "echo", "rm", "cp")],
                    ]
                },
            },
        ],
    }


def protected_calls(ws, data, home):
    return [
        ("Write", {"file_path": f"{ws}/.claude/settings.json", "content": "{}"}),
        ("Write", {"file_path": f"{ws}/.claude/settings.local.json", "content": "{}"}),
        (
            "Edit",
            {"file_path": f"{home}/.claude/settings.json", "old_string": "a", "new_string": "b"},
        ),
        ("Write", {"file_path": f"{ws}/.mcp.json", "content": "{}"}),
        ("Write", {"file_path": f"{home}/.claude.json", "content": "{}"}),
        ("Write", {"file_path": f"{home}/.codex/hooks.json", "content": "{}"}),
        ("MultiEdit", {"file_path": f"{ws}/work/../.codex/config.toml", "edits": []}),
        ("Read", {"file_path": f"{data}/admin.token"}),
        ("Read", {"file_path": f"{data}/keys/policy.key"}),
        ("Glob", {"pattern": "**/*", "path": f"{data}"}),
        ("Grep", {"pattern": "x", "path": f"{data}/audit"}),
        ("Bash", {"command": "echo '{}' > .claude/settings.json"}),
        ("Bash", {"command": "rm .mcp.json"}),
        ("Bash", {"command": f"cat {data}/admin.token"}),
        ("Bash", {"command": "cd .claude && rm settings.json"}),
        ("Bash", {"command": f"cp /dev/null {home}/.codex/hooks.json"}),
        ("Bash", {"command": "ls ~/.claude"}),
        ("Bash", {"command": "rm .cla*/settings.json"}),
        ("Bash", {"command": "echo $(cat ~/.codex/config.toml)"}),
        ("Bash", {"command": f"cat < {data}/admin.token"}),
        (
            "apply_patch",
            {"command": "*** Begin Patch\n*** Add File: .codex/hooks.json\n+{}\n*** End Patch\n"},
        ),
    ]


@pytest.fixture
def wide_session(make_session, serve, tmp_path):
    """A session whose workspace holds the data dir's parent and HOME, with a policy that
    allows reading and writing all of it."""
    root = serve.data.parent
    ws = make_workspace(root / f"w{os.getpid()}{id(tmp_path)}")
    (ws / ".claude").mkdir(exist_ok=True)
    (ws / ".claude" / "settings.json").write_text("{}")
    return make_session(everything_policy(), workspace=root)


def test_self_protection_whatever_the_policy_says(wide_session):
    s = wide_session
    home = os.environ["HOME"]
    for tool, tool_input in protected_calls(s.ws, s.serve.data, home):
        for agent in ("claude-code", "codex"):
            answer = s.hook(s.payload(tool, tool_input), agent)
            assert verdict(answer) == "deny", (agent, tool, tool_input, answer)
            assert "self-protection" in reason(answer), (tool, tool_input, reason(answer))
    # and the same policy allows ordinary work in the same workspace
    ok = s.hook(s.payload("Write", {"file_path": f"{s.ws}/notes.txt", "content": "x"}))
    assert verdict(ok) == "allow"


def test_symlink_into_protected_config_is_refused(make_session):
    s = make_session(everything_policy())
    (s.ws / ".claude").mkdir()
    (s.ws / "work" / "cfg").symlink_to(s.ws / ".claude")
    (s.ws / "work" / "up").symlink_to(s.ws / ".claude" / "x", target_is_directory=True)
    for path in ("work/cfg/settings.json", "work/up/../settings.json"):
        answer = s.hook(s.payload("Write", {"file_path": f"{s.ws}/{path}", "content": "{}"}))
        assert verdict(answer) == "deny", path
    answer = s.hook(s.payload("Bash", {"command": "echo x > work/cfg/settings.json"}))
    assert verdict(answer) == "deny"


def test_key_file_is_protected(make_session):
    s = make_session(everything_policy())
    key_file = s.ws / "work" / "agent.key"
    key_file.write_text(s.key)
    opts = s.options()
    opts.key_file = str(key_file)
    for tool, tool_input in [
        ("Read", {"file_path": str(key_file)}),
        ("Bash", {"command": f"cat {key_file}"}),
    ]:
        raw = json.dumps(s.payload(tool, tool_input)).encode()
        assert verdict(runner.run(opts, raw)) == "deny"
    raw = json.dumps(s.payload("Read", {"file_path": f"{s.ws}/work/a.txt"})).encode()
    assert verdict(runner.run(opts, raw)) == "allow"


# --------------------------------------------------------------------------- failing closed


def decision_payload(ws) -> dict:
    return {
        "hook_event_name": "PreToolUse",
        "cwd": str(ws),
        "tool_name": "Read",
        "tool_input": {"file_path": f"{ws}/work/a.txt"},
        "tool_use_id": "t1",
    }


@pytest.mark.parametrize("agent", ["claude-code", "codex"])
def test_engine_unreachable_denies(tmp_path, agent):
    opts = runner.HookOptions(
        agent=agent,
        agent_key="k",
        data_dir=str(tmp_path / "data"),
        socket_path=str(tmp_path / "none.sock"),
    )
    answer = runner.run(opts, json.dumps(decision_payload(tmp_path)).encode())
    assert verdict(answer) == "deny" and "not reachable" in reason(answer)
    perm = {**decision_payload(tmp_path), "hook_event_name": "PermissionRequest"}
    answer = runner.run(opts, json.dumps(perm).encode())
    assert verdict(answer) == "deny"


@pytest.mark.parametrize(
    ("raw", "needle"),
    [
        (b"not json", "not JSON"),
        (b"[1, 2]", "not a JSON object"),
        (b"{}", "unknown hook event"),
        (b'{"hook_event_name": "Stop", "cwd": "/"}', "unknown hook event"),
        (b'{"hook_event_name": "PreToolUse", "tool_name": "Read", "tool_input": {}}', "cwd"),
        (
            b'{"hook_event_name": "PreToolUse", "cwd": "/", "tool_name": "Read", "tool_input": {}}',
            "file_path",
        ),
        (
            b'{"hook_event_name": "PreToolUse", "cwd": "/", "tool_name": "Bash",'
            b' "tool_input": "ls"}',
            "object",
        ),
        (
            b'{"hook_event_name": "PreToolUse", "cwd": "/", "tool_name": 5, "tool_input": {}}',
            "tool_name",
        ),
        (b"{" * 5_000_000, "larger than 4 MiB"),
    ],
)
def test_malformed_input_denies(tmp_path, raw, needle):
    opts = runner.HookOptions(
        agent="claude-code",
        agent_key="k",
        data_dir=str(tmp_path),
        socket_path=str(tmp_path / "none.sock"),
    )
    answer = runner.run(opts, raw)
    assert verdict(answer) == "deny", answer
    assert needle in answer.stderr, answer.stderr
    if b"PreToolUse" not in raw:
        assert answer.exit_code == 2, "event unknown: the last resort (exit 2) blocks too"


def test_internal_error_denies(make_session, monkeypatch):
    s = make_session()

    def broken(*a, **k):
        raise ZeroDivisionError("injected")

    monkeypatch.setattr(runner, "plan_call", broken)
    answer = s.hook(s.payload("Read", {"file_path": f"{s.ws}/work/a.txt"}))
    assert verdict(answer) == "deny" and "ZeroDivisionError" in reason(answer)


def test_bad_agent_key_denies(make_session):
    s = make_session()
    s.key = "talon_agent_wrong"
    answer = s.hook(s.payload("Read", {"file_path": f"{s.ws}/work/a.txt"}))
    assert verdict(answer) == "deny" and "agent key" in reason(answer)


class HostileEngine:
    """A Unix socket that answers hello and then misbehaves: the injected fault."""

    def __init__(self, path, mode: str) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(str(path))
        self.sock.listen(1)
        self.mode = mode
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def serve(self) -> None:
        conn, _ = self.sock.accept()
        f = conn.makefile("rb")
        f.readline()
        conn.sendall(b'{"id": 1, "ok": true, "session_id": "s", "subject": "a"}\n')
        f.readline()
        if self.mode == "garbage":
            conn.sendall(b"this is not json\n")
        elif self.mode == "close":
            conn.close()
        elif self.mode == "no-allow":
            conn.sendall(b'{"id": 2, "ok": true, "decision": "REQUIRE_APPROVAL"}\n')
        elif self.mode == "hang":
            threading.Event().wait(10)
        conn.close()


@pytest.mark.parametrize("mode", ["garbage", "close", "no-allow", "hang"])
def test_misbehaving_engine_denies(tmp_path, mode):
    sock = tmp_path / "e.sock"
    HostileEngine(sock, mode)
    opts = runner.HookOptions(
        agent="claude-code",
        agent_key="k",
        data_dir=str(tmp_path),
        socket_path=str(sock),
        wait_seconds=1.0,
    )
    answer = runner.run(opts, json.dumps(decision_payload(tmp_path)).encode())
    assert verdict(answer) == "deny", (mode, answer)


def test_subprocess_fail_closed_paths(make_session, tmp_path):
    s = make_session()
    ok = s.payload("Read", {"file_path": f"{s.ws}/work/a.txt"})
    # engine unreachable (another data dir)
    done = s.process(ok, "claude-code", "--data-dir", str(tmp_path / "nowhere"))
    assert done.returncode == 0 and b'"deny"' in done.stdout
    # malformed input, unknown event: deny JSON and exit 2
    for raw in (b"garbage", b'{"hook_event_name": "Nope"}'):
        done = s.process(raw)
        assert done.returncode == 2 and b'"deny"' in done.stdout and done.stderr
    # a bad option, an unreadable key file: still a deny, never exit 1
    done = s.process(ok, "codex", "--bogus")
    assert done.returncode == 0 and b'"deny"' in done.stdout
    s.key_file.unlink()
    done = s.process(ok)
    assert done.returncode == 0 and b'"deny"' in done.stdout


def test_closed_stdout_exits_2(make_session):
    import subprocess

    from support.hooks import TALON
    from support.pipe import REPO

    s = make_session()
    r, w = os.pipe()
    os.close(r)
    try:
        done = subprocess.run(
            [
                *TALON,
                "hook",
                "claude-code",
                "--key-file",
                str(s.key_file),
                "--data-dir",
                str(s.serve.data),
            ],
            input=json.dumps(s.payload("Read", {"file_path": "/etc/passwd"})).encode(),
            stdout=w,
            stderr=subprocess.PIPE,
            timeout=60,
            cwd=REPO,
        )
    finally:
        os.close(w)
    assert done.returncode == 2, done
    assert b"Talon" in done.stderr


def test_mapping_table_covers_the_issue():
    prot = mapping.Protected("/nonexistent-data")
    cases = {
        "Read": ("file.read", {"file_path": "/w/a"}),
        "Glob": ("file.read", {"pattern": "*.py"}),
        "Grep": ("file.read", {"pattern": "x"}),
        "Write": ("file.write", {"file_path": "/w/a", "content": ""}),
        "Edit": ("file.write", {"file_path": "/w/a", "old_string": "", "new_string": ""}),
        "MultiEdit": ("file.write", {"file_path": "/w/a", "edits": []}),
        "WebFetch": ("http.fetch", {"url": "https://x", "prompt": ""}),
        "Bash": ("shell.exec", {"command": "ls"}),
        "mcp__s__t": ("mcp.call", {"a": 1}),
        "Anything": ("agent.native", {}),
    }
    for tool, (talon_tool, tool_input) in cases.items():
        plan = mapping.plan_call(tool, tool_input, "/w", prot)
        assert [i.tool for i in plan.intents] == [talon_tool], tool
    plan = mapping.plan_call(
        "apply_patch",
        {
            "command": "*** Begin Patch\n*** Add File: a\n+x\n*** Delete File: b\n"
            "*** Update File: c\n*** Move to: d\n*** End Patch"
        },
        "/w",
        prot,
    )
    assert [i.params["path"] for i in plan.intents] == ["/w/a", "/w/b", "/w/c", "/w/d"]
    assert guard_policy()  # the shared policy builds


def test_approval_outliving_the_hook_wait_denies_and_leaves_the_queue(make_session, serve):
    from support.pipe import run

    from talon_tui.client import AdminClient

    policy = guard_policy()
    policy["overrides"][0]["approval"] = "always"
    s = make_session(policy)
    answer = s.hook(s.payload("Read", {"file_path": f"{s.ws}/work/a.txt"}), wait=1.5)
    assert verdict(answer) == "deny" and "wait ran out" in reason(answer)

    async def pending() -> list:
        async with await AdminClient.connect(serve.data) as admin:
            return [a for a in await admin.list_approvals() if a.session_id == s.sid]

    for _ in range(100):
        if not run(pending()):
            break
    assert not run(pending()), "the engine withdrew the approval when the hook went away"
    decided = s.events("approval.decided")
    assert decided and decided[-1]["data"]["allow"] is False


def test_key_is_not_sent_to_an_untrusted_socket(tmp_path):
    """The client library's peer check (engine.core.peer) guards the hook's key too."""
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)
    sock_path = shared / "agent.sock"
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(sock_path))
    server.listen(1)
    got: list[bytes] = []

    def accept() -> None:
        conn, _ = server.accept()
        conn.settimeout(3)
        try:
            got.append(conn.recv(4096))
        except TimeoutError:
            got.append(b"")
        conn.close()

    t = threading.Thread(target=accept, daemon=True)
    t.start()
    opts = runner.HookOptions(
        agent="claude-code",
        agent_key="talon_agent_secret",
        data_dir=str(tmp_path / "data"),
        socket_path=str(sock_path),
    )
    answer = runner.run(opts, json.dumps(decision_payload(tmp_path)).encode())
    t.join(5)
    assert verdict(answer) == "deny" and "writable by others" in reason(answer)
    assert got == [b""], "nothing was sent"


def test_a_call_too_large_for_the_pipe_is_denied(make_session):
    s = make_session()
    big = "x" * (1 << 20)
    answer = s.hook(s.payload("Write", {"file_path": f"{s.ws}/work/big.txt", "content": big}))
    assert verdict(answer) == "deny"
    assert not (s.ws / "work" / "big.txt").exists()
