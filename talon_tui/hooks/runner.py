"""`talon hook claude-code|codex`: one hook event in, the agent's answer out, failing closed.

Contracts built for (checked against the agents' public docs and source, December 2026):
Claude Code 2.0.45 or later (the release that added the PermissionRequest hook; the 2.1.x
hooks reference), and Codex builds with hooks on by default (`[features] hooks`, formerly
`codex_hooks`), with the PermissionRequest hook (openai/codex PR #17563, April 2026) and
apply_patch hook payloads (issue #16732).

- Claude Code hooks reference (code.claude.com/docs/en/hooks, "PreToolUse", "PermissionRequest",
  "PostToolUse"): input on stdin `{session_id, transcript_path, cwd, permission_mode,
  hook_event_name, tool_name, tool_input, tool_use_id}` (+ `tool_response` after the tool);
  answer `{"hookSpecificOutput": {"hookEventName": "PreToolUse", "permissionDecision":
  "allow"|"deny", "permissionDecisionReason": …}}` with exit 0; PermissionRequest answers
  `{"hookSpecificOutput": {"hookEventName": "PermissionRequest", "decision": {"behavior":
  "allow"|"deny", "message": …}}}`. Exit 2 blocks with stderr shown to the model; any other
  non-zero exit lets the call through, so this module never exits 1.
- OpenAI Codex hooks (developers.openai.com/codex/hooks; openai/codex `codex-rs/hooks`, the
  PermissionRequest hook of PR #17563, apply_patch hook payloads for issue #16732; PR #20756,
  which would have added allow/ask to PreToolUse, was closed): same input shape plus
  `turn_id` and `model`; `tool_name` is `Bash` (shell, unified exec), `apply_patch` (the patch
  text in `tool_input.command`) or `mcp__<server>__<tool>`. PreToolUse honours only deny, and
  an unknown output field counts as a failed hook (the tool then runs): on allow this prints
  nothing. PermissionRequest uses the same `decision.behavior` answer as Claude Code.

Every failure (engine unreachable, malformed input, an unknown event, an internal error)
becomes a deny in the agent's format; if even that cannot be written, exit 2 with the reason
on stderr. PostToolUse reports the outcome (`tool.report`, the output's sha256) and answers
nothing: the tool has already run.
"""

from __future__ import annotations

import _socket
import os
import sys

from ..engine.core.peer import PeerRefused, check_engine_peer
from .jsonio import dumps, loads
from .mapping import BadToolInput, Plan, Protected, plan_call

TYPE_CHECKING = False  # typing is not imported at run time: the hook's start-up is its cost
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any


AGENTS = ("claude-code", "codex")
DECISION_EVENTS = ("PreToolUse", "PermissionRequest")
REPORT_EVENTS = ("PostToolUse", "PostToolUseFailure")
MAX_STDIN_BYTES = 4 << 20
MAX_LINE_BYTES = 1 << 20
#: how long a decision may wait for the console (an approval); `install` gives the agent a
#: longer hook timeout than this, and this is longer than the engine's default approval timeout
DEFAULT_WAIT_SECONDS = 150.0


class HookError(Exception):
    """A reason to deny, already worded for the agent's model and the operator."""


class Answer:
    """What the hook prints and its exit code."""

    __slots__ = ("exit_code", "stderr", "stdout")

    def __init__(self, stdout: str = "", stderr: str = "", exit_code: int = 0) -> None:
        self.stdout = stdout
        self.stderr = stderr
        self.exit_code = exit_code

    def __repr__(self) -> str:
        return f"Answer(stdout={self.stdout!r}, stderr={self.stderr!r}, exit={self.exit_code})"


class HookOptions:
    __slots__ = (
        "agent",
        "agent_key",
        "data_dir",
        "gateway_server",
        "key_file",
        "socket_path",
        "wait_seconds",
    )

    def __init__(
        self,
        agent: str,
        agent_key: str | None,
        data_dir: str,
        socket_path: str,
        wait_seconds: float = DEFAULT_WAIT_SECONDS,
        key_file: str | None = None,
        gateway_server: str = "talon",
    ) -> None:
        self.agent = agent
        self.agent_key = agent_key
        self.data_dir = data_dir
        self.socket_path = socket_path
        self.wait_seconds = wait_seconds
        self.key_file = key_file
        self.gateway_server = gateway_server


