"""The data directory (DESIGN section 7): where each file lives and with which mode."""

from __future__ import annotations

import contextlib
import errno
import os
import stat
import threading
from dataclasses import dataclass
from pathlib import Path

from ..errors import TalonError


def resolve_data_dir(explicit: str | os.PathLike[str] | None = None) -> Path:
    """`--data-dir`, else TALON_DATA_DIR, else the platform's user data dir."""
    if explicit:
        return Path(explicit).expanduser().absolute()
    env = os.environ.get("TALON_DATA_DIR")
    if env:
        return Path(env).expanduser().absolute()
    import platformdirs

    return Path(platformdirs.user_data_dir("talon", appauthor=False))


@dataclass(frozen=True)
class DataDir:
    root: Path

    @property
    def state_path(self) -> Path:
        return self.root / "state.json"

    @property
    def audit_dir(self) -> Path:
        return self.root / "audit"

    @property
    def audit_log(self) -> Path:
        return self.audit_dir / "audit.jsonl"

    @property
    def keys_dir(self) -> Path:
        return self.root / "keys"

    @property
    def trusted_keys_dir(self) -> Path:
        return self.keys_dir / "trusted"

    @property
    def secrets_dir(self) -> Path:
        return self.root / "secrets"

    @property
    def run_dir(self) -> Path:
        return self.root / "run"

    @property
    def socket_path(self) -> Path:
        return self.run_dir / "agent.sock"

    @property
    def admin_token_path(self) -> Path:
        return self.root / "admin.token"

    @property
    def lock_path(self) -> Path:
        return self.root / "engine.lock"

    @property
    def workspaces_dir(self) -> Path:
        return self.root / "workspaces"

    def private_dirs(self) -> tuple[Path, ...]:
        """Every directory the engine creates and uses, root first (all 0700, except that the
        root and run/ may carry group search, 0710, for `--socket-group`)."""
        return (
            self.root,
            self.audit_dir,
            self.keys_dir,
            self.trusted_keys_dir,
            self.secrets_dir,
            self.run_dir,
            self.workspaces_dir,
        )

    def ensure(self) -> DataDir:
        """Create the tree with private modes and verify it (DataDirUnsafe when it is not ours).

        The rule (SECURITY.md, "Whose data dir"): every ancestor of the root belongs to us or
        root and is not writable by others (unless sticky); the root, each directory in it and
        each file in them belongs to our uid, is no symlink, and is writable only by us. Modes
        wider than private are then narrowed (0700 dirs, 0600 files) through the opened fd.
        """
        check_ancestors(self.root)
        for d in self.private_dirs():
            _ensure_private_dir(d, group_search=d in (self.root, self.run_dir))
        for f in (self.state_path, self.admin_token_path, self.lock_path):
            check_private_file(f)
        for d in (self.audit_dir, self.keys_dir, self.trusted_keys_dir, self.secrets_dir):
            for entry in os.scandir(d):
                path = Path(entry.path)
                if path in self.private_dirs():
                    continue
                if entry.is_dir(follow_symlinks=False):
                    _ensure_private_dir(path, group_search=False)
                else:
                    check_private_file(path)
        return self

    def set_socket_group(self, gid: int | None) -> None:
        """Open the way to the socket for group `gid` (root and run/ 0710, that group) or close
        it (0700). Nothing else in the tree is opened: agents of that group can reach only
        `run/agent.sock`; every other file stays 0600/0700 and owned by the engine."""
        for d in (self.root, self.run_dir):
            fd = _open_dir(d)
            try:
                if gid is not None:
                    os.fchown(fd, -1, gid)
                os.fchmod(fd, 0o710 if gid is not None else 0o700)
            finally:
                os.close(fd)

    def inspect(self) -> list[tuple[str, str]]:
        """Read-only: every way the tree is wider than private, as (level, message) lines for
        `talon doctor` ("warning"; "info" for what this uid may not look at). The owner
        expected everywhere is the root's owner. Nothing is changed."""
        problems: list[tuple[str, str]] = []
        try:
            owner = os.lstat(self.root).st_uid
        except OSError as exc:
            return [_unreadable(self.root, exc)]
        for d in self.private_dirs():
            problems += _inspect(d, owner, dir_ok=0o710 if d in (self.root, self.run_dir) else 0)
        files = [self.state_path, self.admin_token_path, self.lock_path]
        for d in (self.audit_dir, self.keys_dir, self.trusted_keys_dir, self.secrets_dir):
            try:
                files += [
                    Path(e.path) for e in os.scandir(d) if Path(e.path) not in self.private_dirs()
                ]
            except FileNotFoundError:
                continue
            except OSError as exc:
                problems.append(_unreadable(d, exc))
        for f in files:
            problems += _inspect(f, owner, dir_ok=None)
        return problems


def _unreadable(path: Path, exc: OSError) -> tuple[str, str]:
    if isinstance(exc, PermissionError):
        return ("info", f"{path}: uid {os.geteuid()} may not look inside (right for an agent)")
    return ("warning", f"{path}: cannot inspect ({exc.strerror})")


