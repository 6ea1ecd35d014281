"""Syslog and CEF write control and line-break characters out (`\\n`, `\\uXXXX`): the shortcut
that skips values without any must skip exactly those, for every character of the BMP."""

from __future__ import annotations

from talon_tui.engine.export.records import syslog_message, written_out

CONTROLS = {*range(0x20), 0x7F, *range(0x80, 0xA0), 0x2028, 0x2029}
NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def test_every_control_character_and_only_those_is_written_out():
    for code in range(0x10000):
        if 0xD800 <= code <= 0xDFFF:
            continue
        c = chr(code)
        want = NAMED.get(c, f"\\u{code:04x}") if code in CONTROLS else c
        assert written_out(f"a{c}b") == f"a{want}b", hex(code)


def test_header_fields_are_printable_ascii_without_spaces():
    event = {"seq": 1, "type": "run.started\u00e9 x\ty", "ts": "2026-12-03T13:00:00.000000Z"}
    header = syslog_message(event, "json", hostname="h\u00f6st name").split(b"\xef\xbb\xbf")[0]
    fields = header.decode().split(" ", 7)
    assert fields[2] == "h_st_name"  # HOSTNAME
    assert fields[5] == "run.started__x_y"  # MSGID
    assert syslog_message(event, "json", hostname="plain-host").split(b" ")[2] == b"plain-host"
