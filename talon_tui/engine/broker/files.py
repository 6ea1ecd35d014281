"""file.read / file.write confined to roots inside the session workspace, without races.

One resolver (`PathConfinement`) serves both tools and shell.exec's working directory. It
never resolves a path string in one go: the workspace is opened from `/` one component at a
time, then every component of the root and of the path is opened relative to the directory
fd held so far (`openat` style, `dir_fd`) with `O_NOFOLLOW`. A symlink anywhere — workspace,
root, intermediate directory or final file — is refused, so swapping a symlink in between a
check and a use cannot redirect the access: there is no separate check.

Decisions:
- Lexical tricks (`..`, absolute paths, NUL, `//`, trailing slash, backslash) are refused by
  `checks.normalize_rel_path` before anything is opened.
- The workspace path itself must be free of symlinks (give its real path).
- Only regular files are read or replaced. The final open uses `O_NONBLOCK`, so a FIFO cannot
  hang the broker; devices, sockets and directories are refused after `fstat`.
- A file with more than one hard link is refused for reading and writing: the other name may
  lie outside the root.
- Reads fetch at most max_bytes + 1 bytes; a larger file is TOO_LARGE and no content returns.
- Writes: content over max_bytes writes nothing (TOO_LARGE). Missing directories strictly
  below the matched root are created one at a time (`mkdir` relative to the held fd, then
  opened with `O_NOFOLLOW`); the root itself must exist, unless the root names the file
  being written (a root may name one file: then only that file, in an existing directory).
  The new content goes to a temp file made with `O_CREAT|O_EXCL|O_NOFOLLOW` in the target
  directory, is fsynced, renamed over the target with `renameat` (both dir fds), and the
  directory is fsynced.
- Modes (SECURITY.md "Written files carry no privileges"): every file Talon writes gets an
  explicit `fchmod` to at most 0o755 — never setuid, setgid, sticky, group- or world-write.
  A replaced file keeps its permission bits minus those; a new file gets 0o644 minus the umask
  (or what a default ACL gives, capped the same way: the `fchmod` also caps the ACL mask). A
  directory Talon creates is capped at 0o755 the same way (no inherited setgid).
- A directory moved out of the root by another local process while a walk holds its fd is
  outside the threat model (that process can already write outside the root).
"""

from __future__ import annotations

import base64
import binascii
import errno
import os
import secrets
import stat
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from ..core.canon import sha256_tag
from ..errors import ConstraintViolation, TooLarge, ToolError
from ..policy.checks import check_file_path, normalize_root
from ..policy.models import FileConstraints, FileReadParams, FileWriteParams

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_READ_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC
_CHUNK = 65536
#: the most a file or directory Talon writes may allow: no setuid/setgid/sticky, no group- or
#: world-write (the file is the engine's; a group from a setgid directory is the agent's pick)
MAX_WRITTEN_MODE = 0o755
NEW_FILE_MODE = 0o644


def written_mode(mode: int) -> int:
    """The permission bits a file Talon writes may carry, from the bits it would have."""
    return stat.S_IMODE(mode) & MAX_WRITTEN_MODE


_PATH_DIR_FLAGS = os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_PATH_FLAGS = os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC

ComponentCheck = Callable[[str, os.stat_result, os.stat_result], None]
"""`check(shown, parent_st, st)`: called for each component of a walk; raises to refuse."""


