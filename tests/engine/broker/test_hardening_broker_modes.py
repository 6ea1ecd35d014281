"""file.write never hands out privileges: no setuid, setgid, sticky, group- or world-write bit on
anything it writes, whatever the replaced file, the umask, a setgid directory or a default ACL
would give (issue 9 item 1)."""

from __future__ import annotations

import os
import stat
import struct
import subprocess
import sys

import pytest

from talon_tui.engine.broker.files import run_file_write
from talon_tui.engine.policy.models import FileConstraints, FileWriteParams

PROGRAM = "#!/bin/sh\nid -u\n"
DANGEROUS = stat.S_ISUID | stat.S_ISGID | stat.S_ISVTX | stat.S_IWGRP | stat.S_IWOTH


@pytest.fixture
def ws(tmp_path):
    w = tmp_path / "ws"
    (w / "work").mkdir(parents=True)
    return w


def write(ws, path, content):
    return run_file_write(
        FileWriteParams(path=path, content=content),
        FileConstraints(roots=["work"]),
        workspace=str(ws),
    )


def mode_of(p) -> int:
    return stat.S_IMODE(os.lstat(p).st_mode)


def test_replacing_a_setuid_program_drops_setuid(ws):
    """The issue's case: an agent-owned 4755 file replaced through the broker."""
    target = ws / "work" / "x"
    target.write_text("#!/bin/sh\necho old\n")
    if os.geteuid() == 0:
        os.chown(target, 65534, 65534)  # the agent's file, as in the issue
    os.chmod(target, 0o4755)  # after chown, which clears setuid
    assert mode_of(target) == 0o4755  # the kernel kept the bit we set (no nosuid trickery)
    write(ws, "work/x", PROGRAM)
    assert target.read_text() == PROGRAM
    assert mode_of(target) == 0o755
    st = os.stat(target)
    assert st.st_uid == os.geteuid()  # the engine's file now, and without setuid
    # Run it: it executes, as the caller, not as a privileged owner.
    out = subprocess.run([str(target)], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == str(os.getuid())


@pytest.mark.parametrize(
    ("before", "after"),
    [
        (0o6755, 0o755),
        (0o2755, 0o755),
        (0o1777, 0o755),
        (0o7777, 0o755),
        (0o666, 0o644),
        (0o664, 0o644),
        (0o640, 0o640),
        (0o600, 0o600),
        (0o700, 0o700),
        (0o444, 0o444),
    ],
)
def test_replaced_mode_is_capped(ws, before, after):
    target = ws / "work" / "f"
    target.write_text("old")
    os.chmod(target, before)
    write(ws, "work/f", "new")
    assert target.read_text() == "new"
    assert mode_of(target) == after


def test_new_file_ignores_a_zero_umask(ws):
    old = os.umask(0)
    try:
        write(ws, "work/new.txt", "x")
    finally:
        os.umask(old)
    assert mode_of(ws / "work" / "new.txt") == 0o644


def test_new_file_keeps_a_stricter_umask(ws):
    old = os.umask(0o077)
    try:
        write(ws, "work/new.txt", "x")
    finally:
        os.umask(old)
    assert mode_of(ws / "work" / "new.txt") == 0o600


def test_created_directories_drop_setgid_and_group_write(ws):
    """A setgid, group-writable root: directories and files made below it carry neither."""
    root = ws / "work"
    os.chmod(root, 0o2777)
    old = os.umask(0)
    try:
        write(ws, "work/a/b/f.txt", "x")
    finally:
        os.umask(old)
    for d in (root / "a", root / "a" / "b"):
        assert mode_of(d) & DANGEROUS == 0, oct(mode_of(d))
        assert mode_of(d) == 0o755
    assert mode_of(root / "a" / "b" / "f.txt") == 0o644


# --------------------------------------------------------------------------- default ACLs

_USER_OBJ, _USER, _GROUP_OBJ, _MASK, _OTHER = 0x01, 0x02, 0x04, 0x10, 0x20
_UNDEF = 0xFFFFFFFF


def _acl(entries: list[tuple[int, int, int]]) -> bytes:
    return struct.pack("<I", 2) + b"".join(struct.pack("<HHI", *e) for e in entries)


def _effective_perms(path, uid: int) -> int:
    """rwx bits the named-user entry for `uid` really grants (masked), from the access ACL."""
    raw = os.getxattr(path, "system.posix_acl_access")
    entries = [struct.unpack("<HHI", raw[i : i + 8]) for i in range(4, len(raw), 8)]
    named = [perm for tag, perm, ident in entries if tag == _USER and ident == uid]
    mask = [perm for tag, perm, _ in entries if tag == _MASK]
    assert named and mask
    return named[0] & mask[0]


def _set_default_acl(d, uid: int) -> None:
    try:
        os.setxattr(
            d,
            "system.posix_acl_default",
            _acl(
                [
                    (_USER_OBJ, 7, _UNDEF),
                    (_USER, 7, uid),
                    (_GROUP_OBJ, 5, _UNDEF),
                    (_MASK, 7, _UNDEF),
                    (_OTHER, 5, _UNDEF),
                ]
            ),
        )
    except OSError as exc:  # pragma: no cover - depends on the file system
        pytest.skip(f"no POSIX ACLs on this file system: {exc}")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux POSIX ACL xattrs")
def test_default_acl_grants_no_write_on_new_or_replaced_files(ws):
    """A default ACL naming another user rwx: what Talon writes gives that user no write."""
    root = ws / "work"
    _set_default_acl(root, 65534)
    write(ws, "work/new.txt", "x")
    (root / "old.txt").write_text("old")
    os.chmod(root / "old.txt", 0o664)
    write(ws, "work/old.txt", "new")
    write(ws, "work/sub/deep.txt", "x")
    for p in (root / "new.txt", root / "old.txt", root / "sub", root / "sub" / "deep.txt"):
        assert _effective_perms(p, 65534) & 0o2 == 0, p
