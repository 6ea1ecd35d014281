"""`talon audit verify` and `talon audit export`: offline, read the files, need no engine."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from talon_tui.cli.commands.common import fail, line, print_json


def _audit_paths(args: argparse.Namespace) -> tuple[Path, Path]:
    from talon_tui.engine.core.paths import DataDir, resolve_data_dir

    data = DataDir(resolve_data_dir(args.data_dir))
    if not data.audit_log.is_file():
        fail(f"no audit log at {data.audit_log}")
    return data.audit_dir, data.keys_dir


def cmd_audit_verify(args: argparse.Namespace) -> int:
    from talon_tui.engine.audit.verify import verify_log
    from talon_tui.engine.core import keys

    audit_dir, keys_dir = _audit_paths(args)
    try:
        public_key = keys.load_public(keys_dir, "audit")
    except FileNotFoundError:
        fail(f"no audit public key at {keys.public_key_path(keys_dir, 'audit')}")
    except ValueError as exc:
        fail(str(exc))
    progress = None
    if sys.stderr.isatty() and not args.json:

        def progress(done: int, total: int) -> None:
            pct = 100 * done // total if total else 100
            print(f"\rverifying… {pct:3d}%", end="", file=sys.stderr, flush=True)

    report = verify_log(audit_dir, public_key, progress=progress)
    if progress is not None:
        print("\r" + " " * 20 + "\r", end="", file=sys.stderr)
    if args.json:
        print_json(
            {
                "valid": report.valid,
                "events": report.events,
                "first_bad_seq": report.first_bad_seq,
                "damage": report.damage,
                "signed_head_seq": report.signed_head_seq,
                "message": report.message,
            }
        )
    elif report.valid:
        print(f"audit log OK: {line(report.message)}")
    else:
        print(
            f"audit log DAMAGED at seq {report.first_bad_seq}: {line(report.damage)} — "
            f"{line(report.message)}"
        )
    return 0 if report.valid else 1


def cmd_audit_export(args: argparse.Namespace) -> int:
    """Export is a data file: the log's lines byte for byte (each still verifies), to a file or
    a pipe. Only when stdout is a terminal is each line passed through `escape_json_text`: the
    same JSON values, with control, C1 and bidi characters as `\\uXXXX` escapes."""
    from talon_tui.engine.audit.index import AuditIndex, log_path
    from talon_tui.safe_text import escape_json_text

    audit_dir, _ = _audit_paths(args)
    index = AuditIndex.load(audit_dir)
    if args.session is None and args.run is None:
        seqs: Any = range(len(index))
    else:
        seqs = index.seqs_for(run_id=args.run, session_id=args.session)
        if not seqs:
            what = f"run {args.run}" if args.run else f"session {args.session}"
            fail(f"no events for {what} in {log_path(audit_dir)}")
    out = open(args.output, "wb") if args.output else sys.stdout.buffer
    to_terminal = not args.output and sys.stdout.isatty()
    try:
        with open(log_path(audit_dir), "rb") as fh:
            for seq in seqs:
                fh.seek(index.offsets[seq])
                raw = fh.readline()
                if to_terminal:
                    text = raw.decode("utf-8", "backslashreplace")
                    raw = escape_json_text(text).encode("utf-8")
                out.write(raw)
    finally:
        if args.output:
            out.close()
        else:
            out.flush()
    return 0