def open_host_path(path: str, *, what: str, check: ComponentCheck | None = None) -> int:
    """An `O_PATH` fd of absolute host `path`, opened from `/` one component at a time with
    `O_NOFOLLOW`: a symlink anywhere (final component included) is refused, never followed.

    For the broker's own host paths (shell.exec's program, docker.run's mount sources). The
    path must be normalized (no `.`, `..` or empty components). `check` sees every component
    with its parent's stat before the next one is opened. The caller closes the fd.
    """
    if not path.startswith("/") or "\x00" in path:
        raise ConstraintViolation(f"{what} {path!r} is not an absolute path")
    comps = path.split("/")[1:]
    if comps == [""]:
        comps = []
    if any(c in ("", ".", "..") for c in comps):
        raise ConstraintViolation(f"{what} {path!r} is not a normalized absolute path")
    fd = os.open("/", _PATH_DIR_FLAGS)
    try:
        parent = os.fstat(fd)
        for i, name in enumerate(comps):
            shown = "/" + "/".join(comps[: i + 1])
            last = i == len(comps) - 1
            try:
                nfd = os.open(name, _PATH_FLAGS if last else _PATH_DIR_FLAGS, dir_fd=fd)
            except OSError as exc:
                if exc.errno in (errno.ELOOP, errno.ENOTDIR):
                    try:
                        st = os.stat(name, dir_fd=fd, follow_symlinks=False)
                    except OSError:
                        st = None
                    if st is not None and stat.S_ISLNK(st.st_mode):
                        raise ConstraintViolation(
                            f"{what} {path!r}: {shown!r} is a symlink; symlinks are never "
                            "followed (give the real path)",
                            details={"path": path},
                        ) from None
                if exc.errno == errno.ENOENT:
                    raise ToolError(f"{what} {path!r} does not exist ({shown!r})") from None
                raise ToolError(f"{what} {path!r}: cannot open {shown!r}: {exc.strerror}") from None
            os.close(fd)
            fd = nfd
            st = os.fstat(fd)
            if stat.S_ISLNK(st.st_mode):
                raise ConstraintViolation(
                    f"{what} {path!r} is a symlink; symlinks are never followed "
                    "(give the real path)",
                    details={"path": path},
                )
            if check is not None:
                check(shown, parent, st)
            parent = st
    except BaseException:
        os.close(fd)
        raise
    return fd


