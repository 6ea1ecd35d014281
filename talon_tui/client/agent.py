"""Clients of the agent pipe (DESIGN section 6).

- `AgentClient`: a small blocking client for agents, one method per agent op.
- `AsyncAgentClient`: the same over asyncio; many requests may be in flight on one connection.
- `AdminClient`: implements `api.EngineAPI` over the pipe, so the console works the same
  attached to a running `talon serve` as with the in-process Engine.

Every error reply becomes an exception of the class for its code (`PolicyDeniedError` carries
`suggested_fix`), all subclasses of `errors.TalonError`.

    from talon_tui.client import AgentClient, PolicyDeniedError
    with AgentClient(agent_key, data_dir="~/.local/share/talon") as agent:
        print(agent.intent("file.read", {"path": "work/notes.txt"}).result["content"])
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import socket
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict

from ..engine.core.frames import MAX_LINE_BYTES
from ..engine.core.paths import DataDir, resolve_data_dir
from ..engine.core.peer import PeerRefused
from ..engine.core.peer import check_engine_peer as peer_check
from ..engine.core.peer import trusted_engine_uids as peer_uids
from ..engine.errors import EngineUnreachable, ErrorCode, TalonError

# --------------------------------------------------------------------------- errors


class ClientError(TalonError):
    """An error reply from the engine (or a broken connection)."""

    code = ErrorCode.INTERNAL

    @property
    def run_id(self) -> str | None:
        return self.details.get("run_id")

    @property
    def reason(self) -> str | None:
        return self.details.get("reason")


class BadRequestError(ClientError):
    code = ErrorCode.BAD_REQUEST


class UnauthenticatedError(ClientError):
    code = ErrorCode.UNAUTHENTICATED


class ForbiddenError(ClientError):
    code = ErrorCode.FORBIDDEN


class NotFoundError(ClientError):
    code = ErrorCode.NOT_FOUND


class PolicyDeniedError(ClientError):
    """The policy denied the intent; `suggested_fix` is the narrowest override that would
    allow exactly it (for an operator to consider, never applied by itself)."""

    code = ErrorCode.POLICY_DENIED

    @property
    def suggested_fix(self) -> dict[str, Any] | None:
        return self.details.get("suggested_fix")


class ConstraintViolationError(ClientError):
    code = ErrorCode.CONSTRAINT_VIOLATION


class ApprovalDeniedError(ClientError):
    code = ErrorCode.APPROVAL_DENIED


class ApprovalTimeoutError(ClientError):
    code = ErrorCode.APPROVAL_TIMEOUT


class TokenInvalidError(ClientError):
    code = ErrorCode.TOKEN_INVALID


class ToolFailedError(ClientError):
    code = ErrorCode.TOOL_ERROR


class TooLargeError(ClientError):
    code = ErrorCode.TOO_LARGE


class RateLimitedError(ClientError):
    code = ErrorCode.RATE_LIMITED


class InternalError(ClientError):
    code = ErrorCode.INTERNAL


def _retrieve(fut: asyncio.Future) -> None:
    if not fut.cancelled():
        fut.exception()


class ConnectionClosedError(InternalError, EngineUnreachable):
    """The engine closed the connection (or was never reachable)."""


class UntrustedEngineError(UnauthenticatedError):
    """Whoever listens on the socket is not the engine we trust: nothing was sent to it."""


class FrameTooLargeError(ConnectionClosedError):
    """The engine sent a line longer than `MAX_LINE_BYTES`: the connection cannot go on
    (the engine never does that on purpose; see engine/core/frames.py)."""

    code = ErrorCode.TOO_LARGE


def _too_long() -> FrameTooLargeError:
    return FrameTooLargeError(
        f"the engine sent a line longer than {MAX_LINE_BYTES} bytes; the connection was closed"
    )


ERRORS: dict[str, type[ClientError]] = {
    cls.code.value: cls
    for cls in (
        BadRequestError,
        UnauthenticatedError,
        ForbiddenError,
        NotFoundError,
        PolicyDeniedError,
        ConstraintViolationError,
        ApprovalDeniedError,
        ApprovalTimeoutError,
        TokenInvalidError,
        ToolFailedError,
        TooLargeError,
        RateLimitedError,
        InternalError,
    )
}


def error_from_reply(reply: dict[str, Any]) -> ClientError:
    raw = reply.get("error")
    err: dict[str, Any] = raw if isinstance(raw, dict) else {}
    code = str(err.get("code") or "INTERNAL")
    cls = ERRORS.get(code, InternalError)
    raw_details = err.get("details")
    details: dict[str, Any] = raw_details if isinstance(raw_details, dict) else {}
    return cls(str(err.get("message") or code), details=details)


# --------------------------------------------------------------------------- results


class IntentResult(BaseModel):
    model_config = ConfigDict(defer_build=True)  # built on first use: verbs start faster

    run_id: str
    intent_id: str | None = None
    decision: str
    result: Any = None


def _socket_path(socket_path: str | os.PathLike[str] | None, data_dir: Any) -> Path:
    if socket_path is not None:
        return Path(socket_path)
    env = os.environ.get("TALON_SOCKET")
    if env and data_dir is None:
        return Path(env)
    return DataDir(resolve_data_dir(data_dir)).socket_path


# --------------------------------------------------------------------------- who listens


def trusted_engine_uids() -> set[int]:
    """The uids a client accepts as its engine: our own, root, and TALON_ENGINE_UID (a comma
    list of uids or user names) for an engine run as a dedicated user."""
    try:
        return peer_uids()
    except PeerRefused as exc:
        raise UntrustedEngineError(str(exc)) from None


def check_engine_peer(sock: Any, path: Path) -> int:
    """Before a credential (admin token, agent key) goes out on `sock`: the socket's directory
    must be writable only by its owner, and the process listening (SO_PEERCRED) must run as a
    trusted uid (`trusted_engine_uids`). Returns the engine's uid; raises UntrustedEngineError
    (nothing sent) otherwise. The check itself is `engine.core.peer` (shared with `talon hook`)."""
    try:
        return peer_check(sock, str(path))
    except PeerRefused as exc:
        raise UntrustedEngineError(str(exc)) from None


def _encode(frame: dict[str, Any]) -> bytes:
    return (json.dumps(frame, ensure_ascii=False, separators=(",", ":")) + "\n").encode("utf-8")


# --------------------------------------------------------------------------- blocking agent


class AgentClient:
    """A blocking agent connection: `hello` with the agent key, then one request at a time."""

    def __init__(
        self,
        agent_key: str,
        *,
        data_dir: str | os.PathLike[str] | None = None,
        socket_path: str | os.PathLike[str] | None = None,
        timeout: float | None = None,
    ) -> None:
        self.socket_path = _socket_path(socket_path, data_dir)
        self._ids = itertools.count(1)
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._sock.settimeout(timeout)
        try:
            self._sock.connect(str(self.socket_path))
        except OSError as exc:
            self._sock.close()
            raise ConnectionClosedError(
                f"cannot reach the Talon engine at {self.socket_path} ({exc.strerror}); "
                "is `talon serve` or the console running?"
            ) from None
        try:
            self.engine_uid = check_engine_peer(self._sock, self.socket_path)
        except UntrustedEngineError:
            self._sock.close()
            raise
        self._file = self._sock.makefile("rb")
        hello = self._call("hello", auth={"agent_key": agent_key})
        self.session_id: str = hello["session_id"]
        self.subject: str = hello["subject"]

    def _call(self, op: str, **fields: Any) -> dict[str, Any]:
        req_id = next(self._ids)
        self._sock.sendall(_encode({"id": req_id, "op": op, **fields}))
        while True:
            line = self._file.readline(MAX_LINE_BYTES + 1)
            if not line:
                raise ConnectionClosedError("the engine closed the connection")
            if not line.endswith(b"\n") and len(line) > MAX_LINE_BYTES:
                self.close()
                raise _too_long()
            try:
                reply = json.loads(line)
            except ValueError:
                self.close()
                raise ConnectionClosedError("the engine sent a line that is not JSON") from None
            if reply.get("id") not in (req_id, None) or "event" in reply:
                continue
            if not reply.get("ok"):
                raise error_from_reply(reply)
            return reply

    def intent(
        self, tool: str, params: dict[str, Any] | None = None, *, run_id: str | None = None
    ) -> IntentResult:
        """Submit one tool intent; returns its result or raises (PolicyDeniedError, ...)."""
        fields: dict[str, Any] = {"tool": tool, "params": params or {}}
        if run_id is not None:
            fields["run_id"] = run_id
        return IntentResult.model_validate(self._call("intent", **fields))

    def begin_run(self, content: str = "") -> str:
        return self._call("run.begin", content=content)["run_id"]

    def end_run(self, run_id: str, status: str = "ok") -> dict[str, Any]:
        reply = self._call("run.end", run_id=run_id, status=status)
        return {k: reply[k] for k in ("run_id", "status", "steps") if k in reply}

    @contextlib.contextmanager
    def run(self, content: str = "") -> Iterator[str]:
        """`with agent.run("task") as run_id:` — ends the run ok, or error on an exception."""
        run_id = self.begin_run(content)
        try:
            yield run_id
        except BaseException:
            with contextlib.suppress(ClientError, OSError):
                self.end_run(run_id, "error")
            raise
        self.end_run(run_id, "ok")

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._file.close()
            self._sock.close()

    def __enter__(self) -> AgentClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# --------------------------------------------------------------------------- asyncio base


class AsyncConnection:
    """One pipe connection; replies are matched to requests by id, event frames queued.

    It never ends quietly: when the connection is lost (EOF, a reset, a line that is too long
    or not JSON), `error` says why, every waiting call raises it, and the event queue ends
    with None after which `error` is set."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._ids = itertools.count(1)
        self._waiting: dict[int, asyncio.Future] = {}
        self.events: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue()
        self._reader_task: asyncio.Task | None = None
        self._writer: asyncio.StreamWriter | None = None
        self.closed = False
        self.engine_uid: int | None = None

        self.error: ConnectionClosedError | None = None

    async def open(self, auth: dict[str, Any]) -> dict[str, Any]:
        try:
            reader, self._writer = await asyncio.open_unix_connection(
                str(self.path), limit=MAX_LINE_BYTES
            )
        except OSError as exc:
            raise ConnectionClosedError(
                f"cannot reach the Talon engine at {self.path} ({exc.strerror})"
            ) from None
        try:
            self.engine_uid = check_engine_peer(self._writer.get_extra_info("socket"), self.path)
        except UntrustedEngineError:
            self._writer.close()
            raise
        self._reader_task = asyncio.create_task(self._read(reader))
        return await self.call("hello", auth=auth)

    async def _read(self, reader: asyncio.StreamReader) -> None:
        error = ConnectionClosedError("the engine closed the connection")
        try:
            while True:
                try:
                    line = await reader.readuntil(b"\n")
                except asyncio.LimitOverrunError:
                    error = _too_long()
                    break
                except asyncio.IncompleteReadError:
                    break  # EOF (a partial last line is no frame)
                try:
                    frame = json.loads(line)
                except ValueError:
                    error = ConnectionClosedError("the engine sent a line that is not JSON")
                    break
                if "event" in frame:
                    self.events.put_nowait(frame["event"])
                    continue
                fut = self._waiting.pop(frame.get("id"), None)
                if (
                    fut is None
                    and frame.get("id") is None
                    and self._waiting
                    and not frame.get("ok")
                ):
                    # a connection-level error (e.g. TOO_LARGE) answers the oldest request
                    fut = self._waiting.pop(next(iter(self._waiting)))
                if fut is not None and not fut.done():
                    fut.set_result(frame)
        except ConnectionError as exc:
            error = ConnectionClosedError(f"the connection to the engine broke ({exc})")
        finally:
            self.closed = True
            self.error = error
            for fut in self._waiting.values():
                if not fut.done():
                    fut.set_exception(error)
            self._waiting.clear()
            self.events.put_nowait(None)
            if self._writer is not None:
                self._writer.close()

    async def call(self, op: str, **fields: Any) -> dict[str, Any]:
        _req_id, fut = await self.send(op, **fields)
        return await self.reply(fut)

    async def send(self, op: str, **fields: Any) -> tuple[int, asyncio.Future]:
        """Send one request; returns its id (for `intent.cancel`) and the future of its reply
        frame (pass it to `reply`)."""
        if self.closed or self._writer is None:
            raise self.error or ConnectionClosedError("the connection is closed")
        req_id = next(self._ids)
        fut = asyncio.get_running_loop().create_future()
        # A lost connection fails every waiting future; the caller that stopped waiting (its
        # send broke, or it was cancelled) must not leave asyncio's "Future exception was
        # never retrieved" on the operator's terminal: the loss is reported via `error`.
        fut.add_done_callback(_retrieve)
        self._waiting[req_id] = fut
        try:
            self._writer.write(_encode({"id": req_id, "op": op, **fields}))
            await self._writer.drain()
        except ConnectionError as exc:
            self._waiting.pop(req_id, None)
            raise ConnectionClosedError(f"the connection to the engine broke ({exc})") from None
        return req_id, fut

    @staticmethod
    async def reply(fut: asyncio.Future) -> dict[str, Any]:
        """The reply frame of a request `send` sent, or its error raised as a ClientError."""
        reply: dict[str, Any] = await fut
        if not reply.get("ok"):
            raise error_from_reply(reply)
        return reply

    async def close(self) -> None:
        if self._writer is not None:
            with contextlib.suppress(Exception):
                self._writer.close()
                await self._writer.wait_closed()
        if self._reader_task is not None:
            self._reader_task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._reader_task