# --------------------------------------------------------------------------- the pipe


class Pipe:
    """One agent connection over the engine's Unix socket (JSON Lines), opened with `hello`.

    Kept to the standard library so that the hook starts fast; this is the one place the hook
    connects, so the client library's peer checks can move here in one edit. `hello` goes out
    in the same write as the first request (the engine reads and answers `hello` before it
    reads anything else on a connection): one round trip less per hook, and still nothing is
    sent before the listener's owner is checked."""

    def __init__(self, socket_path: str, agent_key: str, timeout: float) -> None:
        self._ids = 0
        self._buf = b""
        # the C socket module: `socket.py` costs the hook milliseconds of imports it needs not
        self.sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        try:
            self.sock.connect(socket_path)
        except OSError as exc:
            self.sock.close()
            raise HookError(
                f"Talon's engine is not reachable at {socket_path} ({exc.strerror or exc}); "
                "start `talon serve` or the console"
            ) from None
        try:
            check_engine_peer(self.sock, socket_path)  # before the key goes out
        except PeerRefused as exc:
            self.sock.close()
            raise HookError(str(exc)) from None
        self._hello: dict[str, Any] | None = {"agent_key": agent_key}

    def _readline(self) -> bytes:
        while b"\n" not in self._buf:
            if len(self._buf) > MAX_LINE_BYTES + 2:
                raise HookError("Talon's engine sent a line over 1 MiB")
            chunk = self.sock.recv(65536)
            if not chunk:
                return b""
            self._buf += chunk
        line, _, self._buf = self._buf.partition(b"\n")
        return line

    def _frame(self, op: str, **fields: Any) -> bytes:
        self._ids += 1
        line = dumps({"id": self._ids, "op": op, **fields}, ensure_ascii=False) + "\n"
        return line.encode("utf-8")

    def _reply(self, req_id: int) -> dict[str, Any]:
        while True:
            raw = self._readline()
            if not raw:
                raise HookError("Talon's engine closed the connection")
            reply = loads(raw)
            if not isinstance(reply, dict):
                raise HookError("Talon's engine sent a reply that is not an object")
            if "event" in reply or reply.get("id") not in (req_id, None):
                continue
            return reply

    def call(self, op: str, **fields: Any) -> dict[str, Any]:
        """Send one request (after `hello`, on the first); return the reply (`ok` true or
        false); HookError if the key is refused or the engine goes away, times out or
        answers garbage."""
        data = b""
        hello_id = None
        if self._hello is not None:
            data, hello_id, self._hello = self._frame("hello", auth=self._hello), 1, None
        data += self._frame(op, **fields)
        req_id = self._ids
        try:
            self.sock.sendall(data)
            if hello_id is not None:
                hello = self._reply(hello_id)
                if not hello.get("ok"):
                    raise HookError(f"Talon refused the agent key: {_message(hello)}")
            return self._reply(req_id)
        except TimeoutError:
            raise HookError("no decision from Talon before the hook's wait ran out") from None
        except (OSError, ValueError) as exc:
            raise HookError(f"talking to Talon's engine failed ({exc})") from None

    def close(self) -> None:
        self.sock.close()


def _message(reply: dict[str, Any]) -> str:
    err = reply.get("error")
    if not isinstance(err, dict):
        return "no reason given"
    raw = err.get("details")
    details: dict[str, Any] = raw if isinstance(raw, dict) else {}
    return str(details.get("reason") or err.get("message") or err.get("code") or "denied")


# --------------------------------------------------------------------------- answers


def _deny(agent: str, event: str, reason: str) -> Answer:
    reason = f"Talon: {reason}"
    if event == "PermissionRequest":
        out = {"hookEventName": event, "decision": {"behavior": "deny", "message": reason}}
    else:
        out = {
            "hookEventName": "PreToolUse",
            "permissionDecision": "deny",
            "permissionDecisionReason": reason,
        }
    return Answer(stdout=dumps({"hookSpecificOutput": out}), stderr=reason + "\n")


