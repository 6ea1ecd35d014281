"""Every byte that is hashed or signed: one function per purpose, all in this module.

`canonical(obj)` is exactly
`json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")`
(DESIGN section 5). Only str, int within +/-2**53, bool, None, lists and str-keyed dicts are
allowed, so any other encoder that agrees on those types yields the same bytes: the orjson
fast paths below (`canonical_bytes`, `encode_exact`, `reencode`) rely on that, and
tests/engine/core/test_canon.py proves each of them byte for byte against `canonical`.

Purposes: audit events (`event_line`), intent hashes (`intent_hash`), output and document
hashes (`canonical_sha256`), checkpoint signatures (`checkpoint_message`), capability token
segments (`token_payload`, `token_header`, `b64url_encode`), and the `sha256:` tag itself.
"""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Any

import orjson

MAX_SAFE_INT = 2**53
HASH_PREFIX = "sha256:"

#: sorted keys; a subclass of str/int/dict/list is handed to `default` (none: refused), so
#: orjson itself refuses non-str and str-subclass keys and lone surrogates (see `exact_types`)
EXACT_OPTS = orjson.OPT_SORT_KEYS | orjson.OPT_PASSTHROUGH_SUBCLASS
#: sorted keys and orjson's own 53-bit integer limit: re-encoding a parsed audit line
REENCODE_OPTS = orjson.OPT_SORT_KEYS | orjson.OPT_STRICT_INTEGER


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


def sha256_tag(data: bytes) -> str:
    """`"sha256:" + hex` of `data`: the one form every hash takes on disk and on the wire."""
    return HASH_PREFIX + hashlib.sha256(data).hexdigest()


def exact_types(value: Any) -> bool:
    """The part of `check_canonical` orjson does not do: every value is exactly a str, bool,
    None, int within +/-2**53, list, tuple or dict (no float, no subclass, no other type).

    No paths are built and strings are not re-encoded: dict keys that are not exactly str and
    strings with lone surrogates make orjson refuse the value (`EXACT_OPTS`), and then the
    full `check_canonical` runs to name the problem. False sends the value there too.
    """
    stack = [value]
    pop, extend = stack.pop, stack.extend
    while stack:
        v = pop()
        t = type(v)
        if t is dict:
            extend(v.values())
        elif t is str or v is None or t is bool:
            continue
        elif t is int:
            if not -MAX_SAFE_INT <= v <= MAX_SAFE_INT:
                return False
        elif t is list or t is tuple:
            extend(v)
        else:
            return False
    return True


def encode_exact(value: Any) -> bytes:
    """`canonical(value)` through orjson, for a value `exact_types` accepted. Raises
    orjson.JSONEncodeError for what orjson refuses (non-str keys, lone surrogates)."""
    return orjson.dumps(value, option=EXACT_OPTS)


def reencode(value: Any) -> bytes:
    """orjson with sorted keys and 53-bit integers: what the audit verifier's fast path
    compares with a line's bytes (equal only when the line is canonical; anything it cannot
    vouch for goes to the stdlib path). Raises orjson.JSONEncodeError."""
    return orjson.dumps(value, option=REENCODE_OPTS)


def canonical_bytes(value: Any) -> bytes:
    """`canonical(value)`, byte for byte: checked canonical first, then orjson with sorted
    keys, which writes exactly the stdlib canonical form for the values the check lets through
    (the audit log relies on the same equivalence)."""
    check_canonical(value)
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)


def canonical_sha256(value: Any) -> str:
    """`"sha256:" + hex` of the canonical bytes (output hashes, policy hashes)."""
    return sha256_tag(canonical_bytes(value))


def intent_hash(tool: str, params: Any) -> str:
    """`ih` claim: sha256 of the canonical {tool, params} (DESIGN section 4), through orjson
    when every value is of a canonical type (orjson refuses lone surrogates and non-str keys
    itself); any doubt takes the stdlib path, which also raises the precise NotCanonical."""
    value = {"tool": tool, "params": params}
    if exact_types(value):
        try:
            body = encode_exact(value)
        except orjson.JSONEncodeError:
            pass
        else:
            return sha256_tag(body)
    return sha256_tag(canonical(value))


def event_line(event: dict[str, Any]) -> tuple[bytes, str]:
    """(audit line with newline, its hash) for an event without `hash` whose values passed
    `exact_types` or `check_canonical`: the hash is sha256 of prev_hash's bytes followed by
    the canonical event, and `"hash"` is appended last (DESIGN section 5). Raises
    orjson.JSONEncodeError for what orjson refuses."""
    body = encode_exact(event)
    h = sha256_tag(event["prev_hash"].encode() + body)
    return body[:-1] + b',"hash":"' + h.encode() + b'"}\n', h


def checkpoint_message(seq: int, hash_: str) -> bytes:
    """What an audit checkpoint signs: the canonical {seq, hash} of the event it covers."""
    return canonical({"seq": seq, "hash": hash_})


def token_header(header: dict[str, Any]) -> bytes:
    """A JWS protected header as PyJWT writes it (sorted keys, compact, ASCII)."""
    return json.dumps(header, separators=(",", ":"), sort_keys=True).encode()


def token_payload(payload: dict[str, Any]) -> bytes:
    """A capability token's claims as PyJWT writes them (insertion order, compact, ASCII)."""
    return json.dumps(payload, separators=(",", ":")).encode("utf-8")


def b64url_encode(data: bytes) -> str:
    """base64url without padding (JWS segments, checkpoint and skill signatures)."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(text: str) -> bytes:
    """The bytes of base64url text, padding optional."""
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj: dict[str, Any] = {}
    for k, v in pairs:
        if k in obj:
            raise ValueError(f"duplicate key {k!r}")
        obj[k] = v
    return obj


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


class TooDeep(ValueError):
    """A JSON text nested deeper than the parser can follow."""


def loads_strict(text: str | bytes) -> Any:
    """`json.loads` that refuses duplicate keys (anywhere) and NaN/Infinity, so that two readers
    of the same bytes can never see two different documents. Raises ValueError for every bad
    text, `TooDeep` (a ValueError) for nesting too deep to parse: never RecursionError."""
    try:
        return json.loads(text, object_pairs_hook=_no_duplicate_keys, parse_constant=_no_constant)
    except RecursionError:
        raise TooDeep("JSON nests deeper than the parser can follow") from None


def jsonable(value: Any) -> Any:
    """Turn a pydantic dump into canonical-safe data: floats become their decimal string."""
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    return value