class AsyncAgentClient:
    """`await AsyncAgentClient.connect(key, ...)`; requests may run concurrently."""

    def __init__(self, conn: AsyncConnection, hello: dict[str, Any]) -> None:
        self._conn = conn
        self.session_id: str = hello["session_id"]
        self.subject: str = hello["subject"]

    @classmethod
    async def connect(
        cls,
        agent_key: str,
        *,
        data_dir: str | os.PathLike[str] | None = None,
        socket_path: str | os.PathLike[str] | None = None,
    ) -> AsyncAgentClient:
        conn = AsyncConnection(_socket_path(socket_path, data_dir))
        try:
            hello = await conn.open({"agent_key": agent_key})
        except BaseException:
            await conn.close()
            raise
        return cls(conn, hello)

    async def intent(
        self, tool: str, params: dict[str, Any] | None = None, *, run_id: str | None = None
    ) -> IntentResult:
        fields: dict[str, Any] = {"tool": tool, "params": params or {}}
        if run_id is not None:
            fields["run_id"] = run_id
        return IntentResult.model_validate(await self._conn.call("intent", **fields))

    async def begin_run(self, content: str = "") -> str:
        return (await self._conn.call("run.begin", content=content))["run_id"]

    async def send_intent(
        self, tool: str, params: dict[str, Any] | None = None, *, run_id: str | None = None
    ) -> tuple[int, asyncio.Future]:
        """Submit an intent without waiting: its request id (for `cancel_intent`) and the
        future of its reply (give it to `intent_result`)."""
        fields: dict[str, Any] = {"tool": tool, "params": params or {}}
        if run_id is not None:
            fields["run_id"] = run_id
        return await self._conn.send("intent", **fields)

    async def intent_result(self, fut: asyncio.Future) -> IntentResult:
        return IntentResult.model_validate(await self._conn.reply(fut))

    async def cancel_intent(self, request_id: int) -> list[str]:
        """Withdraw a pending intent from the approval queue (it then answers
        APPROVAL_DENIED); returns the approval ids withdrawn."""
        reply = await self._conn.call("intent.cancel", request_id=request_id)
        return list(reply.get("withdrawn", []))

    async def policy_view(self) -> dict[str, Any]:
        """The session's own policy: `{session_id, version, policy}`."""
        reply = await self._conn.call("policy.view")
        return {k: reply[k] for k in ("session_id", "version", "policy")}

    async def policy_watch(self) -> int:
        """Receive `{"type": "policy.updated", "version": N}` on `events` from now on;
        returns the current version."""
        return int((await self._conn.call("policy.watch"))["version"])

    @property
    def events(self) -> asyncio.Queue[dict[str, Any] | None]:
        """Event frames (None once the connection closed)."""
        return self._conn.events

    @property
    def closed(self) -> bool:
        return self._conn.closed

    async def call(self, op: str, **fields: Any) -> dict[str, Any]:
        """Any agent op by name (e.g. one newer than this library)."""
        return await self._conn.call(op, **fields)

    async def end_run(self, run_id: str, status: str = "ok") -> dict[str, Any]:
        reply = await self._conn.call("run.end", run_id=run_id, status=status)
        return {k: reply[k] for k in ("run_id", "status", "steps") if k in reply}

    async def close(self) -> None:
        await self._conn.close()

    async def __aenter__(self) -> AsyncAgentClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


