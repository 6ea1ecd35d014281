"""Issue 15.1: agent text never reaches the operator's terminal raw through the CLI.

A hostile agent puts terminal escapes (cursor moves, OSC 52 clipboard write, BEL, CR, a forged
line, U+202E, C1 CSI U+009B) into a param name (copied into the DENY reason), a param value (an
approval), a file's content (an intent's result) and the audit log. Every CLI verb that prints
them is run against a real `talon serve` and its stdout/stderr bytes are searched for the raw
characters; JSON output must still parse back to the exact hostile value.
"""

from __future__ import annotations

import json
import os
import pty
import select
import subprocess
import sys
import time

import pytest
from hypothesis import given
from hypothesis import strategies as st
from support.pipe import REPO, TALON, Serve, make_workspace
from support.policies import READ_WRITE_POLICY as POLICY

from talon_tui.safe_text import dumps_json, escape_json_text, needs_escape, safe_str

HOSTILE = (
    "\x1b[1A\x1b[2K\x1b]52;c;ZXZpbA==\x07"
    "     42 2026-01-01T00:00:00Z tool.executed            status=ok\r"
    "\u202egpj.exe\u009b2J\x85\u2066x\u2069\u200e\u061c"
)
RAW_BAD = [
    b"\x1b",
    b"\x07",
    b"\r",
    "\u202e".encode(),
    "\u009b".encode(),
    b"\x9b",
    "\u0085".encode(),
    "\u2066".encode(),
    "\u200e".encode(),
    "\u061c".encode(),
]


def holds(obj, text: str) -> bool:
    """True when some string (key or value) anywhere in `obj` contains `text`."""
    if isinstance(obj, str):
        return text in obj
    if isinstance(obj, dict):
        return any(holds(k, text) or holds(v, text) for k, v in obj.items())
    if isinstance(obj, list):
        return any(holds(v, text) for v in obj)
    return False


def assert_clean(data: bytes, what: str) -> None:
    found = [b for b in RAW_BAD if b in data]
    assert not found, f"{what} printed raw {found!r}: {data[:400]!r}"


def talon(data_dir, *args, stdin: bytes | None = None, timeout: float = 60):
    return subprocess.run(
        [*TALON, *args, "--data-dir", str(data_dir)],
        capture_output=True,
        cwd=REPO,
        input=stdin,
        timeout=timeout,
    )


def checked(data_dir, *args, code: int | None = 0) -> subprocess.CompletedProcess:
    r = talon(data_dir, *args)
    what = "talon " + " ".join(args)
    if code is not None:
        assert r.returncode == code, (what, r.stdout[-400:], r.stderr[-400:])
    assert_clean(r.stdout, what + " stdout")
    assert_clean(r.stderr, what + " stderr")
    return r