def _inspect(path: Path, owner: int, dir_ok: int | None) -> list[tuple[str, str]]:
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return []
    except OSError as exc:
        return [_unreadable(path, exc)]
    mode = stat.S_IMODE(st.st_mode)
    out = []
    if stat.S_ISLNK(st.st_mode):
        return [("warning", f"{path}: is a symlink (the engine refuses it)")]
    if st.st_uid != owner:
        out.append(f"{path}: belongs to uid {st.st_uid}, the data dir to uid {owner}")
    if dir_ok is None:  # a file
        if not stat.S_ISREG(st.st_mode):
            out.append(f"{path}: is not a regular file")
        if mode & 0o077:
            out.append(f"{path}: mode {mode:o}, others than its owner may read or write it")
    else:
        if not stat.S_ISDIR(st.st_mode):
            out.append(f"{path}: is not a directory")
        if mode & 0o077 & ~dir_ok:
            out.append(f"{path}: mode {mode:o}, wider than 0700 (0710 for the root and run/)")
    return [("warning", line) for line in out]


class DataDirUnsafe(TalonError):
    """The data directory (or a file in it) could be changed or read by someone else."""


def _refuse(path: Path, why: str) -> DataDirUnsafe:
    return DataDirUnsafe(
        f"refusing data dir {path}: {why}; use a directory only you can write "
        "(see SECURITY.md, 'Whose data dir')"
    )


def _open_dir(path: Path) -> int:
    try:
        return os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except NotADirectoryError:
        why = "it is a symlink" if os.path.islink(path) else "it is not a directory"
        raise _refuse(path, why) from None
    except OSError as exc:
        if exc.errno == errno.ELOOP or os.path.islink(path):
            raise _refuse(path, "it is a symlink") from None
        raise _refuse(path, f"cannot open it ({exc.strerror})") from None


def _ensure_private_dir(path: Path, *, group_search: bool) -> None:
    """Create `path` 0700 if missing, then check it through an fd: a directory (no symlink)
    owned by our uid and writable only by us; narrow its mode to 0700 (0710 kept for the root
    and run/ when group search is all they add: `set_socket_group` made them so)."""
    with contextlib.suppress(FileExistsError):
        os.mkdir(path, 0o700)
    fd = _open_dir(path)
    try:
        st = os.fstat(fd)
        if st.st_uid != os.geteuid():
            raise _refuse(path, f"it belongs to uid {st.st_uid}, not to us (uid {os.geteuid()})")
        mode = stat.S_IMODE(st.st_mode)
        if mode & 0o022:
            raise _refuse(path, f"it is writable by group or others (mode {mode:o})")
        want = 0o710 if group_search and mode & 0o077 == 0o010 else 0o700
        if mode != want:
            os.fchmod(fd, want)
    finally:
        os.close(fd)


def check_private_file(path: Path) -> None:
    """A file in the tree, if present: a regular file (no symlink) owned by our uid, writable
    only by us; group/other bits are removed (0600)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK)
    except FileNotFoundError:
        return
    except OSError as exc:
        if exc.errno == errno.ELOOP or os.path.islink(path):
            raise _refuse(path, "it is a symlink") from None
        raise _refuse(path, f"cannot open it ({exc.strerror})") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise _refuse(path, "it is not a regular file")
        if st.st_uid != os.geteuid():
            raise _refuse(path, f"it belongs to uid {st.st_uid}, not to us (uid {os.geteuid()})")
        mode = stat.S_IMODE(st.st_mode)
        if mode & 0o022:
            raise _refuse(path, f"it is writable by group or others (mode {mode:o})")
        if mode & 0o077:
            os.fchmod(fd, mode & 0o700)
    finally:
        os.close(fd)


def check_ancestors(root: Path) -> None:
    """Every existing directory above `root` (symlinks resolved) belongs to us or root and
    cannot be written by others: sticky (like /tmp) is fine, and group write only for our own
    primary group. Missing ones are created with the default umask."""
    parent = Path(os.path.realpath(root.parent))
    parent.mkdir(parents=True, exist_ok=True)
    me = os.geteuid()
    for d in (parent, *parent.parents):
        st = os.stat(d)
        mode = stat.S_IMODE(st.st_mode)
        if st.st_uid not in (me, 0):
            raise _refuse(root, f"its parent {d} belongs to uid {st.st_uid}")
        sticky = bool(mode & stat.S_ISVTX)
        if mode & 0o002 and not sticky:
            raise _refuse(root, f"its parent {d} is writable by others (mode {mode:o})")
        if mode & 0o020 and not sticky and st.st_gid not in (os.getegid(), 0):
            raise _refuse(root, f"its parent {d} is writable by group {st.st_gid}")


def write_private(path: Path, data: bytes) -> None:
    """Write a 0600 file atomically (temp, fsync, rename, fsync dir). The temp name is
    unique per thread too: two threads saving one file (say the audit index, from concurrent
    queries) must not rename each other's temp file away."""
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}.{threading.get_ident()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    fsync_dir(path.parent)


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
