"""Export records from hostile events: agent-controlled text (a reason, a tool name, a path)
cannot break out of a syslog structured-data value, a CEF field or the header, and cannot
forge another line; the stable attribute names are always there."""

from __future__ import annotations

import json
import re

from talon_tui.engine.export import ATTRIBUTES, attributes, cef, parse_spec, syslog_message

HOSTILE = 'x"] [evil@1 a="b"]\n<13>1 - - forged\r|CEF:0|x=y\\'


def event(**data) -> dict:
    return {
        "seq": 7,
        "event_id": "evt_1",
        "ts": "2026-12-03T09:00:00.000001Z",
        "session_id": "sess_1",
        "run_id": "run_1",
        "type": "policy.decision",
        "data": {
            "tool": "file.read",
            "decision": "DENY",
            "reason": HOSTILE,
            "by": "policy",
            **data,
        },
        "prev_hash": "sha256:" + "0" * 64,
        "hash": "sha256:" + "a" * 64,
    }


def test_stable_attributes_always_present():
    attrs = attributes({"seq": 0, "type": "engine.started", "data": {}})
    assert set(ATTRIBUTES) <= set(attrs)
    assert attrs["talon.tool"] == "" and attrs["talon.seq"] == 0
    decided = attributes(
        {"seq": 1, "type": "approval.decided", "data": {"allow": False, "by": "cli"}}
    )
    assert decided["talon.decision"] == "DENY" and decided["talon.actor"] == "cli"


def test_syslog_structured_data_holds_hostile_text():
    msg = syslog_message(event(), "json", hostname="host with space")
    head, _, body = msg.partition(b"\xef\xbb\xbf")
    assert b"\n" not in head and b"\r" not in head
    assert head.startswith(b"<132>1 2026-12-03T09:00:00.000001Z host_with_space talon ")
    sd = re.search(rb"(\[talon@32473.*\]) $", head).group(1).decode()
    params = re.findall(r'([a-z_]+)="((?:[^"\\\]]|\\.)*)"', sd)
    assert len(re.findall(r"(?<!\\)\]", sd)) == 1  # one SD element, closed once
    reason = dict(params)["reason"]
    assert reason == 'x\\"\\] [evil@1 a=\\"b\\"\\]\\n<13>1 - - forged\\r|CEF:0|x=y\\\\'
    assert (
        "\u2028"
        not in syslog_message(event(reason="a\u2028b\x85c"), "json").decode().split("\ufeff")[0]
    )
    assert json.loads(body)["data"]["reason"] == HOSTILE  # JSON escapes the newline


def test_cef_escapes_hostile_text_and_stays_one_line():
    text = cef(event(tool="a|b=c"))
    assert "\n" not in text and "\r" not in text
    fields = re.split(r"(?<!\\)\|", text, maxsplit=7)
    assert len(fields) == 8  # seven header fields and the extension: no extra pipe got in
    assert fields[5] == "policy.decision DENY"
    ext = fields[7]
    assert "cs3=a|b\\=c" in ext  # a pipe needs no escape in the extension; `=` does
    forged = cef(event(reason="fine act=ALLOW"))
    assert " act=DENY " in forged and "reason=fine act\\=ALLOW" in forged
    assert 'reason=x"] [evil@1 a\\="b"]\\n<13>1 - - forged\\r|CEF:0|x\\=y\\\\' in ext


def test_spec_defaults():
    spec = parse_spec("syslog=siem.example")
    assert (spec.host, spec.port, spec.transport, spec.format) == (
        "siem.example",
        514,
        "udp",
        "json",
    )
    assert parse_spec("otlp=http://c:4318/").endpoint == "http://c:4318/v1/logs"
    assert parse_spec("syslog=[::1]:6514/tcp,format=cef").host == "::1"
