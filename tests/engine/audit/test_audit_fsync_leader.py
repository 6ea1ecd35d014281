"""The group commit's leader, heir and latches: a lone caller fsyncs on its own thread, callers
that arrive during an fsync share the next one, and an fsync that dies fails every waiter and
every later append (fail closed) instead of letting one of them report success."""

from __future__ import annotations

import os
import threading

import pytest

from talon_tui.engine.audit import log as audit_mod
from talon_tui.engine.audit.log import AuditLog, AuditWriteError, verify_log
from talon_tui.engine.core import keys


@pytest.fixture
def audit(tmp_path):
    priv, pub = keys.load_or_create(tmp_path / "keys", "audit")
    log = AuditLog(tmp_path / "audit", priv).open()
    yield log, pub
    log.close()


def test_a_lone_caller_fsyncs_on_its_own_thread(audit, monkeypatch):
    log, _ = audit
    real, threads = os.fdatasync, []

    def spy(fd):
        threads.append(threading.get_ident())
        real(fd)

    monkeypatch.setattr(audit_mod.os, "fdatasync", spy)
    for i in range(5):
        ev = log.append_durable("run.started", data={"i": i})
        assert log._durable > ev["seq"]
    assert threads == [threading.get_ident()] * 5
    assert (log.fsyncs, log.fsynced_events) == (5, 5)


def test_callers_arriving_during_an_fsync_share_the_next(audit, monkeypatch, tmp_path):
    log, pub = audit
    real = os.fdatasync
    started, gate, calls = threading.Event(), threading.Event(), []

    def slow(fd):
        calls.append(log.next_seq)
        started.set()
        if len(calls) == 1:
            assert gate.wait(10)
        real(fd)

    monkeypatch.setattr(audit_mod.os, "fdatasync", slow)
    done: list[int] = []

    def writer(n: int) -> None:
        ev = log.append_durable("run.started", run_id=f"run_{n}")
        assert log._durable > ev["seq"]
        done.append(ev["seq"])

    first = threading.Thread(target=writer, args=(0,))
    first.start()
    assert started.wait(10)  # the first fsync runs and covers seq 0 only
    others = [threading.Thread(target=writer, args=(n,)) for n in (1, 2, 3)]
    for t in others:
        t.start()
    while log.next_seq < 4:  # all three appended while the first fsync runs
        threading.Event().wait(0.001)
    assert done == []
    gate.set()
    for t in [first, *others]:
        t.join(10)
    assert sorted(done) == [0, 1, 2, 3]
    # the first covered one event; the heir's covered the other three
    assert calls == [1, 4]
    assert (log.fsyncs, log.fsynced_events) == (2, 4)


@pytest.mark.parametrize("death", [RuntimeError("fsync thread died"), KeyboardInterrupt()])
def test_an_fsync_that_dies_fails_every_waiter_and_every_later_append(tmp_path, monkeypatch, death):
    priv, _ = keys.load_or_create(tmp_path / "keys", "audit")
    log = AuditLog(tmp_path / "audit", priv).open()
    real = os.fdatasync
    started, gate = threading.Event(), threading.Event()

    def dying(fd):
        if not started.is_set():
            started.set()
            assert gate.wait(10)
            raise death
        real(fd)

    monkeypatch.setattr(audit_mod.os, "fdatasync", dying)
    outcomes: dict[int, str] = {}

    def writer(n: int) -> None:
        try:
            log.append_durable("run.started", run_id=f"run_{n}")
            outcomes[n] = "ok"
        except AuditWriteError:
            outcomes[n] = "refused"
        except BaseException as exc:  # noqa: BLE001 - the leader gets the death itself
            outcomes[n] = type(exc).__name__

    leader = threading.Thread(target=writer, args=(0,))
    leader.start()
    assert started.wait(10)
    waiters = [threading.Thread(target=writer, args=(n,)) for n in (1, 2, 3)]
    for t in waiters:
        t.start()
    while log.next_seq < 4:
        threading.Event().wait(0.001)
    gate.set()
    for t in [leader, *waiters]:
        t.join(10)
    assert not any(t.is_alive() for t in [leader, *waiters])
    # nobody says ok: the leader sees the death, the others are refused
    assert outcomes == {0: type(death).__name__, 1: "refused", 2: "refused", 3: "refused"}
    with pytest.raises(AuditWriteError):
        log.append_durable("run.started")
    with pytest.raises(AuditWriteError):
        log.sync()


def test_many_writers_verify(tmp_path):
    priv, pub = keys.load_or_create(tmp_path / "keys", "audit")
    log = AuditLog(tmp_path / "audit", priv, checkpoint_every=7).open()

    def writer(n: int) -> None:
        for i in range(50):
            ev = log.append_durable("run.started", run_id=f"run_{n}", data={"i": i})
            assert log._durable > ev["seq"]

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert log.fsynced_events >= 400
    log.close()
    report = verify_log(tmp_path / "audit", pub)
    assert report.valid and report.events == log.next_seq
