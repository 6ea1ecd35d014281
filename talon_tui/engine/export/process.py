"""The engine's side of the exporters' process (worker.py): start it, read its status, stop it.

Exporting in a process of its own keeps the work of reading, encoding and sending events off
the engine's interpreter lock: with the exporters as threads of the engine, intent latency
rose measurably under load (bench/export_bench.py); as a process they share only the CPU, at a
lower priority.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from .config import ExportSpec
from .sinks import make_sink


class ExportProcess:
    """`python -m talon_tui.engine.export.worker` for a list of specs (none: nothing runs)."""

    def __init__(self, specs: list[ExportSpec], log_path: Path, cursor_dir: Path) -> None:
        self.specs = specs
        self.log_path = log_path
        self.cursor_dir = cursor_dir
        self.status_path = cursor_dir / "status.json"
        self.proc: subprocess.Popen[bytes] | None = None
        for spec in specs:
            make_sink(spec).close()  # a missing extra is an error now, not in the worker

    def start(self, drain_seconds: float) -> None:
        if not self.specs:
            return
        self.cursor_dir.mkdir(mode=0o700, exist_ok=True)
        self.status_path.unlink(missing_ok=True)
        cmd = [
            sys.executable,
            "-m",
            "talon_tui.engine.export.worker",
            "--log",
            str(self.log_path),
            "--cursor-dir",
            str(self.cursor_dir),
            "--status",
            str(self.status_path),
            "--drain",
            str(drain_seconds),
        ]
        for spec in self.specs:
            cmd += ["--spec", spec.text]
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE)

    def status(self, head_seq: int) -> list[dict[str, Any]]:
        """One row per exporter, its lag against `head_seq`; `stopped` if the worker exited."""
        rows: dict[str, dict[str, Any]] = {}
        try:
            doc = json.loads(self.status_path.read_text(encoding="utf-8"))
            rows = {r["name"]: r for r in doc.get("exporters", []) if isinstance(r, dict)}
        except (OSError, ValueError, AttributeError, KeyError, TypeError):
            rows = {}
        exit_code = self.proc.poll() if self.proc is not None else None
        out = []
        for spec in self.specs:
            row = dict(rows.get(spec.name) or {})
            sent = int(row.get("sent_seq", -1))
            row.update(
                name=spec.name,
                kind=spec.kind,
                target=spec.describe(),
                events=spec.events,
                sent_seq=sent,
                lag=max(0, head_seq - sent),
            )
            row.setdefault("state", "starting")
            row.setdefault("error", "")
            row.setdefault("sent_events", 0)
            row.setdefault("retry_in_s", None)
            if exit_code is not None:
                row["state"], row["error"] = "stopped", f"export process exited ({exit_code})"
            out.append(row)
        return out

    def stop(self, timeout: float) -> None:
        """Close the worker's stdin: it sends what is left of the log (bounded), then exits."""
        if self.proc is None:
            return
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
