"""`talon audit verify`, `talon audit head` and `talon audit export`: offline, read the
files, need no engine."""

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


def _public_key(keys_dir: Path) -> Any:
    from talon_tui.engine.core import keys

    try:
        return keys.load_public(keys_dir, "audit")
    except FileNotFoundError:
        fail(f"no audit public key at {keys.public_key_path(keys_dir, 'audit')}")
    except ValueError as exc:
        fail(str(exc))


def cmd_audit_verify(args: argparse.Namespace) -> int:
    from talon_tui.engine.audit.index import check_index
    from talon_tui.engine.audit.verify import parse_witness, verify_log

    audit_dir, keys_dir = _audit_paths(args)
    public_key = _public_key(keys_dir)
    witness = None
    if args.expect_head is not None:
        try:
            witness = parse_witness(args.expect_head)
        except ValueError as exc:
            fail(f"--expect-head: {exc}")
    progress = None
    if sys.stderr.isatty() and not args.json:

        def progress(done: int, total: int) -> None:
            pct = 100 * done // total if total else 100
            print(f"\rverifying… {pct:3d}%", end="", file=sys.stderr, flush=True)

    report = verify_log(audit_dir, public_key, progress=progress, expect_head=witness)
    if progress is not None:
        print("\r" + " " * 20 + "\r", end="", file=sys.stderr)
    report.index = check_index(audit_dir)
    if args.json:
        print_json(
            {
                "valid": report.valid,
                "events": report.events,
                "first_bad_seq": report.first_bad_seq,
                "damage": report.damage,
                "signed_head_seq": report.signed_head_seq,
                "unsigned_tail": report.unsigned_tail,
                "index": report.index,
                "message": report.message,
            }
        )
        return 0 if report.valid else 1
    if report.valid:
        print(f"audit log OK: {line(report.message)}")
    else:
        print(
            f"audit log DAMAGED at seq {report.first_bad_seq}: {line(report.damage)} — "
            f"{line(report.message)}"
        )
    if report.valid and report.unsigned_tail:
        print(
            f"unsigned tail: {report.unsigned_tail} events after the last checkpoint "
            "(a running engine signs them within 10 s; not damage)"
        )
    print(f"index: {report.index}")
    return 0 if report.valid else 1


def cmd_audit_head(args: argparse.Namespace) -> int:
    """Print the signed head (HEAD, checked against its signature and the log) as a witness."""
    from talon_tui.engine.audit.verify import read_head, verify_log

    audit_dir, keys_dir = _audit_paths(args)
    public_key = _public_key(keys_dir)
    head, problem = read_head(audit_dir, public_key)
    if problem:
        fail(f"{audit_dir / 'HEAD'}: {problem}", 1)
    if head is None:
        fail(f"no signed checkpoint yet ({audit_dir / 'HEAD'} is absent)", 1)
    data = head["data"]
    seq, hash_ = data["checkpoint_seq"], data["checkpoint_hash"]
    report = verify_log(audit_dir, public_key, expect_head=(seq, hash_))
    if not report.valid:
        fail(
            f"HEAD signs seq {seq}, but the log does not verify: "
            f"{report.damage} at seq {report.first_bad_seq} — {report.message}",
            1,
        )
    doc = {
        "seq": seq,
        "hash": hash_,
        "signature": data["signature"],
        "key_id": data["key_id"],
        "checkpoint_seq": head["seq"],
        "ts": head.get("ts"),
        "witness": f"{seq}:{hash_}",
    }
    if args.json:
        print_json(doc)
        return 0
    print(f"signed head: seq {seq} hash {hash_}")
    print(f"signature:   {doc['signature']}")
    print(f"key id:      {doc['key_id']}")
    print(f"signed at:   {doc['ts']} (checkpoint seq {doc['checkpoint_seq']})")
    print("keep this witness off the machine; later check the log still holds it with:")
    print(f"  talon audit verify --expect-head {seq}:{hash_}")
    return 0


def cmd_audit_export(args: argparse.Namespace) -> int:
    """Export is a data file: the log, or a run's or session's events, as JSON Lines, byte for
    byte (each still verifies), to a file or a pipe. The whole log is copied line by line; a
    selection is read through the index, every event checked against the chain. Only when stdout
    is a terminal is each line passed through `escape_json_text`: the same JSON values, with
    control, C1 and bidi characters as `\\uXXXX` escapes."""
    from talon_tui.engine.audit.errors import AuditError
    from talon_tui.engine.audit.index import log_path, read_indexed
    from talon_tui.safe_text import escape_json_text

    audit_dir, _ = _audit_paths(args)
    chosen: list[bytes] | None = None
    if args.session is not None or args.run is not None:

        def read(index: Any) -> list[bytes]:
            seqs = index.seqs_for(run_id=args.run, session_id=args.session)
            lines = index.lines(seqs, run_id=args.run, session_id=args.session)
            return [line for line, _event in lines]

        try:
            chosen = read_indexed(audit_dir, read)
        except AuditError as exc:
            fail(exc.message, 1)
        if not chosen:
            what = f"run {args.run}" if args.run else f"session {args.session}"
            fail(f"no events for {what} in {log_path(audit_dir)}")
    out = open(args.output, "wb") if args.output else sys.stdout.buffer
    to_terminal = not args.output and sys.stdout.isatty()
    try:

        def emit(raw: bytes) -> None:
            if to_terminal:
                raw = escape_json_text(raw.decode("utf-8", "backslashreplace")).encode("utf-8")
            out.write(raw)

        if chosen is not None:
            for raw in chosen:
                emit(raw)
        else:
            with open(log_path(audit_dir), "rb") as fh:
                for raw in fh:
                    if raw.endswith(b"\n"):  # a torn last line is not part of the log
                        emit(raw)
    finally:
        if args.output:
            out.close()
        else:
            out.flush()
    return 0
