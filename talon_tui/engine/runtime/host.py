"""What the engine's mixins (`IntentFlow`, `DelegatedFlow`, `McpFlow`) use of their host,
declared once: the Engine sets these attributes and defines these methods, so no mixin needs
an import of `engine.py`."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..store import EngineStore


class EngineHost:
    store: EngineStore
    started: bool

    if TYPE_CHECKING:

        def _record(
            self,
            etype: str,
            data: dict[str, Any],
            *,
            session_id: str | None = None,
            run_id: str | None = None,
        ) -> dict[str, Any]:
            """Append one event (written, not yet durable)."""
            ...

        async def durable(self) -> None:
            """Return once everything appended so far is on disk."""
            ...