# --------------------------------------------------------------------------- admin


def read_admin_token(data_dir: str | os.PathLike[str] | None = None) -> str:
    """TALON_ADMIN_TOKEN, else `<data>/admin.token`: a regular file (no symlink) owned by a
    trusted engine uid and writable only by it; anything else is UnauthenticatedError (a
    planted token file could make us read, then send, a file of the attacker's choosing)."""
    env = os.environ.get("TALON_ADMIN_TOKEN")
    if env and env.strip():
        return env.strip()
    path = DataDir(resolve_data_dir(data_dir)).admin_token_path
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK)
    except FileNotFoundError:
        raise UnauthenticatedError(
            f"no admin token at {path} (start `talon serve` once, or set TALON_ADMIN_TOKEN)"
        ) from None
    except OSError as exc:
        why = "it is a symlink" if os.path.islink(path) else exc.strerror
        raise UnauthenticatedError(
            f"cannot read the admin token at {path} ({why}); run as the engine's user or "
            "set TALON_ADMIN_TOKEN"
        ) from None
    with os.fdopen(fd, "rb") as fh:
        st = os.fstat(fh.fileno())
        mode = stat.S_IMODE(st.st_mode)
        if not stat.S_ISREG(st.st_mode) or st.st_uid not in trusted_engine_uids() or mode & 0o022:
            raise UnauthenticatedError(
                f"refusing the admin token at {path}: not a regular file owned by the engine's "
                f"user and writable only by it (uid {st.st_uid}, mode {mode:o})"
            )
        raw = fh.read(4096)
    try:
        return raw.decode("ascii").strip()
    except UnicodeDecodeError:
        raise UnauthenticatedError(f"the admin token at {path} is not ASCII") from None


__all__ = [
    "ERRORS",
    "AgentClient",
    "AsyncAgentClient",
    "IntentResult",
    "PolicyDeniedError",
    "UntrustedEngineError",
    "check_engine_peer",
    "error_from_reply",
    "read_admin_token",
    "trusted_engine_uids",
]
