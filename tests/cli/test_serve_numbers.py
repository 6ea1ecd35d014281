"""`talon serve`'s numbers from flags and environment variables: one parser for both
(`serve_flags.positive_number`), so a bad value is the same one-line exit 2 wherever it comes
from, and an empty variable means the default."""

from __future__ import annotations

import argparse
import subprocess

import pytest
from support.pipe import REPO, TALON

from talon_tui.cli.commands.serve_flags import LIMIT_FLAGS, env_number, limit


def _args(**flags: str | None) -> argparse.Namespace:
    ns = argparse.Namespace(**{f.replace("-", "_"): None for f in LIMIT_FLAGS})
    for name, value in flags.items():
        setattr(ns, name, value)
    return ns


def _exit_line(capsys: pytest.CaptureFixture[str], call) -> str:
    with pytest.raises(SystemExit) as exc:
        call()
    assert exc.value.code == 2
    return capsys.readouterr().err.strip()


def test_flag_then_environment_then_default(monkeypatch):
    monkeypatch.setenv("TALON_PIPE_MAX_CONNECTIONS", "7")
    assert limit(_args(max_connections="5"), "max-connections") == 5
    assert limit(_args(), "max-connections") == 7
    monkeypatch.setenv("TALON_PIPE_MAX_CONNECTIONS", "")  # empty: as if unset
    assert limit(_args(), "max-connections") == LIMIT_FLAGS["max-connections"][1]
    monkeypatch.delenv("TALON_PIPE_MAX_CONNECTIONS")
    assert limit(_args(), "max-connections") == LIMIT_FLAGS["max-connections"][1]


def test_bad_values_name_their_source(monkeypatch, capsys):
    assert _exit_line(capsys, lambda: limit(_args(max_connections="abc"), "max-connections")) == (
        "talon: --max-connections='abc' is not an integer"
    )
    assert _exit_line(capsys, lambda: limit(_args(max_connections=""), "max-connections")) == (
        "talon: --max-connections='' is not an integer"
    )
    assert _exit_line(capsys, lambda: limit(_args(hello_timeout="0"), "hello-timeout")) == (
        "talon: --hello-timeout must be positive"
    )
    monkeypatch.setenv("TALON_HELLO_TIMEOUT", "soon")
    assert _exit_line(capsys, lambda: limit(_args(), "hello-timeout")) == (
        "talon: TALON_HELLO_TIMEOUT='soon' is not a number"
    )
    monkeypatch.setenv("TALON_APPROVAL_TIMEOUT", "-1")
    assert _exit_line(capsys, lambda: env_number("TALON_APPROVAL_TIMEOUT", 120.0)) == (
        "talon: TALON_APPROVAL_TIMEOUT must be positive"
    )
    monkeypatch.setenv("TALON_CHECKPOINT_EVERY", "1.5")
    assert _exit_line(capsys, lambda: env_number("TALON_CHECKPOINT_EVERY", 1000, int)) == (
        "talon: TALON_CHECKPOINT_EVERY='1.5' is not an integer"
    )


def test_environment_numbers_of_the_engine(monkeypatch):
    monkeypatch.setenv("TALON_APPROVAL_TIMEOUT", "2.5")
    assert env_number("TALON_APPROVAL_TIMEOUT", 120.0) == 2.5
    monkeypatch.setenv("TALON_APPROVAL_TIMEOUT", "")
    assert env_number("TALON_APPROVAL_TIMEOUT", 120.0) == 120.0


def test_serve_refuses_a_bad_environment_number(tmp_path):
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO), "TALON_APPROVAL_TIMEOUT": "0"}
    proc = subprocess.run(
        [*TALON, "serve", "--data-dir", str(tmp_path / "d")],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[-1] == "talon: TALON_APPROVAL_TIMEOUT must be positive"


@pytest.mark.parametrize("name", ["TALON_PIPE_IDLE_TIMEOUT", "TALON_PIPE_RATE", "TALON_PIPE_BURST"])
def test_a_bad_pipe_number_exits_before_the_engine_starts(tmp_path, name):
    """The pipe's numbers used to be read after `engine.start()`: a bad one exited 2 with the
    engine never stopped (an `engine.started` with no `engine.stopped` and no final checkpoint).
    Now every number is read first, so nothing is started at all."""
    data = tmp_path / "d"
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO), name: "fast"}
    proc = subprocess.run(
        [*TALON, "serve", "--data-dir", str(data)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[-1] == f"talon: {name}='fast' is not a number"
    log = data / "audit" / "audit.jsonl"
    assert not log.exists() or b"engine.started" not in log.read_bytes()
