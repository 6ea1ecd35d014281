"""The hook's one round trip: `hello` goes out in the same write as its first request.

A scripted engine on a real Unix socket answers nothing until it holds both lines: a hook that
waited for the `hello` reply before sending `decide` would time out (and deny). A refused key
still denies, and the engine never answers the request that came with it.
"""

from __future__ import annotations

import json
import socket
import threading
from pathlib import Path

from talon_tui.hooks import runner


class TwoLineEngine:
    """Accepts one connection, reads until two lines arrived, then answers both."""

    def __init__(self, path: Path, hello_ok: bool = True) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(str(path))
        self.sock.listen(1)
        self.hello_ok = hello_ok
        self.frames: list[dict] = []
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def serve(self) -> None:
        conn, _ = self.sock.accept()
        conn.settimeout(10)
        buf = b""
        try:
            while buf.count(b"\n") < 2:
                chunk = conn.recv(65536)
                if not chunk:
                    return
                buf += chunk
        except TimeoutError:
            return
        finally:
            self.frames = [json.loads(ln) for ln in buf.splitlines() if ln.strip()]
        if not self.hello_ok:
            conn.sendall(
                b'{"id": 1, "ok": false, "error": {"code": "UNAUTHENTICATED", '
                b'"message": "unknown agent key"}}\n'
            )
            conn.close()
            return
        conn.sendall(
            b'{"id": 1, "ok": true, "session_id": "s", "subject": "a"}\n'
            b'{"id": 2, "ok": true, "decision": "ALLOW", "executor": "agent", '
            b'"reason": "allowed by the test engine"}\n'
        )
        conn.close()


def options(tmp_path: Path, sock: Path) -> runner.HookOptions:
    return runner.HookOptions(
        agent="claude-code",
        agent_key="talon_agent_k",
        data_dir=str(tmp_path / "data"),
        socket_path=str(sock),
        wait_seconds=3.0,
    )


def payload(ws: Path) -> bytes:
    return json.dumps(
        {
            "hook_event_name": "PreToolUse",
            "cwd": str(ws),
            "tool_name": "Read",
            "tool_input": {"file_path": f"{ws}/work/a.txt"},
            "tool_use_id": "t1",
        }
    ).encode()


def test_hello_and_decide_go_out_together(tmp_path):
    sock = tmp_path / "e.sock"
    engine = TwoLineEngine(sock)
    answer = runner.run(options(tmp_path, sock), payload(tmp_path))
    engine.thread.join(10)
    assert [f["op"] for f in engine.frames] == ["hello", "decide"]
    assert engine.frames[0]["auth"] == {"agent_key": "talon_agent_k"}
    assert engine.frames[1]["tool"] == "file.read"
    out = json.loads(answer.stdout)["hookSpecificOutput"]
    assert out["permissionDecision"] == "allow", answer


def test_a_refused_key_denies_even_with_the_request_sent(tmp_path):
    sock = tmp_path / "e.sock"
    TwoLineEngine(sock, hello_ok=False)
    answer = runner.run(options(tmp_path, sock), payload(tmp_path))
    out = json.loads(answer.stdout)["hookSpecificOutput"]
    assert out["permissionDecision"] == "deny"
    assert "refused the agent key" in out["permissionDecisionReason"]