def _kind(mode: int) -> str:
    for test, name in (
        (stat.S_ISDIR, "a directory"),
        (stat.S_ISLNK, "a symlink"),
        (stat.S_ISFIFO, "a FIFO"),
        (stat.S_ISSOCK, "a socket"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
    ):
        if test(mode):
            return name
    return "not a regular file"


class PathConfinement:
    """Opens directories and files strictly below one workspace, refusing every symlink."""

    def __init__(self, workspace: str) -> None:
        if not isinstance(workspace, str) or not workspace.startswith("/"):
            raise ConstraintViolation("the session workspace must be an absolute directory path")
        self.workspace = workspace

    # -- walking -------------------------------------------------------------------------

    def _open_child_dir(self, dir_fd: int, name: str, shown: str, *, create: bool = False) -> int:
        try:
            return os.open(name, _DIR_FLAGS, dir_fd=dir_fd)
        except FileNotFoundError:
            if not create:
                raise ToolError(f"directory {shown!r} does not exist") from None
        except OSError as exc:
            raise self._explain(exc, dir_fd, name, shown, "directory") from None
        made = False
        try:
            os.mkdir(name, MAX_WRITTEN_MODE, dir_fd=dir_fd)
            made = True
        except FileExistsError:
            pass  # someone made it meanwhile: the O_NOFOLLOW open below judges what it is
        except OSError as exc:
            raise ToolError(f"cannot create directory {shown!r}: {exc.strerror}") from None
        try:
            fd = os.open(name, _DIR_FLAGS, dir_fd=dir_fd)
        except OSError as exc:
            raise self._explain(exc, dir_fd, name, shown, "directory") from None
        if made:
            try:
                st = os.fstat(fd)
                # A setgid parent passes its setgid bit on; a default ACL may add group write.
                if st.st_uid == os.geteuid() and stat.S_IMODE(st.st_mode) != written_mode(
                    st.st_mode
                ):
                    os.fchmod(fd, written_mode(st.st_mode))
            except OSError as exc:
                os.close(fd)
                raise ToolError(f"cannot set the mode of {shown!r}: {exc.strerror}") from None
        return fd

    def _explain(self, exc: OSError, dir_fd: int, name: str, shown: str, want: str) -> Exception:
        if exc.errno in (errno.ELOOP, errno.ENOTDIR, errno.EMLINK, errno.ENXIO, errno.EOPNOTSUPP):
            try:
                st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
            except OSError:
                st = None
            if st is not None and stat.S_ISLNK(st.st_mode):
                return ConstraintViolation(
                    f"{shown!r} is a symlink; symlinks are never followed", details={"path": shown}
                )
            if st is not None:
                return ConstraintViolation(
                    f"{shown!r} is {_kind(st.st_mode)}, not a {want}", details={"path": shown}
                )
        if exc.errno == errno.EACCES:
            return ToolError(f"permission denied for {shown!r}")
        if exc.errno == errno.ENOENT:
            return ToolError(f"{shown!r} does not exist")
        return ToolError(f"cannot open {shown!r}: {exc.strerror}")

    def open_workspace(self) -> int:
        """The workspace directory, opened from `/` without following any symlink."""
        comps = [c for c in self.workspace.split("/") if c not in ("", ".")]
        if ".." in comps:
            raise ConstraintViolation("the session workspace path must not contain '..'")
        fd = os.open("/", _DIR_FLAGS)
        try:
            for i, name in enumerate(comps):
                shown = "/" + "/".join(comps[: i + 1])
                try:
                    nfd = os.open(name, _DIR_FLAGS, dir_fd=fd)
                except OSError as exc:
                    err = self._explain(exc, fd, name, shown, "directory")
                    if isinstance(err, ConstraintViolation):
                        err = ConstraintViolation(
                            f"session workspace: {err.message} (configure its real path)"
                        )
                    raise err from None
                os.close(fd)
                fd = nfd
        except BaseException:
            os.close(fd)
            raise
        return fd

    @contextmanager
    def directory(
        self, comps: tuple[str, ...], *, create_below: int | None = None
    ) -> Iterator[int]:
        """A held fd for workspace-relative directory `comps` (symlinks refused).

        With `create_below=n`, missing directories after the first n components are created.
        """
        fd = self.open_workspace()
        try:
            for i, name in enumerate(comps):
                shown = "/".join(comps[: i + 1])
                create = create_below is not None and i >= create_below
                nfd = self._open_child_dir(fd, name, shown, create=create)
                os.close(fd)
                fd = nfd
            yield fd
        finally:
            os.close(fd)

    # -- tools ---------------------------------------------------------------------------

    def read(self, comps: tuple[str, ...], max_bytes: int, shown: str) -> bytes:
        if not comps:
            raise ConstraintViolation(f"{shown!r} is the workspace directory, not a file")
        with self.directory(comps[:-1]) as dfd:
            try:
                fd = os.open(comps[-1], _READ_FLAGS, dir_fd=dfd)
            except OSError as exc:
                raise self._explain(exc, dfd, comps[-1], shown, "regular file") from None
            try:
                st = os.fstat(fd)
                if not stat.S_ISREG(st.st_mode):
                    raise ConstraintViolation(
                        f"{shown!r} is {_kind(st.st_mode)}; only regular files are read",
                        details={"path": shown},
                    )
                if st.st_nlink > 1:
                    raise ConstraintViolation(
                        f"{shown!r} has {st.st_nlink} hard links; another name may lie outside "
                        "the root, so it is refused",
                        details={"path": shown},
                    )
                if st.st_size > max_bytes:
                    raise TooLarge(
                        f"{shown!r} is {st.st_size} bytes, over max_bytes {max_bytes}",
                        details={"path": shown, "max_bytes": max_bytes},
                    )
                os.set_blocking(fd, True)
                chunks: list[bytes] = []
                got = 0
                while got <= max_bytes:
                    try:
                        chunk = os.read(fd, min(_CHUNK, max_bytes + 1 - got))
                    except OSError as exc:
                        raise ToolError(f"cannot read {shown!r}: {exc.strerror}") from None
                    if not chunk:
                        break
                    chunks.append(chunk)
                    got += len(chunk)
                if got > max_bytes:
                    raise TooLarge(
                        f"{shown!r} grew over max_bytes {max_bytes} while being read",
                        details={"path": shown, "max_bytes": max_bytes},
                    )
                return b"".join(chunks)
            finally:
                os.close(fd)

    def write(self, comps: tuple[str, ...], data: bytes, shown: str, *, root_len: int) -> None:
        if not comps or len(comps) < root_len:
            raise ConstraintViolation(f"{shown!r} names the workspace, not a file")
        # len(comps) == root_len: the root names this very file (a remembered approval pins
        # one file); nothing is created above it and a directory there is refused below
        name = comps[-1]
        with self.directory(comps[:-1], create_below=root_len) as dfd:
            mode: int | None = None
            try:
                st = os.stat(name, dir_fd=dfd, follow_symlinks=False)
            except FileNotFoundError:
                st = None
            if st is not None:
                if not stat.S_ISREG(st.st_mode):
                    raise ConstraintViolation(
                        f"{shown!r} is {_kind(st.st_mode)}; only regular files are replaced",
                        details={"path": shown},
                    )
                if st.st_nlink > 1:
                    raise ConstraintViolation(
                        f"{shown!r} has {st.st_nlink} hard links; writing it is refused",
                        details={"path": shown},
                    )
                mode = st.st_mode
            try:
                self._replace(dfd, name, data, mode)
            except OSError as exc:
                raise ToolError(f"cannot write {shown!r}: {exc.strerror}") from None

    @staticmethod
    def _replace(dfd: int, name: str, data: bytes, mode: int | None) -> None:
        """Temp file (O_EXCL|O_NOFOLLOW) beside the target, fsync, renameat, fsync the dir.

        `mode` is the replaced file's st_mode, or None for a new file. The temp file always
        gets an explicit `fchmod` to `written_mode(...)`: a replaced file keeps its permission
        bits minus setuid/setgid/sticky/group-write/world-write; a new one gets 0o644 minus the
        umask (or the default ACL's bits), capped the same way.
        """
        tmp = f".{name[:200]}.talon-{secrets.token_hex(8)}.tmp"
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
        fd = os.open(tmp, flags, NEW_FILE_MODE, dir_fd=dfd)
        renamed = False
        try:
            os.fchmod(fd, written_mode(os.fstat(fd).st_mode if mode is None else mode))
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
            os.close(fd)
            fd = -1
            try:
                os.rename(tmp, name, src_dir_fd=dfd, dst_dir_fd=dfd)
            except IsADirectoryError:
                raise ConstraintViolation(
                    f"{name!r} is a directory; only regular files are replaced"
                ) from None
            renamed = True
            os.fsync(dfd)
        finally:
            if fd >= 0:
                os.close(fd)
            if not renamed:
                try:
                    os.unlink(tmp, dir_fd=dfd)
                except FileNotFoundError:
                    pass


def decode_write_content(params: FileWriteParams) -> bytes:
    if params.encoding == "base64":
        try:
            return base64.b64decode(params.content.encode("ascii"), validate=True)
        except (binascii.Error, UnicodeEncodeError) as exc:
            raise ConstraintViolation("content is not valid base64") from exc
    try:
        return params.content.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ConstraintViolation("content is not valid UTF-8 text (lone surrogate)") from exc


def _content_field(data: bytes) -> dict[str, str]:
    try:
        return {"content": data.decode("utf-8")}
    except UnicodeDecodeError:
        return {"content": base64.b64encode(data).decode("ascii"), "encoding": "base64"}


def run_file_read(
    params: FileReadParams, constraints: FileConstraints, *, workspace: str
) -> dict[str, object]:
    """Read one regular file under a root: `{path, content, bytes, sha256[, encoding]}`."""
    comps, _root = check_file_path(params.path, constraints.roots, workspace=workspace)
    data = PathConfinement(workspace).read(comps, constraints.max_bytes, params.path)
    return {
        "path": params.path,
        **_content_field(data),
        "bytes": len(data),
        "sha256": sha256_tag(data),
    }


def run_file_write(
    params: FileWriteParams, constraints: FileConstraints, *, workspace: str
) -> dict[str, object]:
    """Atomically replace (or create) one regular file under a root: `{path, bytes, sha256}`."""
    comps, root = check_file_path(params.path, constraints.roots, workspace=workspace)
    data = decode_write_content(params)
    if len(data) > constraints.max_bytes:
        raise TooLarge(
            f"content is {len(data)} bytes, over max_bytes {constraints.max_bytes}; "
            "nothing was written",
            details={"path": params.path, "max_bytes": constraints.max_bytes},
        )
    root_comps = normalize_root(root, workspace=workspace) or ()
    PathConfinement(workspace).write(comps, data, params.path, root_len=len(root_comps))
    return {"path": params.path, "bytes": len(data), "sha256": sha256_tag(data)}
