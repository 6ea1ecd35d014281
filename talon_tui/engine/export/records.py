"""One audit event as an export record: OTLP attributes with stable names, an RFC 5424 syslog
message with a JSON or CEF payload. The event is exported as it is in the log, where secrets are
already redacted (`«secret:name»`); nothing here reads anything but the event."""

from __future__ import annotations

import json
import os
import re
import socket
from typing import Any

import orjson

from talon_tui import __version__

#: the stable attribute names every exporter uses (README, DESIGN section 11)
ATTRIBUTES = (
    "talon.seq",
    "talon.type",
    "talon.session_id",
    "talon.run_id",
    "talon.tool",
    "talon.decision",
    "talon.reason",
    "talon.hash",
    "talon.actor",
)
SYSLOG_SD_ID = "talon@32473"  # 32473: the example enterprise number of RFC 5612
HEAD_TYPE = "audit.checkpoint"


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _data(event: dict[str, Any]) -> dict[str, Any]:
    data = event.get("data")
    return data if isinstance(data, dict) else {}


def decision(event: dict[str, Any]) -> str:
    """ALLOW, DENY or REQUIRE_APPROVAL for a decision, ALLOW/DENY for an approval's outcome."""
    data = _data(event)
    if _text(data.get("decision")):
        return str(data["decision"])
    if event.get("type") == "approval.decided" and isinstance(data.get("allow"), bool):
        return "ALLOW" if data["allow"] else "DENY"
    return ""


def actor(event: dict[str, Any]) -> str:
    """Who acted: the operator or CLI for policy changes, policy/broker/operator for decisions,
    else the agent's subject."""
    data = _data(event)
    for key in ("actor", "by", "subject"):
        if _text(data.get(key)):
            return str(data[key])
    return ""


def data_json(data: dict[str, Any]) -> str:
    """The event's data as sorted, compact JSON (orjson: a tenth of `json.dumps`' CPU; an int
    beyond 64 bits, which orjson refuses, goes through `json.dumps`)."""
    try:
        return orjson.dumps(data, option=orjson.OPT_SORT_KEYS).decode()
    except TypeError:  # orjson.JSONEncodeError is a TypeError
        return json.dumps(data, sort_keys=True, ensure_ascii=False, separators=(",", ":"))


def attributes(event: dict[str, Any]) -> dict[str, str | int | bool]:
    """The event's fields as flat attributes. The stable names are always present (empty string
    when the event has no such field); `talon.data` carries the whole `data` as JSON, and a
    checkpoint adds the signed head (`talon.head.seq`, `.hash`, `.signature`, `.key_id`)."""
    data = _data(event)
    attrs: dict[str, str | int | bool] = {
        "talon.seq": int(event.get("seq", -1)),
        "talon.type": _text(event.get("type")),
        "talon.session_id": _text(event.get("session_id")),
        "talon.run_id": _text(event.get("run_id")),
        "talon.tool": _text(data.get("tool")),
        "talon.decision": decision(event),
        "talon.reason": _text(data.get("reason")),
        "talon.hash": _text(event.get("hash")),
        "talon.actor": actor(event),
        "talon.event_id": _text(event.get("event_id")),
        "talon.ts": _text(event.get("ts")),
        "talon.prev_hash": _text(event.get("prev_hash")),
        "talon.data": data_json(data),
    }
    if event.get("type") == HEAD_TYPE:
        attrs["talon.head.seq"] = int(data.get("checkpoint_seq", -1))
        attrs["talon.head.hash"] = _text(data.get("checkpoint_hash"))
        attrs["talon.head.signature"] = _text(data.get("signature"))
        attrs["talon.head.key_id"] = _text(data.get("key_id"))
    return attrs


def severity(event: dict[str, Any]) -> tuple[int, str]:
    """(syslog severity, text): a denial or failed tool is a warning, the rest informational."""
    data = _data(event)
    if decision(event) == "DENY" or data.get("status") in ("error", "denied"):
        return 4, "WARN"
    if event.get("type") in ("audit.recovered", "audit.index_rebuilt", "pipe.rejected"):
        return 4, "WARN"
    return 6, "INFO"


# ---------------------------------------------------------------------------- syslog


