"""Helpers shared by CLI handlers: one-line errors and JSON output.

Everything a verb prints that an agent could have shaped (labels, tools, params, reasons, file
contents, error messages quoting them) goes through `talon_tui.safe_text`: `line()` for text,
`print_json()` / `json_text()` for JSON, so no control, C1 or bidi character reaches the
operator's terminal raw (SECURITY.md, "What the CLI prints").
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Sequence
from typing import Any, NoReturn

from talon_tui.engine.core.canon import loads_strict
from talon_tui.safe_text import dumps_json, terminal_line


class UsageError(Exception):
    """Bad input from the user: printed as one line, exit 2."""


def line(value: Any, max_len: int = 0) -> str:
    """`value` as text safe to print on one terminal line (controls written out)."""
    return terminal_line(value, max_len)


def fail(message: str, code: int = 2) -> NoReturn:
    """Print `talon: message` on stderr (agent text in it shown safely) and exit `code`."""
    print(f"talon: {line(message)}", file=sys.stderr)
    raise SystemExit(code)


def json_text(obj: Any, *, indent: int | None = None) -> str:
    """JSON with every control, C1 and bidi character escaped; still valid, round-trips."""
    return dumps_json(obj, indent=indent, sort_keys=True)


def print_json(obj: Any) -> None:
    print(json_text(obj, indent=2))


def print_rows(rows: Sequence[Any], as_json: bool, row: Callable[[Any], str], empty: str) -> int:
    """A listing verb's output: `rows` (pydantic models) as one JSON list, else `row(r)` for
    each, or `empty` when there are none. Returns the exit code, 0."""
    if as_json:
        print_json([r.model_dump() for r in rows])
        return 0
    for r in rows:
        print(row(r))
    if not rows:
        print(empty)
    return 0


def load_json_file(path: str) -> Any:
    """Read a JSON file (strictly: no duplicate keys, NaN or absurd nesting, as the engine reads
    frames) or exit 2 with a clear line naming the file and the problem."""
    try:
        with open(path, encoding="utf-8") as fh:
            text = fh.read()
    except FileNotFoundError:
        fail(f"{path}: no such file")
    except (OSError, UnicodeDecodeError) as exc:
        fail(f"{path}: cannot read ({exc})")
    try:
        return loads_strict(text)
    except json.JSONDecodeError as exc:
        fail(f"{path}: not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})")
    except ValueError as exc:
        fail(f"{path}: not valid JSON ({exc})")
