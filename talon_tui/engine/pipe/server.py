"""The agent pipe (DESIGN section 6): an asyncio Unix-socket server speaking JSON Lines.

Every limit is answered with a clear error and never a crash: a line over 1 MiB (TOO_LARGE,
then close), invalid UTF-8 or JSON, non-object frames, nesting deeper than 64, duplicate keys,
unknown ops and missing fields (BAD_REQUEST, the connection stays), an idle connection (closed),
too many connections, a per-agent token-bucket rate limit (RATE_LIMITED), an agent asking for an
admin op (FORBIDDEN, audited as `pipe.rejected`).

Requests on one connection are processed concurrently (at most MAX_INFLIGHT at a time; more
waits before being read), and replies carry the request's `id`, so one slow intent (say, one
waiting for an approval) never holds up the others. One bad client never slows the others:
each connection has its own reader task, replies are written without waiting on other
connections, and event streams to slow subscribers drop (and count) instead of blocking.

Memory a client can pin is bounded (SECURITY.md, "Limits on the pipe"):
- replies: each request being worked on counts 1/64 of `max_unsent` bytes, or the size of
  the results it has made once they exist, and a connection whose unsent replies plus these
  reach `max_unsent` is not read until its client drains them; all connections together
  stay under `max_unsent_total`, and past it the connection holding the most unsent bytes is
  closed (its replies dropped). A connection with nothing outstanding may always send one
  request, so a client that reads is always served.
- before authentication: a hello deadline, and a cap on connections without a hello per peer
  uid (SO_PEERCRED) and in all, separate from the cap on authenticated connections; the
  oldest connection without a hello makes room for a new one.
- audit noise: rejections are written as at most one `pipe.rejected` event per peer (uid,
  session) per interval, with the count.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import socket
import stat
import struct
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

from ..api import AgentPeer
from ..core import frames, ids
from ..core.canon import loads_strict
from ..core.frames import MAX_LINE_BYTES
from ..errors import BadRequest, ErrorCode, TalonError
from ..runtime.limits import (
    DEFAULT_AUDIT_AGGREGATE_SECONDS,
    DEFAULT_HELLO_TIMEOUT,
    DEFAULT_MAX_CONNECTIONS,
    DEFAULT_MAX_CONNECTIONS_PER_AGENT,
    DEFAULT_MAX_UNAUTH,
    DEFAULT_MAX_UNAUTH_PER_UID,
    DEFAULT_MAX_UNSENT,
    DEFAULT_MAX_UNSENT_TOTAL,
    REQUEST_BUDGET,
    Aggregator,
)
from .ops import ADMIN_OPS, AGENT_OPS, COMMON_OPS, OpContext, dispatch

MAX_DEPTH = 64
MAX_INFLIGHT = 64
DEFAULT_IDLE_TIMEOUT = 300.0
DEFAULT_RATE = 1000.0  # requests per second per agent subject
DEFAULT_BURST = 2000.0
#: how long a connection without a hello is safe from being closed to make room for a new one
UNAUTH_GRACE_SECONDS = 0.5
#: how often a connection waiting for reply room looks again (drains are not signalled)
_ROOM_POLL_SECONDS = 0.05


class PipeSetupError(TalonError):
    """The socket cannot be created safely (symlink, unsafe directory)."""


def _lstat_refusing(path: Path, is_kind: Callable[[int], bool], not_kind: str) -> Any:
    """`os.lstat(path)`, None when nothing is there; a symlink or anything but the kind
    wanted is refused (`not_kind` says what is wrong)."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return None
    if stat.S_ISLNK(st.st_mode):
        raise PipeSetupError(f"refusing to use {path}: it is a symlink")
    if not is_kind(st.st_mode):
        raise PipeSetupError(f"refusing to use {path}: {not_kind}")
    return st