def _allow(agent: str, event: str, reason: str) -> Answer:
    if event == "PermissionRequest":
        out: dict[str, Any] = {"hookEventName": event, "decision": {"behavior": "allow"}}
    elif agent == "codex":
        return Answer()  # Codex's PreToolUse honours only deny; any output would fail the hook
    else:
        out = {
            "hookEventName": "PreToolUse",
            "permissionDecision": "allow",
            "permissionDecisionReason": f"Talon: {reason}",
        }
    return Answer(stdout=dumps({"hookSpecificOutput": out}))


def last_resort(reason: str) -> Answer:
    """When not even the event is known: a PreToolUse deny on stdout and exit 2 (blocks in
    both agents, the reason on stderr goes to the model)."""
    answer = _deny("claude-code", "PreToolUse", reason)
    answer.exit_code = 2
    return answer


# --------------------------------------------------------------------------- one event


def output_digest(value: Any) -> tuple[str, int]:
    """`sha256:` of the canonical JSON of the tool's output as the agent reported it, and
    its size. Floats (no canonical form in Talon) are hashed in the same `json.dumps`
    form with their Python text."""
    from ..engine.core.canon import NotCanonical, canonical, sha256_tag

    try:
        data = canonical(value)
    except NotCanonical:
        import json  # off the decision path (see jsonio)

        data = json.dumps(
            value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str
        ).encode("utf-8", "surrogatepass")
    return sha256_tag(data), len(data)


def call_ref(payload: dict[str, Any]) -> str:
    """The agent's id of the call (`tool_use_id`), else a digest of the call itself: the same
    in PreToolUse and PostToolUse, so the report finds its decision."""
    ref = payload.get("tool_use_id")
    if isinstance(ref, str) and 0 < len(ref) <= 200:
        return ref
    import hashlib  # only for agents that send no call id
    import json

    body = json.dumps(
        [payload.get("tool_name"), payload.get("tool_input")],
        sort_keys=True,
        ensure_ascii=False,
        default=str,
    )
    return "call:" + hashlib.sha256(body.encode("utf-8", "surrogatepass")).hexdigest()


def handle(
    opts: HookOptions,
    payload: Any,
    *,
    connect: Callable[[HookOptions], Pipe] | None = None,
    env: dict[str, str] | None = None,
) -> Answer:
    """Answer one parsed hook event; raises HookError (or anything else) on failure."""
    if not isinstance(payload, dict):
        raise HookError("the hook input is not a JSON object")
    event = payload.get("hook_event_name")
    if event not in DECISION_EVENTS and event not in REPORT_EVENTS:
        raise HookError(f"unknown hook event {event!r}")
    cwd = payload.get("cwd")
    if not isinstance(cwd, str) or not os.path.isabs(cwd):
        raise HookError("the hook input has no absolute cwd")
    opener = connect or _connect
    if event in REPORT_EVENTS:
        return _report(opts, payload, event, opener)
    protected = Protected(opts.data_dir, [opts.key_file] if opts.key_file else [])
    try:
        plan = plan_call(
            payload.get("tool_name"),
            payload.get("tool_input"),
            cwd,
            protected,
            env=env,
            gateway_server=opts.gateway_server,
        )
    except BadToolInput as exc:
        raise HookError(f"malformed {payload.get('tool_name')} input: {exc}") from None
    if plan.passthrough:
        return Answer()  # Talon's MCP gateway decides that call itself
    if plan.deny is not None:
        return _deny(opts.agent, event, plan.deny)
    return _decide(opts, payload, event, plan, opener)


def _connect(opts: HookOptions) -> Pipe:
    if not opts.agent_key:
        raise HookError("no agent key (--key-file or TALON_AGENT_KEY)")
    return Pipe(opts.socket_path, opts.agent_key, opts.wait_seconds)