@pytest.fixture(scope="module")
def hostile_log(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli-out")
    serve = Serve(root / "data").start()
    ws = make_workspace(root)
    (ws / "work" / "evil.txt").write_text("content " + HOSTILE)
    policy = root / "policy.json"
    policy.write_text(json.dumps(POLICY))
    made = talon(
        serve.data,
        "session",
        "create",
        "label " + HOSTILE,
        "--workspace",
        str(ws),
        "--policy",
        str(policy),
        "--json",
    )
    assert made.returncode == 0, made.stderr
    key = json.loads(made.stdout)["agent_key"]
    # the log holds hostile text before any test runs (each test may run alone, or in parallel)
    params = json.dumps({"path": "work/a.txt", HOSTILE: 1})
    talon(serve.data, "agent", "intent", "--key", key, "--tool", "file.read", "--params", params)
    read = json.dumps({"path": "work/evil.txt"})
    talon(serve.data, "agent", "intent", "--key", key, "--tool", "file.read", "--params", read)
    yield serve, key, root
    serve.stop_quietly()


def test_deny_reason_with_a_hostile_param_name(hostile_log):
    serve, key, _ = hostile_log
    params = json.dumps({"path": "work/a.txt", HOSTILE: 1})
    r = checked(
        serve.data,
        "agent",
        "intent",
        "--key",
        key,
        "--tool",
        "file.read",
        "--params",
        params,
        "--json",
        code=1,
    )
    doc = json.loads(r.stdout)
    assert HOSTILE in doc["error"]["message"]  # the JSON still carries the exact text
    text = checked(
        serve.data,
        "agent",
        "intent",
        "--key",
        key,
        "--tool",
        "file.read",
        "--params",
        params,
        code=1,
    )
    assert b"\\x1b[1A" in text.stderr and b"\\u202e" in text.stderr


def test_agent_intent_result_and_agent_run(hostile_log):
    serve, key, root = hostile_log
    for extra in ((), ("--json",)):
        r = checked(
            serve.data,
            "agent",
            "intent",
            "--key",
            key,
            "--tool",
            "file.read",
            "--params",
            '{"path": "work/evil.txt"}',
            *extra,
        )
        content = json.loads(r.stdout)
        if extra:
            content = content["result"]
        assert content["content"] == "content " + HOSTILE
    script = root / "run.jsonl"
    script.write_text(
        json.dumps({"tool": "file.read", "params": {"path": "work/evil.txt"}})
        + "\n"
        + json.dumps({"tool": "file.read " + HOSTILE, "params": {HOSTILE: HOSTILE}})
        + "\n"
        + json.dumps({"tool": "file.read", "params": {"path": "work/a.txt", HOSTILE: 1}})
        + "\n"
    )
    checked(serve.data, "agent", "run", "--key", key, str(script), code=None)
    r = checked(serve.data, "agent", "run", "--key", key, str(script), "--json", code=None)
    json.loads(r.stdout)


def test_audit_tail_text_and_json(hostile_log):
    serve, _key, _ = hostile_log
    text = checked(serve.data, "audit", "tail", "-n", "200")
    assert b"\\x1b" in text.stdout  # the hostile text is there, written out
    r = checked(serve.data, "audit", "tail", "-n", "200", "--json")
    events = [json.loads(line) for line in r.stdout.splitlines()]
    assert any(holds(e, HOSTILE) for e in events)


def test_audit_tail_follow(hostile_log):
    serve, key, _ = hostile_log
    follow = subprocess.Popen(
        [*TALON, "audit", "tail", "-n", "50", "--follow", "--data-dir", str(serve.data)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=REPO,
    )
    try:
        # the marker's events reach the follower in its backlog or live, whichever comes first
        params = json.dumps({"path": "work/a.txt", HOSTILE + "follow-marker": 1})
        talon(
            serve.data, "agent", "intent", "--key", key, "--tool", "file.read", "--params", params
        )
        got = b""
        deadline = time.monotonic() + 30
        while b"follow-marker" not in got and time.monotonic() < deadline:
            ready, _, _ = select.select([follow.stdout], [], [], 1)
            if ready:
                got += os.read(follow.stdout.fileno(), 65536)
        assert b"follow-marker" in got, got
        assert_clean(got, "audit tail --follow")
    finally:
        follow.terminate()
        follow.wait(10)


def test_replay_text_and_json(hostile_log):
    serve, key, _ = hostile_log
    r = talon(
        serve.data,
        "agent",
        "intent",
        "--key",
        key,
        "--tool",
        "file.read",
        "--params",
        json.dumps({"path": "work/a.txt", HOSTILE: 1}),
        "--json",
    )
    run_id = json.loads(r.stdout)["error"]["details"]["run_id"]
    ok = talon(
        serve.data,
        "agent",
        "intent",
        "--key",
        key,
        "--tool",
        "file.read",
        "--params",
        '{"path": "work/evil.txt"}',
        "--json",
    )
    ok_run = json.loads(ok.stdout)["run_id"]
    for rid in (run_id, ok_run):
        text = checked(serve.data, "replay", rid, code=None)
        assert rid.encode() in text.stdout
        doc = json.loads(checked(serve.data, "replay", rid, "--json", code=None).stdout)
        assert holds(doc, HOSTILE)


def test_session_list_and_policy_show(hostile_log):
    serve, _key, _ = hostile_log
    r = checked(serve.data, "session", "list")
    assert b"label \\x1b[1A" in r.stdout
    r = checked(serve.data, "session", "list", "--json")
    assert any(s["label"] == "label " + HOSTILE for s in json.loads(r.stdout))
    sid = json.loads(r.stdout)[0]["id"]
    checked(serve.data, "policy", "show", sid)


def test_approvals_list_with_hostile_params(hostile_log):
    serve, key, _ = hostile_log
    waiting = subprocess.Popen(
        [
            *TALON,
            "agent",
            "intent",
            "--key",
            key,
            "--tool",
            "file.write",
            "--params",
            json.dumps({"path": "work/out.txt", "content": HOSTILE}),
            "--data-dir",
            str(serve.data),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=REPO,
    )
    try:
        pending = []
        deadline = time.monotonic() + 30
        while not pending and time.monotonic() < deadline:
            pending = json.loads(checked(serve.data, "approvals", "--json").stdout)
            time.sleep(0.2)
        assert pending, "the write never waited for an approval"
        assert pending[0]["params"]["content"] == HOSTILE
        r = checked(serve.data, "approvals", "list")
        assert b"\\u202e" in r.stdout
        checked(serve.data, "approvals", "deny", pending[0]["approval_id"])
    finally:
        out, err = waiting.communicate(timeout=30)
    assert_clean(out, "waiting agent stdout")
    assert_clean(err, "waiting agent stderr")


def test_audit_export_to_a_terminal_is_escaped_but_to_a_file_exact(hostile_log, tmp_path):
    serve, _key, _ = hostile_log
    out_file = tmp_path / "export.jsonl"
    r = talon(serve.data, "audit", "export", "-o", str(out_file))
    assert r.returncode == 0, r.stderr
    exported = out_file.read_bytes()
    log = (serve.data / "audit" / "audit.jsonl").read_bytes()
    assert exported == log[: len(exported)]  # a data file: the log's exact bytes
    master, slave = pty.openpty()
    try:
        proc = subprocess.Popen(
            [*TALON, "audit", "export", "--data-dir", str(serve.data)],
            stdout=slave,
            stderr=subprocess.PIPE,
            cwd=REPO,
        )
        os.close(slave)
        got = b""
        while True:
            ready, _, _ = select.select([master], [], [], 30)
            if not ready:
                break
            try:
                chunk = os.read(master, 65536)
            except OSError:
                break
            if not chunk:
                break
            got += chunk
        proc.wait(30)
    finally:
        os.close(master)
    assert proc.returncode == 0
    got = got.replace(b"\r\n", b"\n")  # the pty's own line discipline
    assert_clean(got, "audit export to a terminal")
    lines = [json.loads(line) for line in got.splitlines() if line.strip()]
    # the running engine may sign a time checkpoint between the two exports: the terminal's
    # copy holds every event of the file's, in order, and possibly later ones
    assert len(lines) >= exported.count(b"\n")
    assert lines[: exported.count(b"\n")] == [json.loads(line) for line in exported.splitlines()]


# ------------------------------------------------------------------ the functions themselves


@given(st.recursive(st.text() | st.integers() | st.none(), lambda c: st.lists(c, max_size=3)))
def test_dumps_json_round_trips_and_hides_every_terminal_control(value):
    for indent in (None, 2):
        text = dumps_json({"k": value, "\u202e\x1b": value}, indent=indent)
        assert json.loads(text) == {"k": value, "\u202e\x1b": value}
        assert not any(needs_escape(ch) and ch != "\n" for ch in text)


@given(st.text())
def test_safe_str_never_lets_a_control_through(value):
    shown = safe_str(value, 0)
    assert not any(needs_escape(ch) for ch in shown)


def test_escape_json_text_covers_the_named_characters():
    hostile = "\x7f\u0080\u009b\u009f\u202a\u202e\u2066\u2069\u200e\u200f\u061c\U000e0041"
    text = escape_json_text(json.dumps(hostile, ensure_ascii=False))
    assert text.isascii()
    assert json.loads(text) == hostile


def test_the_console_and_the_cli_show_the_same_characters():
    from talon_tui.app.widgets.safe_text import safe_text

    for value in (HOSTILE, {"k": HOSTILE}, "漢字" * 40, "e\u0301" * 50):
        for max_len in (0, 10, 120):
            assert safe_text(value, max_len).plain == safe_str(value, max_len)


def test_the_cli_side_imports_neither_textual_nor_rich():
    code = (
        "import sys\n"
        "import talon_tui.safe_text, talon_tui.cli.commands.common\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('textual', 'rich')))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