def check_socket_dir(run_dir: Path) -> None:
    """Refuse a symlinked or group/other-writable socket directory (before anything fixes
    its mode), and a socket path that is a symlink or not a socket."""
    st = _lstat_refusing(run_dir, stat.S_ISDIR, "it is not a directory")
    if st is None:
        return
    if st.st_mode & 0o022:
        raise PipeSetupError(
            f"refusing to use {run_dir}: it is writable by group or others "
            f"(mode {stat.S_IMODE(st.st_mode):o}); make it 0700"
        )
    if st.st_uid != os.getuid():
        raise PipeSetupError(f"refusing to use {run_dir}: it belongs to uid {st.st_uid}")
    _lstat_refusing(run_dir / "agent.sock", stat.S_ISSOCK, "it exists and is not a socket")


class TokenBucket:
    __slots__ = ("burst", "rate", "stamp", "tokens")

    def __init__(self, rate: float, burst: float) -> None:
        self.rate = rate
        self.burst = burst
        self.tokens = burst
        self.stamp = time.monotonic()

    def take(self) -> bool:
        now = time.monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        return False


def _depth_ok(value: Any, limit: int = MAX_DEPTH) -> bool:
    stack = [(value, 1)]
    while stack:
        v, d = stack.pop()
        if isinstance(v, dict):
            if d > limit:
                return False
            stack.extend((x, d + 1) for x in v.values())
        elif isinstance(v, list):
            if d > limit:
                return False
            stack.extend((x, d + 1) for x in v)
    return True


#: one JSON string, then (group 1) a ":" when it is an object key. Scanned over a document
#: orjson has accepted, every '"' outside a string starts one, so this sees every string once.
_STRING_THEN_COLON = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"[ \t\n\r]*(:?)', re.DOTALL)


def fast_frame(line: bytes) -> dict[str, Any] | None:
    """The frame via orjson when that is provably what the strict parser would return;
    None sends the line to `strict_frame` (which then accepts or refuses it, with its message).

    Taken only if orjson accepts the line (it refuses invalid UTF-8, lone surrogates, NaN and
    everything else the strict parser refuses, and more), the value is an object nested at most
    MAX_DEPTH deep holding no float (orjson turns integers beyond 64 bits into floats, and float
    parsing is left to the stdlib), and no object lost a key: the number of keys in the text
    (strings followed by ":") equals the number of keys in the parsed objects, so any
    duplicate, however it is spelt ("a" and "\\u0061"), and however deep, takes the slow path.
    """
    try:
        value = orjson.loads(line)
    except orjson.JSONDecodeError:
        return None
    if type(value) is not dict:
        return None
    keys = 0
    stack: list[tuple[Any, int]] = [(value, 1)]
    pop, push = stack.pop, stack.append
    while stack:
        v, d = pop()
        if d > MAX_DEPTH:
            return None
        if type(v) is dict:
            keys += len(v)
            items = v.values()
        else:
            items = v
        for x in items:
            t = type(x)
            if t is dict or t is list:
                push((x, d + 1))
            elif t is float:
                return None
    if _STRING_THEN_COLON.findall(line).count(b":") != keys:
        return None
    return value


def strict_frame(line: bytes) -> dict[str, Any]:
    """The reference parser: stdlib json refusing duplicate keys and NaN/Infinity."""
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BadRequest(f"frame is not valid UTF-8 (byte {exc.start})") from None
    try:
        value = loads_strict(text)
    except RecursionError:
        raise BadRequest(f"frame nests deeper than {MAX_DEPTH} levels") from None
    except ValueError as exc:
        raise BadRequest(f"frame is not valid JSON: {exc}") from None
    if not _depth_ok(value):
        raise BadRequest(f"frame nests deeper than {MAX_DEPTH} levels")
    if not isinstance(value, dict):
        raise BadRequest("frame must be a JSON object")
    return value


def parse_frame(line: bytes) -> dict[str, Any]:
    """One request frame, or BadRequest saying exactly what is wrong with it."""
    value = fast_frame(line)
    if value is None:
        value = strict_frame(line)
    return value


