"""`check_socket_dir`, directly: every unsafe socket directory or socket path is refused
with a message naming the path and what is wrong; a missing or safe one passes."""

from __future__ import annotations

import os
import socket

import pytest

from talon_tui.engine.pipe.server import PipeSetupError, check_socket_dir


def _refused(path) -> str:
    with pytest.raises(PipeSetupError) as info:
        check_socket_dir(path)
    return info.value.message


def test_safe_or_missing_socket_dir_passes(tmp_path):
    run = tmp_path / "run"
    check_socket_dir(run)  # nothing there yet
    run.mkdir(mode=0o700)
    check_socket_dir(run)  # no socket yet
    sock = socket.socket(socket.AF_UNIX)
    try:
        sock.bind(str(run / "agent.sock"))
        check_socket_dir(run)  # a real socket left by a previous run
    finally:
        sock.close()


def test_unsafe_socket_dir_refused(tmp_path):
    real = tmp_path / "real"
    real.mkdir(mode=0o700)
    link = tmp_path / "link"
    link.symlink_to(real)
    assert _refused(link) == f"refusing to use {link}: it is a symlink"
    afile = tmp_path / "file"
    afile.write_text("x")
    assert _refused(afile) == f"refusing to use {afile}: it is not a directory"
    os.chmod(real, 0o770)
    assert "writable by group or others (mode 770)" in _refused(real)
    os.chmod(real, 0o700)


def test_unsafe_socket_path_refused(tmp_path):
    run = tmp_path / "run"
    run.mkdir(mode=0o700)
    sock = run / "agent.sock"
    sock.symlink_to(tmp_path / "elsewhere.sock")
    assert _refused(run) == f"refusing to use {sock}: it is a symlink"
    sock.unlink()
    sock.write_text("not a socket")
    assert _refused(run) == f"refusing to use {sock}: it exists and is not a socket"
