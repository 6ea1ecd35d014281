"""file.read / file.write confinement against real files, symlinks, hard links and races."""

from __future__ import annotations

import base64
import hashlib
import os
import socket
import threading
import time

import pytest

from talon_tui.engine.broker.files import PathConfinement, run_file_read, run_file_write
from talon_tui.engine.errors import ConstraintViolation, TooLarge, ToolError
from talon_tui.engine.policy.models import FileConstraints, FileReadParams, FileWriteParams

SECRET = b"TOP-SECRET-OUTSIDE-THE-ROOT"


@pytest.fixture
def ws(tmp_path):
    """tmp/ws (workspace) with ws/work/a.txt, ws/work2/b.txt, and tmp/outside/secret.txt."""
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_bytes(SECRET)
    w = tmp_path / "ws"
    (w / "work" / "sub").mkdir(parents=True)
    (w / "work" / "a.txt").write_text("hello")
    (w / "work" / "sub" / "f.txt").write_text("inner")
    (w / "work2").mkdir()
    (w / "work2" / "b.txt").write_text("sibling")
    (w / "top.txt").write_text("top")
    return w


def cons(**kw):
    kw.setdefault("roots", ["work"])
    return FileConstraints(**kw)


def read(ws, path, **kw):
    return run_file_read(FileReadParams(path=path), cons(**kw), workspace=str(ws))


def write(ws, path, content, encoding="utf-8", **kw):
    return run_file_write(
        FileWriteParams(path=path, content=content, encoding=encoding),
        cons(**kw),
        workspace=str(ws),
    )


def test_read_ok(ws):
    r = read(ws, "work/a.txt")
    assert r == {
        "path": "work/a.txt",
        "content": "hello",
        "bytes": 5,
        "sha256": "sha256:" + hashlib.sha256(b"hello").hexdigest(),
    }
    assert read(ws, "work/sub/f.txt")["content"] == "inner"
    assert read(ws, "top.txt", roots=["."])["content"] == "top"


def test_read_binary_is_base64(ws):
    data = bytes(range(256))
    (ws / "work" / "bin").write_bytes(data)
    r = read(ws, "work/bin")
    assert r["encoding"] == "base64"
    assert base64.b64decode(r["content"]) == data
    assert r["bytes"] == 256


@pytest.mark.parametrize(
    "path",
    [
        "work2/b.txt",
        "top.txt",
        "work/../work2/b.txt",
        "work/../../outside/secret.txt",
        "../outside/secret.txt",
        "/etc/passwd",
        "/proc/self/root/etc/passwd",
        "/proc/self/cwd/work/a.txt",
        "work/a.txt\x00.png",
        "work/a.txt/",
        "work//a.txt",
        "work\\a.txt",
        "",
    ],
)
def test_read_lexical_tricks_refused(ws, path):
    with pytest.raises(ConstraintViolation):
        read(ws, path)


def test_read_symlink_file_refused(ws, tmp_path):
    os.symlink(tmp_path / "outside" / "secret.txt", ws / "work" / "link.txt")
    with pytest.raises(ConstraintViolation, match="symlink"):
        read(ws, "work/link.txt")
    # even a symlink pointing inside the root is refused
    os.symlink("a.txt", ws / "work" / "inner-link")
    with pytest.raises(ConstraintViolation, match="symlink"):
        read(ws, "work/inner-link")


def test_read_symlink_dir_refused(ws, tmp_path):
    os.symlink(tmp_path / "outside", ws / "work" / "out")
    with pytest.raises(ConstraintViolation, match="symlink"):
        read(ws, "work/out/secret.txt")


def test_root_itself_symlink_refused(ws, tmp_path):
    os.symlink(tmp_path / "outside", ws / "evil")
    with pytest.raises(ConstraintViolation, match="symlink"):
        read(ws, "evil/secret.txt", roots=["evil"])


def test_workspace_path_with_symlink_refused(ws, tmp_path):
    os.symlink(ws, tmp_path / "wslink")
    with pytest.raises(ConstraintViolation, match="workspace"):
        run_file_read(FileReadParams(path="work/a.txt"), cons(), workspace=str(tmp_path / "wslink"))


def test_relative_workspace_refused(ws):
    with pytest.raises(ConstraintViolation):
        run_file_read(FileReadParams(path="work/a.txt"), cons(), workspace="ws")


def test_read_fifo_does_not_hang(ws):
    os.mkfifo(ws / "work" / "fifo")
    t0 = time.monotonic()
    with pytest.raises(ConstraintViolation, match="FIFO"):
        read(ws, "work/fifo")
    assert time.monotonic() - t0 < 2


