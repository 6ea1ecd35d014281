"""Syslog export end to end: a real `talon serve` sends RFC 5424 messages to real UDP and TCP
receivers on 127.0.0.1; the payload is the event as JSON or CEF; a TCP receiver that goes down
and comes back gets the rest, nothing twice. Plus the second JSONL file, byte for byte, and the
head witness (`events=heads`) that `talon audit verify --expect-head` accepts."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest
from support.pipe import TALON, Serve, make_workspace, new_session, run
from support.receivers import SyslogTcp, SyslogUdp, wait_for

from talon_tui.client import AgentClient

pytestmark = pytest.mark.slow

RFC5424 = re.compile(
    rb"^<(?P<pri>\d{1,3})>1 (?P<ts>\S+) (?P<host>\S+) talon (?P<pid>\d+) (?P<msgid>\S+) "
    rb"(?P<sd>\[talon@32473(?: [a-z_]+=\"(?:[^\"\\\]]|\\.)*\")*\]) \xef\xbb\xbf(?P<msg>.*)$",
    re.S,
)


def log_events(data: Path) -> list[dict]:
    return [json.loads(x) for x in (data / "audit" / "audit.jsonl").read_bytes().splitlines()]


def reads(serve: Serve, key: str, n: int, path: str = "work/a.txt") -> None:
    with AgentClient(key, socket_path=serve.socket_path) as agent:
        for _ in range(n):
            try:
                agent.intent("file.read", {"path": path})
            except Exception:  # a denial is what some calls want
                pass


def parse(msg: bytes) -> dict:
    m = RFC5424.match(msg)
    assert m, msg[:300]
    sd = dict(re.findall(r'([a-z_]+)="((?:[^"\\\]]|\\.)*)"', m["sd"].decode()))
    return {**m.groupdict(), "sd": sd}


def test_syslog_udp_json_and_tcp_cef_with_an_outage(tmp_path):
    udp = SyslogUdp("127.0.0.1")
    tcp = SyslogTcp("127.0.0.1")
    data = tmp_path / "data"
    serve = Serve(
        data,
        args=[
            "--export",
            f"syslog=127.0.0.1:{udp.port}",
            "--export",
            f"syslog=127.0.0.1:{tcp.port}/tcp,format=cef",
        ],
    ).start()
    try:
        _, key = run(new_session(serve, make_workspace(tmp_path)))
        reads(serve, key, 2)
        reads(serve, key, 1, path="other/b.txt")  # denied: a warning
        head = log_events(data)[-1]["seq"]
        wait_for(lambda: len(tcp.messages) > head and len(udp.messages) > head, what="sent")
        tcp.close()
        reads(serve, key, 3)
        tcp.start()  # the same port again
        head = log_events(data)[-1]["seq"]
        try:
            wait_for(
                # at or past head: a timer checkpoint may be signed meanwhile
                lambda: tcp.messages and int(parse(tcp.messages[-1])["sd"]["seq"]) >= head,
                timeout=60,
                what=f"tcp backlog up to {head}",
            )
        except AssertionError:
            status = (data / "export" / "status.json").read_text()
            seqs = [parse(m)["sd"]["seq"] for m in tcp.messages]
            raise AssertionError(f"tcp backlog: got {seqs}; {status}") from None
        rc, err = serve.terminate()
        assert rc == 0, err
    finally:
        serve.stop_quietly()
        udp.close()
        tcp.close()

    events = log_events(data)
    udp_parsed = [parse(m) for m in udp.messages]
    tcp_parsed = [parse(m) for m in tcp.messages]
    assert [int(p["sd"]["seq"]) for p in tcp_parsed] == [e["seq"] for e in events]
    assert [int(p["sd"]["seq"]) for p in udp_parsed] == [e["seq"] for e in events]
    for event, p in zip(events, udp_parsed, strict=True):
        assert json.loads(p["msg"]) == event  # the JSON payload is the event itself
        assert p["msgid"].decode() == event["type"]
        assert p["sd"]["hash"] == event["hash"]
    denied = next(
        e for e in events if e["type"] == "policy.decision" and e["data"]["decision"] == "DENY"
    )
    warn = tcp_parsed[denied["seq"]]
    assert int(warn["pri"]) == 16 * 8 + 4  # local0.warning
    assert warn["msg"].startswith(b"CEF:0|Talon|talon-tui|")
    assert b"|policy.decision|policy.decision DENY|7|" in warn["msg"]
    assert b"act=DENY" in warn["msg"] and b"cs3=file.read" in warn["msg"]
    assert warn["sd"]["decision"] == "DENY" and warn["sd"]["tool"] == "file.read"
    allowed = tcp_parsed[events[-1]["seq"] - 1]
    assert int(allowed["pri"]) in (16 * 8 + 6, 16 * 8 + 4)


def test_second_jsonl_file_and_head_witness(tmp_path):
    data = tmp_path / "data"
    copy = tmp_path / "other-disk" / "talon.jsonl"
    heads = tmp_path / "other-disk" / "heads.jsonl"
    copy.parent.mkdir()
    serve = Serve(
        data, args=["--export", f"jsonl={copy}", "--export", f"jsonl={heads},events=heads"]
    ).start()
    try:
        _, key = run(new_session(serve, make_workspace(tmp_path)))
        reads(serve, key, 4)
        rc, err = serve.terminate()
        assert rc == 0, err
    finally:
        serve.stop_quietly()
    assert copy.read_bytes() == (data / "audit" / "audit.jsonl").read_bytes()
    published = [json.loads(x) for x in heads.read_bytes().splitlines()]
    assert published and {e["type"] for e in published} == {"audit.checkpoint"}
    head = published[-1]["data"]
    witness = f"{head['checkpoint_seq']}:{head['checkpoint_hash']}"
    ok = subprocess.run(
        [*TALON, "audit", "verify", "--data-dir", str(data), "--expect-head", witness],
        capture_output=True,
        text=True,
    )
    assert ok.returncode == 0, ok.stdout + ok.stderr
    forged = f"{head['checkpoint_seq']}:sha256:{'0' * 64}"
    bad = subprocess.run(
        [*TALON, "audit", "verify", "--data-dir", str(data), "--expect-head", forged],
        capture_output=True,
        text=True,
    )
    assert bad.returncode == 1


def test_the_export_process_ends_with_its_engine(tmp_path):
    """kill -9 of `talon serve`: the exporters' process sees its stdin close, sends what is left
    and exits; nothing is left running."""
    import os
    import time

    data = tmp_path / "data"
    copy = tmp_path / "copy.jsonl"
    serve = Serve(data, args=["--export", f"jsonl={copy}"]).start()
    status = data / "export" / "status.json"
    wait_for(status.exists, what="the export process's status")
    pid = json.loads(status.read_text())["pid"]
    os.kill(pid, 0)  # running
    serve.kill9()
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.1)
    else:
        os.kill(pid, 9)
        raise AssertionError("the export process outlived its engine")
    assert copy.read_bytes() == (data / "audit" / "audit.jsonl").read_bytes()
