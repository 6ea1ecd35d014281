"""The follower's reads: lines cut anywhere by the read size or by a writer caught mid-line are
exported whole, once, in order (the buffer is cut once per batch, not once per line)."""

from __future__ import annotations

import json

import pytest
from support.receivers import wait_for

from talon_tui.engine.audit.log import AuditLog
from talon_tui.engine.core import keys
from talon_tui.engine.export import ExportManager, parse_spec
from talon_tui.engine.export import follower as follower_mod


@pytest.mark.parametrize("chunk", [1, 7, 300, 1 << 20])
def test_lines_cut_by_the_read_size_arrive_whole_once_in_order(tmp_path, monkeypatch, chunk):
    monkeypatch.setattr(follower_mod, "READ_CHUNK", chunk)
    monkeypatch.setattr(follower_mod, "BATCH", 5)
    priv, _ = keys.load_or_create(tmp_path / "keys", "audit")
    log = AuditLog(tmp_path / "audit", priv).open()
    for i in range(23):
        log.append("run.started", run_id=f"run_{i}", data={"i": i, "pad": "x" * (i * 13)})
    log.close()
    full = log.path.read_bytes()
    lines = full.splitlines(keepends=True)
    head = b"".join(lines[:-1])
    followed = tmp_path / "followed.jsonl"
    followed.write_bytes(head + lines[-1][:10])  # the writer caught mid-line
    copy = tmp_path / "copy.jsonl"
    manager = ExportManager([parse_spec(f"jsonl={copy}")], followed, tmp_path / "export")
    exporter = manager.exporters[0]
    exporter.poll = 0.01
    manager.start()
    try:
        manager.drain(len(lines) - 2, timeout=60)
        passes = exporter.eof_passes
        wait_for(lambda: exporter.eof_passes > passes + 2, what="passes over the half line")
        assert copy.read_bytes() == head  # the half line is held back
        followed.write_bytes(full)
        manager.drain(len(lines) - 1, timeout=60)
    finally:
        manager.stop()
    assert copy.read_bytes() == full
    assert [json.loads(x)["seq"] for x in lines] == list(range(len(lines)))
    assert manager.status(len(lines) - 1)[0]["state"] == "ok"