def test_read_socket_and_dir_refused(ws):
    s = socket.socket(socket.AF_UNIX)
    path = ws / "work" / "sock"
    try:
        s.bind(str(path))
        with pytest.raises(ConstraintViolation, match="socket"):
            read(ws, "work/sock")
    finally:
        s.close()
    with pytest.raises(ConstraintViolation, match="directory"):
        read(ws, "work/sub")
    with pytest.raises(ConstraintViolation):
        read(ws, "work")
    with pytest.raises(ConstraintViolation):
        read(ws, ".", roots=["."])


def test_read_device_via_symlink_refused(ws):
    os.symlink("/dev/zero", ws / "work" / "zero")
    with pytest.raises(ConstraintViolation):
        read(ws, "work/zero")


def test_read_hard_link_refused(ws, tmp_path):
    os.link(tmp_path / "outside" / "secret.txt", ws / "work" / "hl.txt")
    with pytest.raises(ConstraintViolation, match="hard link"):
        read(ws, "work/hl.txt")


def test_read_size_limit(ws):
    (ws / "work" / "ten").write_bytes(b"0123456789")
    assert read(ws, "work/ten", max_bytes=10)["bytes"] == 10
    with pytest.raises(TooLarge) as exc:
        read(ws, "work/ten", max_bytes=9)
    assert "0123" not in str(exc.value) and "content" not in exc.value.details


def test_read_missing(ws):
    with pytest.raises(ToolError):
        read(ws, "work/nope.txt")
    with pytest.raises(ToolError):
        read(ws, "work/nodir/x")


def test_symlink_swap_race_never_reads_outside(ws, tmp_path):
    """A thread keeps swapping work/sub between a real directory and a symlink to outside."""
    outside = tmp_path / "outside"
    (outside / "f.txt").write_bytes(SECRET)
    sub = ws / "work" / "sub"
    real = ws / "work" / "sub.real"
    os.rename(sub, real)
    link_tmp = ws / "work" / "sub.link"
    os.symlink(outside, link_tmp)
    stop = threading.Event()

    def swapper():
        while not stop.is_set():
            os.rename(real, sub)  # sub is a real directory
            os.rename(sub, real)
            os.symlink(outside, ws / "work" / "sub.tmp")
            os.rename(ws / "work" / "sub.tmp", sub)  # sub is now a symlink to outside
            os.unlink(sub)

    t = threading.Thread(target=swapper, daemon=True)
    t.start()
    seen = {"ok": 0, "refused": 0}
    try:
        # race for 2 s, and on a loaded machine longer (up to 30 s) until both outcomes have
        # been seen, so that the check below does not hang on the scheduler
        start = time.monotonic()
        while time.monotonic() - start < 2.0 or (
            not (seen["ok"] and seen["refused"]) and time.monotonic() - start < 30
        ):
            try:
                r = read(ws, "work/sub/f.txt")
            except (ConstraintViolation, ToolError):
                seen["refused"] += 1
                continue
            assert SECRET.decode() not in r["content"]
            assert r["content"] == "inner"
            seen["ok"] += 1
    finally:
        stop.set()
        t.join()
    assert seen["refused"] > 0 and seen["ok"] > 0


# --------------------------------------------------------------------------- writes


def test_write_new_and_replace(ws):
    r = write(ws, "work/new.txt", "data")
    assert r == {
        "path": "work/new.txt",
        "bytes": 4,
        "sha256": "sha256:" + hashlib.sha256(b"data").hexdigest(),
    }
    assert (ws / "work" / "new.txt").read_text() == "data"
    os.chmod(ws / "work" / "a.txt", 0o640)
    write(ws, "work/a.txt", "replaced")
    assert (ws / "work" / "a.txt").read_text() == "replaced"
    assert (ws / "work" / "a.txt").stat().st_mode & 0o777 == 0o640
    assert not [p for p in os.listdir(ws / "work") if p.endswith(".tmp")]


def test_write_base64(ws):
    data = bytes(range(256))
    r = write(ws, "work/bin", base64.b64encode(data).decode(), encoding="base64")
    assert (ws / "work" / "bin").read_bytes() == data and r["bytes"] == 256
    with pytest.raises(ConstraintViolation, match="base64"):
        write(ws, "work/bin2", "not base64!!", encoding="base64")
    assert not (ws / "work" / "bin2").exists()