def encode(obj: Any) -> bytes:
    try:
        return orjson.dumps(obj) + b"\n"
    except TypeError:
        return (json.dumps(obj, ensure_ascii=True, default=str) + "\n").encode("ascii")


class Connection:
    def __init__(self, server: PipeServer, reader: asyncio.StreamReader, writer: Any) -> None:
        self.server = server
        self.reader = reader
        self.writer = writer
        self.conn_id = ids.new_id("conn")
        self.role: str | None = None
        self.session_id: str | None = None
        self.subject = ""
        self.uid: int | None = None
        self.pid: int | None = None
        self.tasks: set[asyncio.Task] = set()
        self.slots = asyncio.Semaphore(MAX_INFLIGHT)
        self.subscription: Any = None
        self.pump: asyncio.Task | None = None
        self.closing = False
        self.bucket: TokenBucket | None = None
        #: bytes reserved by requests being worked on (not parked): see ReplyBudget
        self.reserved = 0
        self.opened = time.monotonic()
        #: request id -> the task answering it (intent.cancel finds a waiting intent by it)
        self.by_request: dict[Any, asyncio.Task] = {}
        self.stop_policy_watch: Any = None
        sock = writer.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, 12)
                self.pid, self.uid, _gid = struct.unpack("3i", creds)

    # -- writing
    def send(self, obj: Any) -> None:
        if self.closing or self.writer.is_closing():
            return
        self.writer.write(encode(obj))
        if self.buffered() > self.server.max_unsent // 4:
            self.server.enforce_total()

    def buffered(self) -> int:
        """Reply bytes written but not yet taken by the client's socket."""
        transport = self.writer.transport
        if transport is None or transport.is_closing():
            return 0
        return transport.get_write_buffer_size()

    def unsent(self) -> int:
        return self.buffered() + self.reserved

    async def wait_for_room(self) -> None:
        """Stop reading this client's requests while its unsent replies (and the replies being
        made for it) fill its share, or all connections' together fill the total."""
        server = self.server
        share = server.reply_reservation
        while not self.closing:
            mine = self.unsent()
            if mine == 0:
                return  # nothing outstanding: one request may always go ahead
            if mine + share <= server.max_unsent and server.total_unsent() + share <= (
                server.max_unsent_total
            ):
                return
            await server.wait_changed(_ROOM_POLL_SECONDS)

    async def flush(self) -> None:
        with contextlib.suppress(ConnectionError, RuntimeError):
            await self.writer.drain()

    def reply_error(self, req_id: Any, exc: TalonError) -> None:
        self.send({"id": req_id, "ok": False, "error": exc.to_wire()})

    def reject(self, req_id: Any, code: ErrorCode, message: str, op: Any = None) -> None:
        """Answer an error that is also audited (`pipe.rejected`, aggregated per peer)."""
        self.reply_error(req_id, TalonError(message, code=code))
        self.server.note_rejection(self, code, message, op)

    # -- reading
    async def read_line(self) -> bytes | None:
        """The next line without its newline; None at EOF or idle timeout."""
        idle = self.server.idle_timeout
        while True:
            try:
                async with asyncio.timeout(idle):
                    line = await self.reader.readuntil(b"\n")
                return line[:-1]
            except TimeoutError:
                if self.tasks or self.subscription is not None or self.stop_policy_watch:
                    continue  # waiting on its own intents, or streaming events: not idle
                return None
            except asyncio.IncompleteReadError as exc:
                if exc.partial.strip():
                    raise BadRequest("connection closed in the middle of a frame") from None
                return None

    async def run(self) -> None:
        try:
            await self._serve()
        except asyncio.LimitOverrunError:
            self.reject(None, ErrorCode.TOO_LARGE, f"frame longer than {MAX_LINE_BYTES} bytes")
            await self.flush()
        except ValueError as exc:  # StreamReader's limit surfaces as ValueError in some paths
            self.reject(None, ErrorCode.TOO_LARGE, f"frame rejected: {exc}")
            await self.flush()
        except (ConnectionError, BadRequest):
            pass
        finally:
            await self.close()

    async def _serve(self) -> None:
        if not await self._hello():
            return
        while not self.closing:
            line = await self.read_line()
            if line is None:
                return
            if not line.strip():
                continue
            try:
                frame = parse_frame(line)
            except BadRequest as exc:
                self.reply_error(None, exc)
                await self.flush()
                continue
            req_id = frame.get("id")
            op = frame.get("op")
            if self.role == "agent" and self.bucket is not None and not self.bucket.take():
                self.reject(req_id, ErrorCode.RATE_LIMITED, "rate limit exceeded; slow down", op)
                await self.flush()
                continue
            await self.slots.acquire()
            budget = ReplyBudget(self)
            task = asyncio.create_task(self._handle(req_id, op, frame, budget))
            self.tasks.add(task)
            if op == "intent" and isinstance(req_id, (str, int)) and not isinstance(req_id, bool):
                self.by_request[req_id] = task
            task.add_done_callback(self._task_done)
            # let it run to its first wait: a result made at once (an inline read) is counted
            # before the next request is read
            await asyncio.sleep(0)
            await self.wait_for_room()

    def _task_done(self, task: asyncio.Task) -> None:
        self.tasks.discard(task)
        for req_id in [r for r, t in self.by_request.items() if t is task]:
            del self.by_request[req_id]
        self.slots.release()

    def cancel_request(self, req_id: Any) -> list[str]:
        """Withdraw what this connection's request `req_id` waits for (its approvals)."""
        if isinstance(req_id, bool) or not isinstance(req_id, (str, int)):
            return []
        task = self.by_request.get(req_id)
        if task is None:
            return []
        withdrawn: list[str] = self.server.engine.withdraw_intent(task)
        return withdrawn

    def watch_policy(self) -> None:
        if self.stop_policy_watch is not None:
            raise BadRequest("this connection already watches its policy")

        def notify(version: int) -> None:
            self.send({"event": {"type": "policy.updated", "version": version}})

        self.stop_policy_watch = self.server.engine.watch_policy(self.session_id, notify)

    async def _hello(self) -> bool:
        deadline = min(self.server.hello_timeout, self.server.idle_timeout)
        try:
            async with asyncio.timeout(deadline):
                line = await self.reader.readuntil(b"\n")
        except TimeoutError:
            self.reject(None, ErrorCode.UNAUTHENTICATED, f"no hello within {deadline:g} s")
            await self.flush()
            return False
        except asyncio.IncompleteReadError:
            return False
        if self.closing:
            return False  # closed to make room while its hello was on the way
        line = line[:-1]
        frame: dict[str, Any] | None
        try:
            frame = parse_frame(line)
        except BadRequest:
            frame = None
        req_id = frame.get("id") if frame else None
        auth = frame.get("auth") if frame else None
        engine = self.server.engine
        if frame is None or frame.get("op") != "hello" or not isinstance(auth, dict):
            self.reject(
                req_id,
                ErrorCode.UNAUTHENTICATED,
                'the first frame must be {"op":"hello","auth":{...}}',
                frame.get("op") if frame else None,
            )
            await self.flush()
            return False
        try:
            if "admin_token" in auth:
                if not engine.check_admin_token(auth.get("admin_token")):
                    raise TalonError("wrong admin token", code=ErrorCode.UNAUTHENTICATED)
                self.role, self.subject = "admin", f"admin:uid{self.uid}"
            else:
                self.server.check_agent_uid(self.uid)
                self.session_id, self.subject = engine.authenticate_agent(auth.get("agent_key"))
                self.role = "agent"
                self.bucket = self.server.bucket_for(self.subject)
        except TalonError as exc:
            self.reject(req_id, ErrorCode.UNAUTHENTICATED, exc.message, "hello")
            await self.flush()
            return False
        self.server.authenticated(self)
        full = self.server.connection_refusal(self)
        if full is not None:
            self.reject(req_id, ErrorCode.RATE_LIMITED, full, "hello")
            await self.flush()
            return False
        peer = AgentPeer(
            conn_id=self.conn_id,
            session_id=self.session_id,
            role=self.role,  # type: ignore[arg-type]
            subject=self.subject,
            uid=self.uid,
            pid=self.pid,
            connected_at=ids.now_iso(),
        )
        engine.agent_connected(peer)
        self.server.by_conn[self.conn_id] = self
        await engine.durable()
        self.send(
            {
                "id": req_id,
                "ok": True,
                "role": self.role,
                "session_id": self.session_id,
                "subject": self.subject,
                "conn_id": self.conn_id,
            }
        )
        await self.flush()
        return True

    async def _handle(
        self, req_id: Any, op: Any, frame: dict[str, Any], budget: ReplyBudget
    ) -> None:
        REQUEST_BUDGET.set(budget)
        try:
            await self._answer(req_id, op, frame)
        finally:
            budget.done()  # the reply is in the transport now: counted as buffered bytes
        await self.flush()

    async def _answer(self, req_id: Any, op: Any, frame: dict[str, Any]) -> None:
        try:
            if not isinstance(op, str) or not op:
                raise BadRequest("frame needs an op (a string)")
            if op in ADMIN_OPS and self.role != "admin":
                self.reject(req_id, ErrorCode.FORBIDDEN, f"agents may not use {op!r}", op)
                return
            if op not in AGENT_OPS and op not in ADMIN_OPS and op not in COMMON_OPS:
                raise BadRequest(f"unknown op {op!r}")
            if op in AGENT_OPS and self.role != "agent":
                raise BadRequest(f"{op!r} is an agent op; this connection is {self.role}")
            ctx = OpContext(self.server.engine, self.session_id, self.subject, self)
            result = await dispatch(ctx, op, frame)
            reply = {"id": req_id, "ok": True, **result}
            # an admin's reply always fits the line its client reads (engine/core/frames.py)
            self.send(frames.fit_reply(reply, op) if self.role == "admin" else reply)
        except TalonError as exc:
            self.reply_error(req_id, exc)
        except Exception as exc:  # noqa: BLE001 - a bug must not take the server down
            self.reply_error(req_id, TalonError(f"internal error: {type(exc).__name__}: {exc}"))

    # -- events
    def start_events(self, from_seq: int | None) -> None:
        if self.subscription is not None:
            raise BadRequest("this connection is already subscribed")
        self.subscription = self.server.engine.subscribe(from_seq)
        self.pump = asyncio.create_task(self._pump())

    async def _pump(self) -> None:
        try:
            async for msg in self.subscription:
                if self.closing:
                    return
                payload = frames.bus_view(msg.kind, msg.payload)  # agent data as a preview
                self.send({"event": {"kind": msg.kind, "payload": payload}})
                await self.flush()
        except (ConnectionError, asyncio.CancelledError):
            return

    async def close(self) -> None:
        if self.closing:
            return
        self.closing = True
        if self.stop_policy_watch is not None:
            self.stop_policy_watch()
        if self.pump is not None:
            self.pump.cancel()
        for task in list(self.tasks):
            task.cancel()
        self.server.forget_unauth(self)
        if self.role is not None and self.server.by_conn.get(self.conn_id) is self:
            self.server.by_conn.pop(self.conn_id, None)
            self.server.engine.agent_disconnected(self.conn_id)
        self.writer.close()
        try:
            async with asyncio.timeout(1.0):
                await self.writer.wait_closed()
        except (TimeoutError, ConnectionError, RuntimeError):
            self.abort()  # a client that never reads: drop what it did not take
        self.server.changed()

    def abort(self) -> None:
        """Close at once, dropping unsent replies (their memory is freed now)."""
        self.closing = True
        transport = self.writer.transport
        if transport is not None:
            transport.abort()


