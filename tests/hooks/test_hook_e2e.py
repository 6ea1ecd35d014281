"""`talon hook` end to end: every recorded payload of both agents against a real `talon serve`,
approvals decided by an admin while the hook waits, route mode, reports and replay."""

from __future__ import annotations

import json
import subprocess
import threading
import time

import pytest
from support.hooks import FIXTURES, guard_policy, load_fixture, program, reason, verdict
from support.pipe import TALON, run

from talon_tui.client import AdminClient
from talon_tui.engine.policy.models import TOOLS

pytestmark = pytest.mark.xdist_group("hook-serve")

# (agent, fixture) -> expected verdict under guard_policy(): allowed tools print "allow" for
# Claude Code and nothing for Codex (its PreToolUse honours only deny)
EXPECTED = {
    ("claude-code", "PreToolUse-Bash"): "allow",
    ("claude-code", "PreToolUse-Read"): "allow",
    ("claude-code", "PreToolUse-Write"): "allow",
    ("claude-code", "PreToolUse-Edit"): "allow",
    ("claude-code", "PreToolUse-MultiEdit"): "allow",
    ("claude-code", "PreToolUse-Glob"): "allow",
    ("claude-code", "PreToolUse-Grep"): "allow",
    ("claude-code", "PreToolUse-WebFetch"): "allow",
    ("claude-code", "PreToolUse-NotebookEdit"): "allow",
    ("claude-code", "PreToolUse-TodoWrite"): "deny",
    ("claude-code", "PermissionRequest-Bash"): "allow",
    ("claude-code", "PostToolUse-Read"): "none",
    ("codex", "PreToolUse-Bash"): "none",
    ("codex", "PreToolUse-apply_patch"): "none",
    ("codex", "PermissionRequest-Bash"): "allow",
    ("codex", "PostToolUse-Bash"): "none",
}
MCP_FIXTURES = [
    ("claude-code", "PreToolUse-mcp__srv__echo"),
    ("codex", "PreToolUse-mcp__srv__echo"),
]


def test_every_fixture_is_covered():
    names = {(p.parent.name, p.stem) for p in FIXTURES.glob("*/*.json")}
    assert names == set(EXPECTED) | set(MCP_FIXTURES)


@pytest.mark.parametrize(("agent", "name"), sorted(EXPECTED))
def test_recorded_payloads_decided_by_the_engine(make_session, tmp_path, agent, name):
    s = make_session()
    payload = load_fixture(agent, name, s.ws, tmp_path)
    answer = s.hook(payload, agent)
    assert verdict(answer) == EXPECTED[(agent, name)], answer
    if name.startswith("PostToolUse"):
        reported = s.events("tool.reported")
        assert len(reported) == 1 and reported[0]["data"]["executor"] == "agent"
        assert reported[0]["data"]["output_sha256"].startswith("sha256:")
        return
    decisions = s.events("policy.decision")
    assert decisions, "every decision is audited"
    assert all(d["data"]["executor"] == "agent" for d in decisions)
    assert not s.events("capability.issued"), "no token: the agent runs the tool, not the broker"
    assert not s.events("tool.executed")
    expected = "DENY" if EXPECTED[(agent, name)] == "deny" else "ALLOW"
    assert decisions[-1]["data"]["decision"] == expected


DENIED_INPUTS = [
    ("claude-code", "Read", {"file_path": "{ws}/other/b.txt"}),
    ("claude-code", "Write", {"file_path": "{ws}/other/new.txt", "content": "x"}),
    (
        "claude-code",
        "Edit",
        {"file_path": "{ws}/other/b.txt", "old_string": "n", "new_string": "m"},
    ),
    ("claude-code", "MultiEdit", {"file_path": "{ws}/other/b.txt", "edits": [{"new_string": "m"}]}),
    ("claude-code", "Glob", {"pattern": "other/**/*.txt", "path": "{ws}"}),
    ("claude-code", "Glob", {"pattern": "../../**/*", "path": "{ws}/work"}),
    ("claude-code", "Grep", {"pattern": "x", "path": "{ws}/other"}),
    ("claude-code", "WebFetch", {"url": "https://evil.example.net/", "prompt": "x"}),
    ("claude-code", "NotebookEdit", {"notebook_path": "{ws}/other/nb.ipynb", "new_source": "x"}),
    ("claude-code", "Bash", {"command": "rm work/a.txt"}),
    ("claude-code", "Read", {"file_path": "/etc/passwd"}),
    ("codex", "Bash", {"command": "ls work > other/listing"}),
    (
        "codex",
        "apply_patch",
        {
            "command": "*** Begin Patch\n*** Add File: work/ok.txt\n+x\n"
            "*** Update File: other/b.txt\n+y\n*** End Patch\n"
        },
    ),
    (
        "codex",
        "apply_patch",
        {
            "command": "*** Begin Patch\n*** Update File: work/a.txt\n"
            "*** Move to: ../escape.txt\n*** End Patch\n"
        },
    ),
    ("codex", "apply_patch", {"command": "not a patch at all"}),
]