def test_write_too_large_writes_nothing(ws):
    with pytest.raises(TooLarge):
        write(ws, "work/a.txt", "x" * 11, max_bytes=10)
    assert (ws / "work" / "a.txt").read_text() == "hello"
    with pytest.raises(TooLarge):
        write(ws, "work/big.txt", "x" * 11, max_bytes=10)
    assert not (ws / "work" / "big.txt").exists()
    assert sorted(os.listdir(ws / "work")) == ["a.txt", "sub"]


def test_write_creates_dirs_below_root_only(ws):
    write(ws, "work/d1/d2/x.txt", "deep")
    assert (ws / "work" / "d1" / "d2" / "x.txt").read_text() == "deep"
    with pytest.raises(ToolError, match="does not exist"):
        write(ws, "newroot/x.txt", "x", roots=["newroot"])
    assert not (ws / "newroot").exists()


def test_write_over_symlink_refused(ws, tmp_path):
    secret = tmp_path / "outside" / "secret.txt"
    os.symlink(secret, ws / "work" / "link.txt")
    with pytest.raises(ConstraintViolation, match="symlink"):
        write(ws, "work/link.txt", "pwned")
    assert secret.read_bytes() == SECRET
    assert os.path.islink(ws / "work" / "link.txt")


def test_write_through_symlinked_dir_refused(ws, tmp_path):
    os.symlink(tmp_path / "outside", ws / "work" / "out")
    with pytest.raises(ConstraintViolation, match="symlink"):
        write(ws, "work/out/new.txt", "pwned")
    with pytest.raises(ConstraintViolation, match="symlink"):
        write(ws, "work/out/secret.txt", "pwned")
    assert sorted(os.listdir(tmp_path / "outside")) == ["secret.txt"]
    assert (tmp_path / "outside" / "secret.txt").read_bytes() == SECRET


def test_write_hard_link_refused(ws, tmp_path):
    secret = tmp_path / "outside" / "secret.txt"
    os.link(secret, ws / "work" / "hl.txt")
    with pytest.raises(ConstraintViolation, match="hard link"):
        write(ws, "work/hl.txt", "pwned")
    assert secret.read_bytes() == SECRET


def test_write_non_regular_refused(ws):
    os.mkfifo(ws / "work" / "fifo")
    with pytest.raises(ConstraintViolation, match="FIFO"):
        write(ws, "work/fifo", "x")
    with pytest.raises(ConstraintViolation, match="directory"):
        write(ws, "work/sub", "x")
    with pytest.raises(ConstraintViolation):
        write(ws, "work", "x")
    with pytest.raises(ConstraintViolation):
        write(ws, "work/a.txt/", "x")


@pytest.mark.parametrize("path", ["work2/x", "../x", "/tmp/x", "work/../x", "top.txt"])
def test_write_outside_root_refused(ws, path):
    before = sorted(os.listdir(ws))
    with pytest.raises(ConstraintViolation):
        write(ws, path, "pwned")
    assert sorted(os.listdir(ws)) == before
    assert (ws / "top.txt").read_text() == "top"


def test_write_race_never_writes_outside(ws, tmp_path):
    outside = tmp_path / "outside"
    sub = ws / "work" / "sub"
    real = ws / "work" / "sub.real"
    os.rename(sub, real)
    stop = threading.Event()
    swaps = [0]

    def swapper():
        while not stop.is_set():
            os.rename(real, sub)
            os.rename(sub, real)
            os.symlink(outside, ws / "work" / "sub.tmp")
            os.rename(ws / "work" / "sub.tmp", sub)
            os.unlink(sub)
            swaps[0] += 1

    t = threading.Thread(target=swapper, daemon=True)
    t.start()
    try:
        # race for 1.5 s, and on a loaded machine longer (up to 30 s) until one write has
        # landed, so that the positive control below does not hang on the scheduler
        start = time.monotonic()
        landed = 0
        while time.monotonic() - start < 1.5 or (not landed and time.monotonic() - start < 30):
            try:
                # root work/sub: the broker never creates the root, so sub is only ever the
                # swapper's real directory or its symlink to outside
                write(ws, "work/sub/w.txt", "written", roots=["work/sub"])
                landed += 1
            except (ConstraintViolation, ToolError):
                pass
    finally:
        stop.set()
        t.join()
    assert swaps[0] > 10
    assert (real / "w.txt").read_text() == "written"  # some writes landed inside the root
    assert sorted(os.listdir(outside)) == ["secret.txt"]


def test_confinement_directory_walk(ws):
    pc = PathConfinement(str(ws))
    with pc.directory(("work", "sub")) as fd:
        assert sorted(os.listdir(fd)) == ["f.txt"]