class ReplyBudget:
    """What one request may pin in memory until its reply is written. It counts
    `reply_reservation` bytes against its connection's share from the moment it is read, or
    the size of the results it has made once they exist (`produced`), whichever is larger;
    nothing while it is parked (waiting on an operator or a tool thread); and nothing once its
    reply is in the transport (whose buffer is counted instead)."""

    __slots__ = ("conn", "held", "made", "parked")

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.held = 0
        self.made = 0
        self.parked = False
        self._sync()

    def _sync(self) -> None:
        want = 0 if self.parked else max(self.conn.server.reply_reservation, self.made)
        delta = want - self.held
        if delta:
            self.held = want
            self.conn.reserved += delta
            if delta < 0:
                self.conn.server.changed()

    def park(self) -> None:
        self.parked = True
        self._sync()

    def unpark(self) -> None:
        self.parked = False
        self._sync()

    def produced(self, size: int) -> None:
        self.made += max(0, size)
        self._sync()

    def done(self) -> None:
        self.parked = True
        self.made = 0
        self._sync()


class PipeServer:
    """Serves `engine` on `socket_path` (`await start()`, `await stop()`)."""

    def __init__(
        self,
        engine: Any,
        socket_path: str | os.PathLike[str],
        *,
        max_connections: int = DEFAULT_MAX_CONNECTIONS,
        max_connections_per_agent: int = DEFAULT_MAX_CONNECTIONS_PER_AGENT,
        idle_timeout: float = DEFAULT_IDLE_TIMEOUT,
        rate: float = DEFAULT_RATE,
        burst: float = DEFAULT_BURST,
        socket_group: int | None = None,
        agent_uids: frozenset[int] | None = None,
        hello_timeout: float = DEFAULT_HELLO_TIMEOUT,
        max_unauth_per_uid: int = DEFAULT_MAX_UNAUTH_PER_UID,
        max_unauth: int = DEFAULT_MAX_UNAUTH,
        max_unsent: int = DEFAULT_MAX_UNSENT,
        max_unsent_total: int = DEFAULT_MAX_UNSENT_TOTAL,
        reject_interval: float = DEFAULT_AUDIT_AGGREGATE_SECONDS,
    ) -> None:
        if max_unsent_total < max_unsent:
            raise ValueError("the total reply bound must be at least the per-connection bound")
        self.engine = engine
        #: group allowed to connect (socket 0660 that group); None: only our uid (0600)
        self.socket_group = socket_group
        #: uids an agent may connect from (SO_PEERCRED); None: any uid that reaches the socket
        self.agent_uids = agent_uids
        self.socket_path = Path(socket_path)
        self.max_connections = max_connections
        self.max_connections_per_agent = max_connections_per_agent
        self.idle_timeout = idle_timeout
        self.rate = rate
        self.burst = burst
        self.hello_timeout = hello_timeout
        self.max_unauth_per_uid = max_unauth_per_uid
        self.max_unauth = max_unauth
        self.max_unsent = max_unsent
        self.max_unsent_total = max_unsent_total
        #: what each request being worked on counts at least against its connection's share
        #: (its results count once made): up to 64 small requests run at once in 4 MiB
        self.reply_reservation = max(1, max_unsent // 64)
        self.connections: set[Connection] = set()
        self.by_conn: dict[str, Connection] = {}
        #: connections that have not said hello yet, oldest first, per peer uid
        self.unauth: dict[int | None, dict[str, Connection]] = {}
        self.buckets: dict[str, TokenBucket] = {}
        self._server: asyncio.AbstractServer | None = None
        self._handlers: set[asyncio.Task] = set()
        self._changed = asyncio.Event()
        self._rejections = Aggregator(self._emit_rejection, reject_interval, ("code", "op"))

    # -- limits
    def limits(self) -> dict[str, float]:
        return {
            "max_connections": self.max_connections,
            "max_connections_per_agent": self.max_connections_per_agent,
            "hello_timeout_s": self.hello_timeout,
            "max_unauth_per_uid": self.max_unauth_per_uid,
            "max_unauth": self.max_unauth,
            "max_unsent_bytes": self.max_unsent,
            "max_unsent_total_bytes": self.max_unsent_total,
            "max_inflight_per_connection": MAX_INFLIGHT,
        }

    def changed(self) -> None:
        """Wake connections waiting for reply room."""
        self._changed.set()

    async def wait_changed(self, timeout: float) -> None:
        event = self._changed
        if event.is_set():
            self._changed = event = asyncio.Event()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                await event.wait()

    def total_unsent(self) -> int:
        return sum(c.unsent() for c in self.connections)

    def enforce_total(self) -> None:
        """Past the total bound, close the connections holding the most unsent replies."""
        total = self.total_unsent()
        while total > self.max_unsent_total:
            worst = max(self.connections, key=Connection.buffered, default=None)
            if worst is None or worst.buffered() == 0:
                return
            held = worst.buffered()
            self.note_rejection(
                worst,
                ErrorCode.RATE_LIMITED,
                f"closed: {held} bytes of replies unread while all connections together "
                f"held more than {self.max_unsent_total}",
                None,
            )
            worst.abort()
            total -= held

    def note_rejection(self, conn: Connection, code: ErrorCode, message: str, op: Any) -> None:
        """Audit a rejection: at most one `pipe.rejected` per peer (uid, session) and interval,
        with the count. An op is named only if it is one of ours (an agent's string is not
        copied into the log)."""
        known = isinstance(op, str) and (op in AGENT_OPS or op in ADMIN_OPS or op in COMMON_OPS)
        self._rejections.note(
            (conn.uid, conn.session_id),
            {
                "conn_id": conn.conn_id,
                "code": str(code),
                "reason": message,
                "op": op if known else (None if op is None else "(unknown op)"),
            },
        )

    def _emit_rejection(
        self, key: Any, count: int, d: dict[str, Any], tally: dict[str, dict[str, int]]
    ) -> None:
        uid, session_id = key
        self.engine.pipe_rejected(
            d["conn_id"],
            d["code"],
            d["reason"],
            d["op"],
            session_id,
            count=count,
            uid=uid,
            codes=tally.get("code"),
            ops=tally.get("op"),
        )

    def _admit_unauth(self, conn: Connection) -> bool:
        """Count a new connection without a hello. Over a cap, the oldest connection without a
        hello (of this uid; for the total, of the uid with the most) is closed if it has had
        UNAUTH_GRACE_SECONDS to say hello; else the new one is refused. False: refused."""
        mine = self.unauth.get(conn.uid, {})
        if len(mine) >= self.max_unauth_per_uid and not self._evict(
            mine, f"{self.max_unauth_per_uid} per uid"
        ):
            return False
        if sum(len(v) for v in self.unauth.values()) >= self.max_unauth and not self._evict(
            max(self.unauth.values(), key=len), f"{self.max_unauth} in all"
        ):
            return False
        self.unauth.setdefault(conn.uid, {})[conn.conn_id] = conn
        return True

    def _evict(self, group: dict[str, Connection], cap: str) -> bool:
        oldest = next(iter(group.values()), None)
        if oldest is None or time.monotonic() - oldest.opened < UNAUTH_GRACE_SECONDS:
            return False
        self.forget_unauth(oldest)
        oldest.reject(
            None,
            ErrorCode.RATE_LIMITED,
            f"too many connections without a hello (at most {cap}); the oldest is closed",
        )
        oldest.closing = True
        oldest.writer.close()
        return True

    def authenticated(self, conn: Connection) -> None:
        self.forget_unauth(conn)

    def connection_refusal(self, conn: Connection) -> str | None:
        """Why a newly authenticated connection cannot stay, or None: the cap on all
        authenticated connections, and (for agents) on one agent key's, so that one agent
        cannot take every slot."""
        if len(self.by_conn) >= self.max_connections:
            return f"too many connections (at most {self.max_connections}); try again later"
        if conn.role == "agent":
            mine = sum(1 for c in self.by_conn.values() if c.subject == conn.subject)
            if mine >= self.max_connections_per_agent:
                return (
                    f"this agent key already has {mine} connections (at most "
                    f"{self.max_connections_per_agent}); try again later"
                )
        return None

    def forget_unauth(self, conn: Connection) -> None:
        mine = self.unauth.get(conn.uid)
        if mine is not None and mine.pop(conn.conn_id, None) is not None and not mine:
            del self.unauth[conn.uid]

    def bucket_for(self, subject: str) -> TokenBucket:
        bucket = self.buckets.get(subject)
        if bucket is None:
            bucket = self.buckets[subject] = TokenBucket(self.rate, self.burst)
        return bucket

    async def start(self) -> None:
        run_dir = self.socket_path.parent
        check_socket_dir(run_dir)
        run_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        check_socket_dir(run_dir)
        if self.socket_path.exists() or self.socket_path.is_symlink():
            self.socket_path.unlink()  # a stale socket (we hold engine.lock)
        old = os.umask(0o177)
        try:
            self._server = await asyncio.start_unix_server(
                self._accept, path=str(self.socket_path), limit=MAX_LINE_BYTES, backlog=512
            )
        finally:
            os.umask(old)
        if self.socket_group is not None:
            os.chown(self.socket_path, -1, self.socket_group)
            os.chmod(self.socket_path, 0o660)
        else:
            os.chmod(self.socket_path, 0o600)
        self.engine.on_session_closed = self._drop_conn
        self.engine.pipe_limits = self.limits()

    def check_agent_uid(self, uid: int | None) -> None:
        """Refuse an agent whose peer uid is not in `agent_uids` (when that list is set)."""
        if self.agent_uids is not None and uid not in self.agent_uids:
            raise TalonError(
                f"agents may not connect from uid {uid} (serve --agent-uid)",
                code=ErrorCode.UNAUTHENTICATED,
            )

    def _drop_conn(self, conn_id: str) -> None:
        conn = self.by_conn.get(conn_id)
        if conn is not None:
            task = asyncio.ensure_future(conn.close())
            self._handlers.add(task)
            task.add_done_callback(self._handlers.discard)

    async def _accept(self, reader: asyncio.StreamReader, writer: Any) -> None:
        conn = Connection(self, reader, writer)
        if not self._admit_unauth(conn):
            conn.reject(
                None,
                ErrorCode.RATE_LIMITED,
                "too many connections without a hello; try again later",
            )
            conn.closing = True
            writer.close()
            return
        self.connections.add(conn)
        task = asyncio.current_task()
        if task is not None:
            self._handlers.add(task)
        try:
            await conn.run()
        finally:
            self.connections.discard(conn)
            if task is not None:
                self._handlers.discard(task)

    def inflight(self) -> int:
        return sum(len(c.tasks) for c in self.connections)

    def stop_accepting(self) -> None:
        if self._server is not None:
            self._server.close()
        with contextlib.suppress(FileNotFoundError):
            self.socket_path.unlink()

    async def stop(self, grace: float = 10.0) -> None:
        """Stop accepting, let in-flight requests finish (at most `grace` s), close all
        connections and remove the socket."""
        self.stop_accepting()
        pending = [t for c in self.connections for t in c.tasks]
        if pending:
            await asyncio.wait(pending, timeout=grace)
        for conn in list(self.connections):
            await conn.close()
        self._rejections.flush_all()
        if self._server is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), timeout=2)