@pytest.mark.parametrize(("agent", "tool", "tool_input"), DENIED_INPUTS)
def test_denied_calls_of_every_tool(make_session, agent, tool, tool_input):
    s = make_session()
    filled = json.loads(json.dumps(tool_input).replace("{ws}", str(s.ws)))
    answer = s.hook(s.payload(tool, filled), agent)
    assert verdict(answer) == "deny", answer
    assert reason(answer).startswith("Talon: ")


def test_symlink_out_of_the_roots_is_judged_where_it_points(make_session):
    s = make_session()
    (s.ws / "work" / "link").symlink_to(s.ws / "other" / "b.txt")
    (s.ws / "work" / "out").symlink_to("/etc")
    for path in ("work/link", "work/out/passwd"):
        answer = s.hook(s.payload("Read", {"file_path": f"{s.ws}/{path}"}))
        assert verdict(answer) == "deny", (path, answer)
    received = s.events("policy.intent.received")
    assert received[0]["data"]["params"]["path"] == "other/b.txt"


def test_subprocess_hook_claude_and_codex(make_session):
    s = make_session()
    ok = s.payload("Read", {"file_path": f"{s.ws}/work/a.txt"})
    bad = s.payload("Read", {"file_path": f"{s.ws}/other/b.txt"})
    done = s.process(ok)
    assert done.returncode == 0 and verdict_of(done) == "allow", done
    done = s.process(bad)
    assert done.returncode == 0 and verdict_of(done) == "deny", done
    done = s.process(ok, "codex")
    assert done.returncode == 0 and done.stdout == b"", done
    done = s.process(bad, "codex")
    out = json.loads(done.stdout)["hookSpecificOutput"]
    assert done.returncode == 0 and out["permissionDecision"] == "deny"


def verdict_of(done: subprocess.CompletedProcess) -> str:
    return json.loads(done.stdout)["hookSpecificOutput"]["permissionDecision"]


def _approve_when_waiting(serve, allow: bool, seen: list) -> threading.Thread:
    async def decide() -> None:
        async with await AdminClient.connect(serve.data) as admin:
            for _ in range(400):
                waiting = await admin.list_approvals()
                if waiting:
                    seen.append(waiting[0])
                    await admin.decide_approval(waiting[0].approval_id, allow)
                    return
                time.sleep(0.05)

    t = threading.Thread(target=lambda: run(decide()))
    t.start()
    return t


@pytest.mark.parametrize("allow", [True, False])
def test_approval_decided_by_an_admin_while_the_hook_waits(make_session, serve, allow):
    policy = guard_policy()
    policy["overrides"][0]["approval"] = "always"
    s = make_session(policy)
    seen: list = []
    t = _approve_when_waiting(serve, allow, seen)
    done = s.process(s.payload("Read", {"file_path": f"{s.ws}/work/a.txt"}))
    t.join(30)
    assert seen and seen[0].tool == "file.read"
    assert done.returncode == 0
    assert verdict_of(done) == ("allow" if allow else "deny")
    by_operator = [e for e in s.events("policy.decision") if e["data"]["by"] == "operator"]
    assert by_operator and by_operator[0]["data"]["decision"] == ("ALLOW" if allow else "DENY")


def test_unparseable_bash_goes_to_approval_when_the_policy_names_the_shell(make_session, serve):
    policy = guard_policy()
    policy["overrides"].append(
        {
            "tool": "shell.exec",
            "allow": True,
            "approval": "always",
            "constraints": {"commands": ["/bin/sh"]},
        }
    )
    s = make_session(policy)
    seen: list = []
    t = _approve_when_waiting(serve, False, seen)
    answer = s.hook(s.payload("Bash", {"command": "echo $(id -u)"}))
    t.join(30)
    assert seen and seen[0].params["argv"] == ["/bin/sh", "-c", "echo $(id -u)"]
    assert verdict(answer) == "deny"
    assert "cannot be judged one simple command at a time" in reason(answer)


