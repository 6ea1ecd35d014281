"""The data directory (DESIGN section 7): where each file lives and with which mode."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


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

    def ensure(self) -> DataDir:
        """Create the directory tree with private modes (0700 dirs)."""
        for d in (
            self.root,
            self.audit_dir,
            self.keys_dir,
            self.trusted_keys_dir,
            self.secrets_dir,
            self.run_dir,
        ):
            d.mkdir(mode=0o700, parents=True, exist_ok=True)
        for d in (self.keys_dir, self.secrets_dir, self.run_dir):
            os.chmod(d, 0o700)
        return self


def write_private(path: Path, data: bytes) -> None:
    """Write a 0600 file atomically (temp, fsync, rename, fsync dir)."""
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
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
