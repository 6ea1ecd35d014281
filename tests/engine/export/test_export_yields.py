"""The exporters stay out of the intent path's way: their process runs only when the CPU is
otherwise idle (SCHED_IDLE), and an exporter fsyncs its cursor at most every
CURSOR_SYNC_SECONDS (each fsync forces a journal commit the engine's next fdatasync of the log
waits behind), yet at least once still holds: a cursor saved without an fsync, or lost, only
sends events again."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from support.receivers import wait_for

from talon_tui.engine.audit.log import AuditLog
from talon_tui.engine.core import keys
from talon_tui.engine.export import ExportManager, parse_spec
from talon_tui.engine.export import follower as follower_mod
from talon_tui.engine.export.process import ExportProcess


def _log(tmp_path: Path, n: int) -> AuditLog:
    priv, _ = keys.load_or_create(tmp_path / "keys", "audit")
    log = AuditLog(tmp_path / "audit", priv).open()
    for i in range(n):
        log.append("run.started", run_id=f"run_{i}", data={"i": i})
    log.sync()
    return log


def _lines(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_bytes().splitlines()] if path.exists() else []


@pytest.mark.skipif(not hasattr(os, "SCHED_IDLE"), reason="SCHED_IDLE is Linux only")
def test_the_export_process_runs_only_on_an_idle_cpu(tmp_path):
    log = _log(tmp_path, 3)
    proc = ExportProcess(
        [parse_spec(f"jsonl={tmp_path / 'copy.jsonl'}")], log.path, tmp_path / "export"
    )
    proc.start(drain_seconds=1.0)
    try:
        assert proc.proc is not None
        wait_for(lambda: len(_lines(tmp_path / "copy.jsonl")) >= 3, timeout=30)
        pid = proc.proc.pid
        assert os.sched_getscheduler(pid) == os.SCHED_IDLE
        # and every thread of it (they inherit the policy from the main thread)
        for tid in os.listdir(f"/proc/{pid}/task"):
            assert os.sched_getscheduler(int(tid)) == os.SCHED_IDLE, tid
    finally:
        proc.stop(timeout=30)
        log.close()


def test_the_cursor_is_fsynced_at_most_every_few_seconds(tmp_path, monkeypatch):
    log = _log(tmp_path, 2)
    real, synced = os.fsync, []

    def spy(fd):
        synced.append(os.readlink(f"/proc/self/fd/{fd}"))
        real(fd)

    monkeypatch.setattr(follower_mod.os, "fsync", spy)  # os.fsync of every module
    monkeypatch.setattr(follower_mod, "CURSOR_SYNC_SECONDS", 3600.0)
    copy = tmp_path / "copy.jsonl"
    manager = ExportManager([parse_spec(f"jsonl={copy}")], log.path, tmp_path / "export")
    exporter = manager.exporters[0]
    exporter.poll = 0.01
    manager.start()
    for batch in range(5):  # five batches, each sent and its cursor saved
        log.append("run.started", data={"batch": batch})
        log.sync()
        want = log.next_seq
        wait_for(lambda want=want: len(_lines(copy)) >= want, timeout=30)
        wait_for(lambda want=want: exporter.caught_up(want - 1), timeout=30)
    cursors = str(tmp_path / "export")
    cursor_syncs = [p for p in synced if p.startswith(cursors)]
    copy_syncs = [p for p in synced if p == str(copy)]
    assert len(copy_syncs) >= 5  # the JSONL sink still fsyncs every batch it acknowledges
    assert cursor_syncs == []  # within CURSOR_SYNC_SECONDS of the start: none yet
    cursor = json.loads((tmp_path / "export" / f"{exporter.spec.name}.cursor").read_text())
    assert cursor["seq"] == log.next_seq  # saved (without an fsync) after every batch
    manager.stop()
    # stopping makes the cursor where it stopped durable
    assert len([p for p in synced if p.startswith(cursors)]) == 1
    log.close()


def test_a_cursor_left_behind_sends_again_nothing_lost(tmp_path):
    """At least once with a cursor a crash left behind (not fsynced): the events after it are
    sent again, none is missing, and the copy's order is the log's."""
    log = _log(tmp_path, 4)
    copy = tmp_path / "copy.jsonl"
    spec = parse_spec(f"jsonl={copy}")
    manager = ExportManager([spec], log.path, tmp_path / "export")
    manager.start()
    manager.drain(log.next_seq - 1, timeout=30)
    manager.stop()
    cursor_path = tmp_path / "export" / f"{spec.name}.cursor"
    stale = {"seq": 2, "offset": 0, "hash": ""}
    lines = log.path.read_bytes().splitlines(keepends=True)
    stale["offset"] = sum(len(x) for x in lines[:2])
    stale["hash"] = json.loads(lines[1])["hash"]
    cursor_path.write_text(json.dumps(stale))  # as if the last saves never reached the disk
    log.append("run.started", data={"after": True})
    log.sync()
    manager = ExportManager([spec], log.path, tmp_path / "export")
    manager.start()
    manager.drain(log.next_seq - 1, timeout=30)
    manager.stop()
    seqs = [e["seq"] for e in _lines(copy)]
    assert sorted(set(seqs)) == list(range(log.next_seq))  # nothing lost
    assert seqs == sorted(seqs[:4]) + list(range(2, log.next_seq))  # seq 2, 3 sent again
    log.close()


def test_worker_falls_back_to_nice_where_idle_is_refused(tmp_path):
    code = (
        "import os\n"
        "from talon_tui.engine.export import worker\n"
        "def refuse(*a):\n"
        "    raise PermissionError(1, 'Operation not permitted')\n"
        "os.sched_setscheduler = refuse\n"
        "before = os.nice(0)\n"
        "print(worker.yield_cpu(10), os.nice(0) - before)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    ).stdout.split()
    assert out == ["nice", "10", "10"]
