"""Group commit: every caller is durable on return, fsyncs are shared and counted, and a
failed fsync fails every waiter instead of hanging it."""

from __future__ import annotations

import os
import threading

import pytest

from talon_tui.engine.audit import log as audit_mod
from talon_tui.engine.audit.log import AuditLog, AuditWriteError, verify_log
from talon_tui.engine.core import keys


def test_concurrent_writers_share_fsyncs(tmp_path, monkeypatch):
    priv, pub = keys.load_or_create(tmp_path / "keys", "audit")
    log = AuditLog(tmp_path / "audit", priv).open()
    real, running, peak = os.fdatasync, [0], [0]
    guard = threading.Lock()

    def slow(fd):
        with guard:
            running[0] += 1
            peak[0] = max(peak[0], running[0])
        real(fd)
        threading.Event().wait(0.001)
        with guard:
            running[0] -= 1

    monkeypatch.setattr(audit_mod.os, "fdatasync", slow)
    errors: list[str] = []

    def writer(n):
        for i in range(60):
            ev = log.append_durable("run.started", run_id=f"run_{n}", data={"i": i})
            if log._durable <= ev["seq"]:
                errors.append(f"event {ev['seq']} returned before it was durable")

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert peak[0] == 1  # one fsync at a time
    assert log.fsynced_events == 480
    assert log.fsyncs < 480 / 2  # most are shared
    log.close()
    assert verify_log(tmp_path / "audit", pub).valid


def test_a_failed_fsync_fails_every_waiter(tmp_path, monkeypatch):
    priv, _ = keys.load_or_create(tmp_path / "keys", "audit")
    log = AuditLog(tmp_path / "audit", priv).open()
    gate = threading.Event()

    def failing(fd):
        gate.wait(5)
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(audit_mod.os, "fdatasync", failing)
    outcomes: list[str] = []

    def writer(n):
        try:
            log.append_durable("run.started", run_id=f"run_{n}")
            outcomes.append("ok")
        except AuditWriteError:
            outcomes.append("failed")

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(6)]
    for t in threads:
        t.start()
    gate.set()
    for t in threads:
        t.join(10)
    assert not any(t.is_alive() for t in threads)
    assert outcomes == ["failed"] * 6
    with pytest.raises(AuditWriteError):
        log.append("run.started")
