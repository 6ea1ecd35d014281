"""Runs as a projection of the audit log.

The log is the one record of what happened; this module keeps a small in-memory view of it
(run id → `RunSummary`) for `list_runs`, run ownership checks and the console. `apply(event)`
is the only way the view changes: the engine rebuilds it from the log at start and then feeds
it every event it appends, so the view always equals what the log says.
"""

from __future__ import annotations

import builtins
from collections import OrderedDict
from typing import Any

from ..api import RunSummary
from ..core.canon import NotCanonical, canonical_bytes, canonical_sha256, sha256_tag

#: finished runs kept in memory (running runs are always kept: they are checked on every intent)
DEFAULT_KEEP_FINISHED = 20_000


class RunProjection:
    def __init__(self, keep_finished: int = DEFAULT_KEEP_FINISHED) -> None:
        self._keep = keep_finished
        self._runs: OrderedDict[str, RunSummary] = OrderedDict()
        self._finished = 0
        self.session_runs: dict[str, int] = {}
        self.session_last_activity: dict[str, str] = {}
        self._version = 0  # bumped when a run is added or evicted
        self._orders: dict[str | None, list[RunSummary]] = {}
        self._orders_version = -1

    def get(self, run_id: str) -> RunSummary | None:
        return self._runs.get(run_id)

    def running(self) -> builtins.list[RunSummary]:
        return [r for r in self._runs.values() if r.status == "running"]

    def list(
        self, session_id: str | None = None, limit: int = 500, offset: int = 0
    ) -> builtins.list[RunSummary]:
        """Newest first: `limit` runs from position `offset` (pages for long sessions)."""
        if offset > 0:
            order = self._order(session_id)
            return [run.model_copy() for run in order[offset : offset + limit]]
        out: builtins.list[RunSummary] = []
        for run in reversed(self._runs.values()):
            if session_id is not None and run.session_id != session_id:
                continue
            out.append(run.model_copy())
            if len(out) >= limit:
                break
        return out

    def _order(self, session_id: str | None) -> builtins.list[RunSummary]:
        """The newest-first runs of a session, kept until a run is added or evicted, so paging
        through 100,000 runs does not walk them all for every page."""
        if self._orders_version != self._version:
            self._orders = {}
            self._orders_version = self._version
        order = self._orders.get(session_id)
        if order is None:
            order = [
                run
                for run in reversed(self._runs.values())
                if session_id is None or run.session_id == session_id
            ]
            self._orders[session_id] = order
        return order

    def apply(self, event: dict[str, Any]) -> tuple[str, RunSummary] | None:
        """Fold one audit event in; returns ("started"|"finished", run) on a run change."""
        sid = event.get("session_id")
        if sid is not None:
            self.session_last_activity[sid] = event.get("ts", "")
        run_id = event.get("run_id")
        if run_id is None:
            return None
        etype = event.get("type")
        data = event.get("data") or {}
        run: RunSummary | None
        if etype == "run.started":
            run = RunSummary(
                run_id=run_id,
                session_id=sid,
                status="running",
                started=event.get("ts", ""),
                content=str(data.get("content") or ""),
            )
            self._runs[run_id] = run
            self._version += 1
            if sid is not None:
                self.session_runs[sid] = self.session_runs.get(sid, 0) + 1
            return ("started", run)
        run = self._runs.get(run_id)
        if run is None:
            return None
        if etype == "policy.intent.received":
            run.steps += 1
        elif etype == "policy.decision":
            decision = data.get("decision")
            if decision == "DENY":
                run.denied += 1
            elif decision == "REQUIRE_APPROVAL":
                run.approvals += 1
            elif decision == "ALLOW":
                run.allowed += 1
        elif etype == "run.finished":
            run.status = str(data.get("status") or "ok")
            run.finished = event.get("ts")
            self._finished += 1
            self._evict()
            return ("finished", run)
        return None

    def _evict(self) -> None:
        if self._finished <= self._keep:
            return
        for run_id in list(self._runs):
            if self._finished <= self._keep:
                break
            if self._runs[run_id].status != "running":
                del self._runs[run_id]
                self._finished -= 1
                self._version += 1


def recordable(result: Any, cap: int) -> tuple[Any, bool, int]:
    """(output as recorded, truncated?, size of the full result) with the output at most `cap`
    bytes of canonical JSON: long strings are cut first, then the whole output is replaced by
    a preview."""
    output, truncated, size, _digest = recordable_hashed(result, cap)
    return output, truncated, size


def recordable_hashed(result: Any, cap: int) -> tuple[Any, bool, int, str]:
    """`recordable` plus the `"sha256:" + hex` of the recorded output's canonical bytes,
    computed from the bytes already made when the output is the whole result."""
    try:
        full = canonical_bytes(result)
    except NotCanonical:
        result = _scrub(result)
        full = canonical_bytes(result)
    size = len(full)
    if size <= cap:
        return result, False, size, sha256_tag(full)
    if isinstance(result, dict):
        budget = max(cap // (2 * max(1, len(result))), 256)
        cut = {k: (_cut(v, budget) if isinstance(v, str) else v) for k, v in result.items()}
        cut_bytes = canonical_bytes(cut)
        if len(cut_bytes) <= cap:
            return cut, True, size, sha256_tag(cut_bytes)
    text = full.decode("utf-8")
    preview = {"preview": _cut(text, cap // 2)}
    return preview, True, size, canonical_sha256(preview)


def _cut(s: str, max_bytes: int) -> str:
    raw = s.encode("utf-8")
    if len(raw) <= max_bytes:
        return s
    return raw[:max_bytes].decode("utf-8", "ignore")


def _scrub(value: Any) -> Any:
    """Replace what has no canonical form (lone surrogates, huge ints) with visible text."""
    if isinstance(value, str):
        return value.encode("utf-8", "surrogatepass").decode("utf-8", "replace")
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int):
        return value if abs(value) <= 2**53 else str(value)
    if isinstance(value, dict):
        return {_scrub(str(k)): _scrub(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_scrub(v) for v in value]
    return str(value)