def _decide(
    opts: HookOptions,
    payload: dict[str, Any],
    event: str,
    plan: Plan,
    opener: Callable[[HookOptions], Pipe],
) -> Answer:
    native = str(payload.get("tool_name"))
    ref = call_ref(payload)
    if not plan.intents:
        raise HookError("nothing to decide")
    pipe = opener(opts)
    try:
        run: dict[str, Any] = {}
        if len(plan.intents) > 1:  # one run holds every intent of this one call
            begun = pipe.call("run.begin", content=f"{native}: {_summary(payload)}"[:4000])
            if not begun.get("ok") or not isinstance(begun.get("run_id"), str):
                raise HookError(f"Talon refused to open a run: {_message(begun)}")
            run = {"run_id": begun["run_id"]}
        reasons: list[str] = []
        status = "ok"
        try:
            for intent in plan.intents:
                reply = pipe.call(
                    "decide", tool=intent.tool, params=intent.params, native=native, ref=ref, **run
                )
                if not reply.get("ok"):
                    status = "denied"
                    why = _message(reply)
                    if plan.unparseable:
                        why = (
                            f"this command cannot be judged one simple command at a time "
                            f"({plan.unparseable}); {why}"
                        )
                    return _deny(opts.agent, event, why)
                if reply.get("decision") != "ALLOW" or reply.get("executor") != "agent":
                    status = "error"
                    raise HookError("Talon's engine answered decide without an ALLOW")
                reasons.append(str(reply.get("reason") or "allowed"))
        finally:
            if run:
                pipe.call("run.end", status=status, **run)
    finally:
        pipe.close()
    return _allow(opts.agent, event, "; ".join(dict.fromkeys(reasons)))


def _summary(payload: dict[str, Any]) -> str:
    tool_input = payload.get("tool_input")
    if isinstance(tool_input, dict) and isinstance(tool_input.get("command"), str):
        return tool_input["command"]
    import json  # only for a multi-intent call that is not a command line (see jsonio)

    return json.dumps(tool_input, ensure_ascii=False, default=str)


def _report(
    opts: HookOptions,
    payload: dict[str, Any],
    event: str,
    opener: Callable[[HookOptions], Pipe],
) -> Answer:
    output = payload.get("tool_response", payload.get("tool_output", payload.get("error")))
    digest, size = output_digest(output)
    pipe = opener(opts)
    try:
        reply = pipe.call(
            "tool.report",
            ref=call_ref(payload),
            native=str(payload.get("tool_name")),
            status="error" if event == "PostToolUseFailure" else "ok",
            output_sha256=digest,
            bytes=size,
        )
    finally:
        pipe.close()
    if not reply.get("ok"):
        return Answer(stderr=f"Talon: the report was refused: {_message(reply)}\n")
    return Answer()


def _event_of(raw: bytes) -> str | None:
    try:
        payload = loads(raw)
    except ValueError:
        return None
    event = payload.get("hook_event_name") if isinstance(payload, dict) else None
    return event if event in DECISION_EVENTS or event in REPORT_EVENTS else None


def failed(agent: str, event: str | None, reason: str) -> Answer:
    """The answer to a failure: a deny for a decision, a note for a report, and the last
    resort (exit 2) when the event is unknown."""
    if event in REPORT_EVENTS:
        return Answer(stderr=f"Talon: could not record the tool's outcome: {reason}\n")
    if event in DECISION_EVENTS:
        return _deny(agent, event, reason)
    return last_resort(reason)


def run_failed(agent: str, raw: bytes, reason: str) -> Answer:
    """A failure before the hook could start (bad key file, bad options)."""
    return failed(agent, _event_of(raw), reason)


def run(opts: HookOptions, raw: bytes, **kw: Any) -> Answer:
    """The whole hook, failing closed: never raises, never answers with exit 1."""
    event: str | None = None
    try:
        if len(raw) > MAX_STDIN_BYTES:
            raise HookError("the hook input is larger than 4 MiB")
        try:
            payload = loads(raw)
        except ValueError as exc:
            raise HookError(f"the hook input is not JSON ({exc})") from None
        event = _event_of(raw)
        return handle(opts, payload, **kw)
    except HookError as exc:
        reason = str(exc)
    except Exception as exc:  # noqa: BLE001 - every internal error denies (fail closed)
        reason = f"internal error in talon hook ({type(exc).__name__}: {exc})"
    return failed(opts.agent, event, reason)


def emit(answer: Answer) -> int:
    """Write the answer; if stdout cannot take it, exit 2 with the reason on stderr."""
    try:
        if answer.stdout:
            sys.stdout.write(answer.stdout + "\n")
            sys.stdout.flush()
    except OSError:
        sys.stderr.write(answer.stderr or "Talon: could not write the hook answer\n")
        return 2
    if answer.stderr:
        try:
            sys.stderr.write(answer.stderr)
        except OSError:
            pass  # the answer is out; a note the agent cannot show changes nothing
    return answer.exit_code
