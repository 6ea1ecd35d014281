"""The part of the Engine its mixins (`IntentFlow`, `DelegatedFlow`, `McpFlow`) build on:
what they use of their host is declared, and the audit plumbing defined, once here, so no
mixin needs an import of `engine.py` (the Engine sets these attributes when it starts)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..audit.log import AuditLog
    from .store import EngineStore, GroupCommit


class EngineHost:
    store: EngineStore
    audit: AuditLog
    started: bool
    _commit: GroupCommit

    def _record(
        self,
        etype: str,
        data: dict[str, Any],
        *,
        session_id: str | None = None,
        run_id: str | None = None,
    ) -> dict[str, Any]:
        """Append one event (written, not yet durable); call `durable()` before answering."""
        return self.audit.append(etype, session_id=session_id, run_id=run_id, data=data)

    async def durable(self) -> None:
        """Return once everything appended so far is on disk (group commit, see store)."""
        await self._commit.wait()
