"""Secrets the broker may inject (http.fetch headers `{"secret_ref": name}`); redaction is
`core.redact`.

Values live one per file in `<data>/secrets/` (0600 files in a 0700 directory); the state store
keeps only the names. Nothing that leaves the broker (results, errors, audit events) may carry
a value: `redact` replaces each value, and its common encodings (base64 at any alignment,
base64url, percent-encoding, JSON string escaping), with `«secret:NAME»` in every string of
a JSON-like structure.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..core.paths import write_private
from ..core.redact import MIN_SECRET_CHARS, redact
from ..errors import BadRequest, NotFound
from ..policy.models import SECRET_NAME_RE

NAME_RE = SECRET_NAME_RE


class InvalidSecretName(BadRequest):
    pass


def check_name(name: str) -> str:
    if not isinstance(name, str) or not NAME_RE.fullmatch(name) or name in (".", ".."):
        raise InvalidSecretName(
            f"secret name {name!r} is invalid: use 1-64 characters from A-Z a-z 0-9 _ . - "
            "(not '.' or '..')"
        )
    return name


class SecretStore:
    """One file per secret under `secrets_dir`."""

    def __init__(self, secrets_dir: Path | str) -> None:
        self.dir = Path(secrets_dir)
        self.dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(self.dir, 0o700)

    def _path(self, name: str) -> Path:
        return self.dir / check_name(name)

    def set(self, name: str, value: str) -> None:
        """Store `value` under `name` (0600), replacing any previous value."""
        path = self._path(name)
        if not isinstance(value, str):
            raise BadRequest(f"secret {name!r}: the value must be a string")
        if len(value) < MIN_SECRET_CHARS:
            raise BadRequest(
                f"secret {name!r}: the value must be at least {MIN_SECRET_CHARS} characters, "
                "shorter values cannot be reliably redacted from outputs"
            )
        write_private(path, value.encode("utf-8"))

    def get(self, name: str) -> str:
        path = self._path(name)
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
        except FileNotFoundError:
            raise NotFound(
                f"secret {name!r} is not set (set it with secret.set)",
                details={"name": name},
            ) from None
        with os.fdopen(fd, "rb") as f:
            return f.read().decode("utf-8")

    def delete(self, name: str) -> None:
        try:
            self._path(name).unlink()
        except FileNotFoundError:
            raise NotFound(f"secret {name!r} is not set", details={"name": name}) from None

    def names(self) -> list[str]:
        return sorted(
            p.name
            for p in self.dir.iterdir()
            if NAME_RE.fullmatch(p.name) and not p.name.startswith(".") and p.is_file()
        )

    def values(self) -> dict[str, str]:
        """Every stored secret, name -> value (for redaction)."""
        return {name: self.get(name) for name in self.names()}

    def redact(self, obj: Any, values: Mapping[str, str] | None = None) -> tuple[Any, bool]:
        """`redact(obj, values)`, by default with every stored secret."""
        return redact(obj, self.values() if values is None else values)
