"""The approvals queue: intents waiting for an operator.

Each waiting intent owns one asyncio future; a decision resolves exactly that future, so many
agents can wait at once and a decision wakes only its own intent. Whoever takes an approval out
of the queue first (the operator's decision or the waiter's timeout) wins; the other finds it
gone. Runs on the engine's event loop only.
"""

from __future__ import annotations

import asyncio
import builtins
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from ..api import ApprovalRequest
from ..core import ids
from ..errors import NotFound

#: who withdrew an approval the agent no longer waits for (intent.cancel, connection closed)
AGENT_CANCEL = "agent-cancel"


@dataclass(frozen=True)
class ApprovalOutcome:
    allow: bool
    remember: bool
    by: str  # operator | policy | timeout | shutdown | agent-cancel
    timed_out: bool = False
    reason: str = ""  # why, when `by` is policy


class _Pending:
    __slots__ = ("future", "intent", "intent_id", "owner", "request")

    def __init__(
        self, request: ApprovalRequest, intent_id: str, intent: Any, future: asyncio.Future
    ) -> None:
        self.request = request
        self.intent_id = intent_id
        self.intent = intent  # the ToolIntent as submitted (request.params may be redacted)
        self.future = future
        #: the task that opened it (the pipe request's task): `withdraw` finds it by that
        self.owner = asyncio.current_task()


class ApprovalQueue:
    def __init__(self, timeout_seconds: float = 120.0) -> None:
        self.timeout_seconds = timeout_seconds
        self._pending: dict[str, _Pending] = {}  # decidable now
        self._waiters: dict[str, _Pending] = {}  # opened and not yet waited out

    def __len__(self) -> int:
        return len(self._pending)

    def open(
        self,
        *,
        session_id: str,
        run_id: str | None,
        subject: str,
        tool: str,
        params: dict[str, Any],
        origin: str,
        intent_id: str,
        reason: str,
        remember_override: dict[str, Any] | None,
        intent: Any,
        run_content: str = "",
    ) -> ApprovalRequest:
        """Queue a new approval and return its request (the caller then `wait`s on it)."""
        now = ids.utcnow()
        request = ApprovalRequest(
            approval_id=ids.new_id("apr"),
            session_id=session_id,
            run_id=run_id,
            subject=subject,
            tool=tool,
            params=params,
            origin=origin,
            created=ids.iso(now),
            expires=ids.iso(now + timedelta(seconds=self.timeout_seconds)),
            reason=reason,
            remember_override=remember_override,
            run_content=run_content,
        )
        future: asyncio.Future = asyncio.get_running_loop().create_future()
        pending = _Pending(request, intent_id, intent, future)
        self._pending[request.approval_id] = pending
        self._waiters[request.approval_id] = pending
        return request

    def intent_id(self, approval_id: str) -> str:
        return self._get(approval_id).intent_id

    def get(self, approval_id: str) -> ApprovalRequest:
        return self._get(approval_id).request

    def intent(self, approval_id: str) -> Any:
        """The waiting ToolIntent itself, to judge it again against the current policy."""
        return self._get(approval_id).intent

    def waiting_in(self, session_id: str) -> tuple[str, ...]:
        """Ids of the approvals of one session that are still decidable."""
        return tuple(a for a, p in self._pending.items() if p.request.session_id == session_id)

    def set_remember_override(self, approval_id: str, override: dict[str, Any] | None) -> None:
        """What "approve and remember" would now add (the policy changed while it waited)."""
        self._get(approval_id).request.remember_override = override

    def _get(self, approval_id: str) -> _Pending:
        pending = self._pending.get(approval_id)
        if pending is None:
            raise NotFound(
                f"approval {approval_id!r} is not waiting (unknown, decided or expired)",
                details={"approval_id": approval_id},
            )
        return pending

    def decide(self, approval_id: str, outcome: ApprovalOutcome) -> ApprovalRequest:
        """Take the approval out of the queue and wake its waiter with `outcome`."""
        pending = self._get(approval_id)
        del self._pending[approval_id]
        if not pending.future.done():
            pending.future.set_result(outcome)
        return pending.request

    async def wait(self, approval_id: str) -> ApprovalOutcome:
        """Wait for the decision (which may already have come); on timeout the approval is
        taken out and denied."""
        pending = self._waiters[approval_id]
        try:
            return await asyncio.wait_for(
                asyncio.shield(pending.future), timeout=self.timeout_seconds
            )
        except TimeoutError:
            if self._pending.get(approval_id) is pending:
                del self._pending[approval_id]
                return ApprovalOutcome(allow=False, remember=False, by="timeout", timed_out=True)
            # decided in the same loop turn as the timeout fired: the decision wins
            return pending.future.result()
        finally:
            self._waiters.pop(approval_id, None)
            if self._pending.get(approval_id) is pending and not pending.future.done():
                # the waiter was cancelled (agent gone, engine stopping): nobody waits any more
                del self._pending[approval_id]

    def withdraw(self, owner: asyncio.Task[Any]) -> builtins.list[str]:
        """The agent withdraws what `owner` (the task of one of its requests) waits for: each
        such approval leaves the queue and its waiter wakes denied (`by` agent-cancel).
        Returns the approval ids withdrawn (none when that request waits for nothing)."""
        gone = [a for a, p in self._pending.items() if p.owner is owner]
        for approval_id in gone:
            pending = self._pending.pop(approval_id)
            if not pending.future.done():
                pending.future.set_result(
                    ApprovalOutcome(allow=False, remember=False, by=AGENT_CANCEL)
                )
        return gone

    def list(self) -> list[ApprovalRequest]:
        return [p.request.model_copy() for p in self._pending.values()]

    def cancel_all(self) -> builtins.list[str]:
        """Deny every waiting approval (engine shutdown); returns their ids."""
        gone = list(self._pending)
        for approval_id in gone:
            pending = self._pending.pop(approval_id)
            if not pending.future.done():
                pending.future.set_result(
                    ApprovalOutcome(allow=False, remember=False, by="shutdown")
                )
        return gone
