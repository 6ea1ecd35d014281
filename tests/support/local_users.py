"""Throwaway local users and groups for the trust-model tests (root only), and a rule for when
those tests may skip: only off CI, and only when not root."""

from __future__ import annotations

import contextlib
import grp
import os
import pwd
import secrets
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest


def must_run() -> bool:
    """Under CI or TALON_REQUIRE_DOCKER=1 the root-only tests must run, never skip."""
    return (
        os.environ.get("CI", "").lower() == "true" or os.environ.get("TALON_REQUIRE_DOCKER") == "1"
    )


def require_root() -> None:
    if os.geteuid() == 0:
        return
    if must_run():
        pytest.fail("this test needs root (it creates local users); CI runs as root")
    pytest.skip("needs root to create a throwaway user (runs in CI)")


@dataclass
class LocalUser:
    name: str
    uid: int
    gid: int


@contextlib.contextmanager
def throwaway_user(*, groups: tuple[str, ...] = ()) -> Iterator[LocalUser]:
    """A new user with its own primary group (and optional extra groups), removed afterwards."""
    name = "tln" + secrets.token_hex(4)
    cmd = ["useradd", "--no-create-home", "--user-group", "--shell", "/usr/sbin/nologin"]
    if groups:
        cmd += ["--groups", ",".join(groups)]
    subprocess.run([*cmd, name], check=True, capture_output=True)
    try:
        pw = pwd.getpwnam(name)
        yield LocalUser(name, pw.pw_uid, pw.pw_gid)
    finally:
        subprocess.run(["userdel", name], capture_output=True)
        with contextlib.suppress(KeyError):
            grp.getgrnam(name)
            subprocess.run(["groupdel", name], capture_output=True)


@contextlib.contextmanager
def throwaway_group() -> Iterator[tuple[str, int]]:
    name = "tlng" + secrets.token_hex(4)
    subprocess.run(["groupadd", name], check=True, capture_output=True)
    try:
        yield name, grp.getgrnam(name).gr_gid
    finally:
        subprocess.run(["groupdel", name], capture_output=True)


@contextlib.contextmanager
def shared_base() -> Iterator[Path]:
    """A root-owned 0755 directory under /tmp that other users can traverse (pytest's tmp_path
    lives under a 0700 directory)."""
    base = Path(tempfile.mkdtemp(prefix="talon-local-", dir="/tmp"))
    os.chmod(base, 0o755)
    try:
        yield base
    finally:
        shutil.rmtree(base, ignore_errors=True)


# A process that starts as root with Python already loaded, then drops to `uid`/`gid` (the
# interpreter lives under /root here, unreadable once dropped) before doing anything.
DROP = """
import os, sys
def drop(uid, gid, groups):
    os.setgroups(groups)
    os.setgid(gid)
    os.setuid(uid)
"""