def test_route_mode_sends_effects_to_the_gateway(make_session):
    s = make_session(guard_policy(mode="route"))
    expect = {
        "Bash": ({"command": "ls work"}, "mcp__talon__shell_exec"),
        "Write": ({"file_path": f"{s.ws}/work/n.txt", "content": "x"}, "mcp__talon__file_write"),
        "Edit": (
            {"file_path": f"{s.ws}/work/a.txt", "old_string": "h", "new_string": "j"},
            "mcp__talon__file_write",
        ),
        "WebFetch": ({"url": "https://example.com/", "prompt": "x"}, "mcp__talon__http_fetch"),
    }
    for tool, (tool_input, gateway_tool) in expect.items():
        answer = s.hook(s.payload(tool, tool_input))
        assert verdict(answer) == "deny", tool
        assert gateway_tool in reason(answer), reason(answer)
    assert verdict(s.hook(s.payload("Read", {"file_path": f"{s.ws}/work/a.txt"}))) == "allow"
    # Talon's own gateway tools are not judged twice: no verdict, nothing audited for them
    before = len(s.events("policy.intent.received"))
    answer = s.hook(s.payload("mcp__talon__file_write", {"path": "work/x", "content": "y"}))
    assert verdict(answer) == "none"
    assert len(s.events("policy.intent.received")) == before


def test_native_tools_named_by_the_policy_are_allowed(make_session):
    s = make_session(guard_policy(native_tools=["TodoWrite"]))
    assert verdict(s.hook(s.payload("TodoWrite", {"todos": []}))) == "allow"
    assert verdict(s.hook(s.payload("WebSearch", {"query": "x"}))) == "deny"


@pytest.mark.parametrize(("agent", "name"), MCP_FIXTURES)
def test_mcp_tools_fail_closed_while_the_engine_lacks_mcp_call(make_session, tmp_path, agent, name):
    if "mcp.call" in TOOLS:
        pytest.skip("mcp.call is known: see test_mcp_tools_are_judged_as_mcp_call")
    s = make_session()
    answer = s.hook(load_fixture(agent, name, s.ws, tmp_path), agent)
    assert verdict(answer) == "deny"
    assert "mcp.call" in reason(answer)


@pytest.mark.skipif("mcp.call" not in TOOLS, reason="mcp.call arrives with the mcp-up branch")
@pytest.mark.parametrize(("agent", "name"), MCP_FIXTURES)
def test_mcp_tools_are_judged_as_mcp_call(make_session, tmp_path, agent, name):
    policy = guard_policy()
    policy["overrides"].append(
        {
            "tool": "mcp.call",
            "allow": True,
            "approval": "never",
            "constraints": {"servers": ["srv"], "tools": ["echo"]},
        }
    )
    s = make_session(policy)
    answer = s.hook(load_fixture(agent, name, s.ws, tmp_path), agent)
    assert verdict(answer) == ("allow" if agent == "claude-code" else "none")
    received = s.events("policy.intent.received")[-1]["data"]
    assert received["tool"] == "mcp.call"
    assert received["params"] == {"server": "srv", "tool": "echo", "arguments": {"text": "hello"}}
    denied = s.hook(s.payload("mcp__srv__other", {}), agent)
    assert verdict(denied) == "deny"


def test_report_ties_to_its_decision_and_replay_marks_the_agent(make_session, tmp_path):
    s = make_session()
    pre = load_fixture("claude-code", "PreToolUse-Read", s.ws, tmp_path)
    post = load_fixture("claude-code", "PostToolUse-Read", s.ws, tmp_path)
    post["tool_use_id"] = pre["tool_use_id"]
    assert verdict(s.hook(pre)) == "allow"
    assert verdict(s.hook(post)) == "none"
    decision = s.events("policy.decision")[-1]
    reported = s.events("tool.reported")[-1]
    assert reported["data"]["matched"] is True
    assert reported["run_id"] == decision["run_id"]
    assert reported["data"]["intent_ids"] == [decision["data"]["intent_id"]]
    # an unmatched report (nothing was decided for that call) is recorded as such
    post["tool_use_id"] = "toolu_never_decided"
    s.hook(post)
    assert s.events("tool.reported")[-1]["data"]["matched"] is False
    done = subprocess.run(
        [*TALON, "replay", decision["run_id"], "--json", "--data-dir", str(s.serve.data)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    steps = json.loads(done.stdout)["steps"]
    assert {st["type"] for st in steps if st.get("executor") == "agent"} >= {
        "policy.intent.received",
        "policy.decision",
        "tool.reported",
    }


def test_compound_bash_is_one_run(make_session):
    s = make_session()
    answer = s.hook(s.payload("Bash", {"command": f"ls work | {program('grep')} a > work/o"}))
    assert verdict(answer) == "allow"
    started = s.events("run.started")
    assert len(started) == 1 and "ls work" in started[0]["data"]["content"]
    assert len(s.events("policy.intent.received")) == 3
