"""Helpers shared by CLI handlers: one-line errors and JSON output."""

from __future__ import annotations

import json
import sys
from typing import Any, NoReturn


class UsageError(Exception):
    """Bad input from the user: printed as one line, exit 2."""


def fail(message: str, code: int = 2) -> NoReturn:
    print(f"talon: {message}", file=sys.stderr)
    raise SystemExit(code)


def print_json(obj: Any) -> None:
    print(json.dumps(obj, indent=2, ensure_ascii=False, sort_keys=True))


def load_json_file(path: str) -> Any:
    """Read a JSON file or exit 2 with a clear line naming the file and the problem."""
    try:
        with open(path, encoding="utf-8") as fh:
            return json.load(fh)
    except FileNotFoundError:
        fail(f"{path}: no such file")
    except json.JSONDecodeError as exc:
        fail(f"{path}: not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})")
    except (OSError, UnicodeDecodeError) as exc:
        fail(f"{path}: cannot read ({exc})")