_CONTROLS = {c: f"\\u{c:04x}" for c in [*range(0x20), 0x7F, *range(0x80, 0xA0), 0x2028, 0x2029]}
_CONTROLS.update({ord("\n"): "\\n", ord("\r"): "\\r", ord("\t"): "\\t"})
#: any character `_CONTROLS` rewrites: most values have none, and `translate` with a dict
#: costs a dict lookup per character
_HAS_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def written_out(value: str) -> str:
    """`value` with its control and line-break characters written out (`\\n`, `\\uXXXX`)."""
    return value.translate(_CONTROLS) if _HAS_CONTROL.search(value) else value


def _sd_escape(value: str) -> str:
    """An SD-PARAM value: `"`, `\\` and `]` escaped (RFC 5424), control and line-break
    characters written out as `\\n`, `\\uXXXX`, so that no receiver sees a line end in it."""
    value = value.replace("\\", "\\\\").replace('"', '\\"').replace("]", "\\]")
    return written_out(value)


def _printable(value: str, limit: int) -> str:
    """RFC 5424 header fields: printable US-ASCII without spaces, at most `limit` chars."""
    if value.isascii() and value.isprintable() and " " not in value:
        out = value[:limit]  # what the line below gives, without a Python step per character
    else:
        out = "".join(c if 33 <= ord(c) <= 126 else "_" for c in value)[:limit]
    return out or "-"


def _cef_escape(value: str, header: bool) -> str:
    value = value.replace("\\", "\\\\")
    value = value.replace("|", "\\|") if header else value.replace("=", "\\=")
    return written_out(value)


def cef(event: dict[str, Any], attrs: dict[str, str | int | bool] | None = None) -> str:
    """`CEF:0|Talon|talon-tui|VERSION|TYPE|NAME|SEVERITY|EXT` with the stable attributes and
    the signed head of a checkpoint in the extension (custom strings cs1..cs6 labelled)."""
    attrs = attributes(event) if attrs is None else attrs
    sev = 7 if severity(event)[0] == 4 else 3
    name = attrs["talon.type"]
    if attrs["talon.decision"]:
        name = f"{name} {attrs['talon.decision']}"
    ext: list[tuple[str, str]] = [
        ("rt", str(attrs["talon.ts"])),
        ("externalId", str(attrs["talon.seq"])),
        ("act", str(attrs["talon.decision"])),
        ("reason", str(attrs["talon.reason"])),
        ("suser", str(attrs["talon.actor"])),
        ("cs1Label", "talon.session_id"),
        ("cs1", str(attrs["talon.session_id"])),
        ("cs2Label", "talon.run_id"),
        ("cs2", str(attrs["talon.run_id"])),
        ("cs3Label", "talon.tool"),
        ("cs3", str(attrs["talon.tool"])),
        ("cs4Label", "talon.hash"),
        ("cs4", str(attrs["talon.hash"])),
    ]
    if "talon.head.hash" in attrs:
        ext += [
            ("cs5Label", "talon.head"),
            ("cs5", f"{attrs['talon.head.seq']}:{attrs['talon.head.hash']}"),
            ("cs6Label", "talon.head.signature"),
            ("cs6", str(attrs["talon.head.signature"])),
        ]
    head = "|".join(
        _cef_escape(x, header=True)
        for x in ("CEF:0", "Talon", "talon-tui", __version__, str(attrs["talon.type"]), str(name))
    )
    body = " ".join(f"{k}={_cef_escape(v, header=False)}" for k, v in ext if v)
    return f"{head}|{sev}|{body}"


def syslog_message(event: dict[str, Any], fmt: str, hostname: str | None = None) -> bytes:
    """One RFC 5424 message: facility local0, MSGID the event type, structured data
    `[talon@32473 seq=… type=… hash=… …]`, then the event as JSON (or CEF)."""
    sev, _ = severity(event)
    pri = 16 * 8 + sev
    attrs = attributes(event)
    sd_items = [
        (name.removeprefix("talon."), str(attrs[name])) for name in ATTRIBUTES if attrs[name] != ""
    ]
    sd = "[" + SYSLOG_SD_ID + "".join(f' {k}="{_sd_escape(v)}"' for k, v in sd_items) + "]"
    host = _printable(hostname or socket.gethostname(), 255)
    msgid = _printable(str(attrs["talon.type"]), 32)
    ts = _printable(str(attrs["talon.ts"]), 64)
    if fmt == "cef":
        msg = cef(event, attrs)
    else:
        msg = json.dumps(event, sort_keys=True, ensure_ascii=False)
    header = f"<{pri}>1 {ts} {host} talon {os.getpid()} {msgid} {sd} "
    return header.encode("utf-8") + b"\xef\xbb\xbf" + msg.encode("utf-8")
