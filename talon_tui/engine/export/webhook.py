"""Approval webhooks: each approval that starts waiting is POSTed to one URL, signed.

Body (JSON, UTF-8): `{type: "approval.waiting", approval_id, tool, target, session_id, subject,
origin, age_s, expires, summary, sent_at}`. `target` and `summary` are link-free: a URL is
written as `host/path` without its scheme, so a chat client shows no link to click; decisions
happen only through an authenticated admin (the console or `talon approvals`).
Header `X-Talon-Signature: sha256=<hex HMAC-SHA256(key, body)>`; the receiver recomputes it
over the raw body (compare in constant time) and may refuse an old `sent_at`.
A delivery that fails is retried with backoff while the approval still waits.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import queue
import threading
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from ..audit.checkpoint import ts_micros
from ..core import ids

if TYPE_CHECKING:
    import httpx

SIGNATURE_HEADER = "X-Talon-Signature"
MAX_BACKOFF = 30.0


def sign(key: bytes, body: bytes) -> str:
    """The signature header's value for `body`."""
    return "sha256=" + hmac.new(key, body, hashlib.sha256).hexdigest()


def _link_free(url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme and parts.hostname:
        return f"{parts.hostname}{parts.path or '/'}"
    return url.replace("://", " ")


def target(tool: str, params: dict[str, Any]) -> str:
    """What the intent acts on, in a few words (no link)."""
    if tool == "http.fetch":
        return f"{params.get('method', 'GET')} {_link_free(str(params.get('url', '')))}"
    if tool == "docker.run":
        return str(params.get("image", ""))
    if tool == "shell.exec":
        argv = params.get("argv") or params.get("command") or []
        return " ".join(str(a) for a in argv) if isinstance(argv, list) else str(argv)
    return str(params.get("path", ""))


def _age(created: str) -> int:
    micros = ts_micros(created)
    if micros is None:
        return 0
    now = ids.utcnow() - datetime(1970, 1, 1, tzinfo=UTC)
    return max(0, int(now.total_seconds()) - micros // 1_000_000)


def payload(approval: dict[str, Any]) -> dict[str, Any]:
    tool = str(approval.get("tool", ""))
    params = approval.get("params") if isinstance(approval.get("params"), dict) else {}
    what = target(tool, params or {}).replace("://", " ")[:200]
    subject = str(approval.get("subject", ""))
    return {
        "type": "approval.waiting",
        "approval_id": approval.get("approval_id"),
        "tool": tool,
        "target": what,
        "session_id": approval.get("session_id"),
        "subject": subject,
        "origin": approval.get("origin"),
        "age_s": _age(str(approval.get("created", ""))),
        "expires": approval.get("expires"),
        "summary": f"{subject} waits for approval: {tool} {what}. Decide in the Talon console "
        f"or with `talon approvals`.",
        "sent_at": ids.now_iso(),
    }


class ApprovalWebhook(threading.Thread):
    """Posts waiting approvals from a queue, in its own thread (never on the engine's loop)."""

    def __init__(self, url: str, key: bytes, timeout: float = 5.0) -> None:
        super().__init__(name="talon-approval-webhook", daemon=True)
        self.url = url
        self._key = key
        self._timeout = timeout
        self._queue: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self._done: set[str] = set()
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self.sent = 0
        self.error = ""

    def waiting(self, approval: dict[str, Any]) -> None:
        self._queue.put(approval)

    def settled(self, approval_id: str) -> None:
        """The approval was decided or expired: stop retrying it."""
        with self._lock:
            self._done.add(approval_id)

    def stop(self) -> None:
        self._stopping.set()
        self._queue.put(None)

    def run(self) -> None:
        # httpx is imported in this thread, when a webhook is configured, not with the module:
        # a `talon serve` without one never pays for it (bench/startup_bench.py)
        import httpx

        with httpx.Client(timeout=self._timeout, follow_redirects=False) as client:
            while (approval := self._queue.get()) is not None:
                self._deliver(client, approval)

    def _deliver(self, client: httpx.Client, approval: dict[str, Any]) -> None:
        import httpx  # loaded by run() already: see there

        backoff = 0.5
        approval_id = str(approval.get("approval_id", ""))
        while True:
            with self._lock:
                if approval_id in self._done:
                    return
            body = json.dumps(payload(approval), sort_keys=True).encode()
            try:
                reply = client.post(
                    self.url,
                    content=body,
                    headers={
                        "Content-Type": "application/json",
                        SIGNATURE_HEADER: sign(self._key, body),
                    },
                )
                if 200 <= reply.status_code < 300:
                    self.sent += 1
                    self.error = ""
                    return
                self.error = f"webhook answered {reply.status_code}"
            except httpx.HTTPError as exc:
                self.error = f"webhook: {exc}"
            if self._stopping.wait(backoff):
                return
            backoff = min(backoff * 2, MAX_BACKOFF)
