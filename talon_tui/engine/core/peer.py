"""Who listens on the engine's socket: the one check every client makes before it sends a
credential (an admin token, an agent key). Standard library only, so that `talon hook` (one
process per agent tool call) makes it without importing the client library.

The socket's directory must be writable only by its owner, and the process listening
(SO_PEERCRED) must run as a trusted uid: our own, root, or `TALON_ENGINE_UID` (a comma list of
uids or user names) for an engine run as a dedicated user.
"""

from __future__ import annotations

import _socket  # the C module: `socket.py` costs the hook's start-up imports it does not need
import os
import pwd
import stat
import struct

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


class PeerRefused(Exception):
    """The engine's socket cannot be trusted with a credential; the message says why (and
    that nothing was sent)."""


def trusted_engine_uids() -> set[int]:
    """Our own uid, root, and every uid or user name in TALON_ENGINE_UID."""
    uids = {os.geteuid(), 0}
    for part in os.environ.get("TALON_ENGINE_UID", "").split(","):
        name = part.strip()
        if not name:
            continue
        if name.isdigit():
            uids.add(int(name))
            continue
        try:
            uids.add(pwd.getpwnam(name).pw_uid)
        except KeyError:
            raise PeerRefused(f"TALON_ENGINE_UID names {name!r}, which is no user here") from None
    return uids


def check_engine_peer(sock: Any, path: str) -> int:
    """The engine's uid, once `path`'s directory and the listening process on the connected
    `sock` check out; raises PeerRefused (nothing sent) otherwise."""
    trusted = trusted_engine_uids()
    parent = os.path.dirname(path) or "."
    try:
        dst = os.lstat(parent)
    except OSError as exc:
        raise PeerRefused(f"cannot check {parent} ({exc.strerror})") from None
    dmode = stat.S_IMODE(dst.st_mode)
    if dmode & 0o022:
        raise PeerRefused(
            f"refusing to talk to {path}: its directory is writable by others (mode "
            f"{dmode:o}), so anyone could be listening there; nothing was sent"
        )
    if dst.st_uid not in trusted:
        raise PeerRefused(
            f"refusing to talk to {path}: its directory belongs to uid {dst.st_uid}, which is "
            f"neither us (uid {os.geteuid()}), root, nor TALON_ENGINE_UID; nothing was sent "
            "(an engine run as a dedicated user: set TALON_ENGINE_UID or --engine-user)"
        )
    if hasattr(_socket, "SO_PEERCRED"):
        try:
            creds = sock.getsockopt(_socket.SOL_SOCKET, _socket.SO_PEERCRED, struct.calcsize("3i"))
        except OSError as exc:
            raise PeerRefused(
                f"cannot tell who listens on {path} ({exc.strerror}); nothing was sent"
            ) from None
        _pid, uid, _gid = struct.unpack("3i", creds)
    else:  # no peer credentials on this platform: the socket file's owner is the best we have
        uid = os.lstat(path).st_uid
    if uid not in trusted:
        raise PeerRefused(
            f"the process listening on {path} runs as uid {uid}, which is neither us "
            f"(uid {os.geteuid()}), root, nor TALON_ENGINE_UID; it may be impersonating the "
            "engine; nothing was sent (an engine run as a dedicated user: set "
            "TALON_ENGINE_UID or --engine-user)"
        )
    return int(uid)
