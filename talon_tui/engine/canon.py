"""Canonical JSON: the one byte form used for hashes (audit chain, intent hashes).

`canonical(obj)` is exactly
`json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")`
(DESIGN section 5). Only str, int within +/-2**53, bool, None, lists and str-keyed dicts are
allowed, so any other encoder that agrees on those types yields the same bytes.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

MAX_SAFE_INT = 2**53


class NotCanonical(ValueError):
    """A value that has no single canonical JSON form (float, big int, lone surrogate, ...)."""


def check_canonical(value: Any, path: str = "$") -> None:
    """Raise NotCanonical if `value` holds anything outside the canonical subset."""
    stack: list[tuple[Any, str]] = [(value, path)]
    while stack:
        v, p = stack.pop()
        if v is None or v is True or v is False:
            continue
        t = type(v)
        if t is str:
            _check_str(v, p)
        elif t is int:
            if not -MAX_SAFE_INT <= v <= MAX_SAFE_INT:
                raise NotCanonical(f"{p}: integer {v} is outside +/-2**53")
        elif t is dict:
            for k, item in v.items():
                if type(k) is not str:
                    raise NotCanonical(f"{p}: object key {k!r} is not a string")
                _check_str(k, p)
                stack.append((item, f"{p}.{k}"))
        elif t is list or t is tuple:
            for i, item in enumerate(v):
                stack.append((item, f"{p}[{i}]"))
        elif t is float:
            raise NotCanonical(f"{p}: floats are not allowed ({v!r})")
        else:
            raise NotCanonical(f"{p}: type {t.__name__} is not allowed")


def _check_str(s: str, path: str) -> None:
    try:
        s.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise NotCanonical(f"{path}: string holds a lone surrogate") from exc


def canonical(value: Any) -> bytes:
    """Canonical bytes of a JSON value (checked)."""
    check_canonical(value)
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode(
        "utf-8"
    )


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def intent_hash(tool: str, params: dict[str, Any]) -> str:
    """`ih` claim: sha256 of the canonical {tool, params} (DESIGN section 4)."""
    return "sha256:" + sha256_hex(canonical({"tool": tool, "params": params}))


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj: dict[str, Any] = {}
    for k, v in pairs:
        if k in obj:
            raise ValueError(f"duplicate key {k!r}")
        obj[k] = v
    return obj


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def loads_strict(text: str | bytes) -> Any:
    """`json.loads` that refuses duplicate keys (anywhere) and NaN/Infinity, so that two readers
    of the same bytes can never see two different documents. Raises ValueError (or
    RecursionError for absurd nesting)."""
    return json.loads(text, object_pairs_hook=_no_duplicate_keys, parse_constant=_no_constant)


def jsonable(value: Any) -> Any:
    """Turn a pydantic dump into canonical-safe data: floats become their decimal string."""
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    return value
