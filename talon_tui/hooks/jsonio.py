"""`json.loads` and `json.dumps` for the hook's hot path, without importing `json`.

`import json` imports `re` (and with it `enum`, `functools`, `collections`): about a fifth of
the hook's start-up, for one parse of stdin, one of each reply and one answer. The parsing and
encoding that `json` itself does are in the C module `_json`; this builds them the way
`json.JSONDecoder` and `json.dumps` do (the same scanner, the same whitespace and encoding
rules), so every input gets the same value or the same refusal. Anything off the plain path
(a byte-order mark, UTF-16/32, a parse error's message) goes to the real `json`, imported
then. tests/hooks/test_hook_jsonio.py compares both on hostile inputs.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

try:
    import _json
except ImportError:  # an interpreter without the C accelerator: the real module
    _json = None  # type: ignore[assignment]

_WHITESPACE = " \t\n\r"
_CONSTANTS = {"-Infinity": float("-inf"), "Infinity": float("inf"), "NaN": float("nan")}


class _DecoderContext:
    """What the C scanner reads from a `json.JSONDecoder()` with default arguments."""

    strict = True
    object_hook = None
    object_pairs_hook = None
    parse_float = float
    parse_int = int
    parse_constant = _CONSTANTS.__getitem__


def _not_serializable(o: Any) -> Any:
    raise TypeError(f"Object of type {o.__class__.__name__} is not JSON serializable")


if _json is not None:
    # typeshed types the context as a scanner; the C code reads only the attributes above
    _scan_once = _json.make_scanner(_DecoderContext())  # type: ignore[arg-type]


def _skip(s: str, i: int) -> int:
    n = len(s)
    while i < n and s[i] in _WHITESPACE:
        i += 1
    return i


def loads(raw: bytes | str) -> Any:
    """`json.loads(raw)`: the same value, or ValueError (`json.JSONDecodeError`)."""
    if _json is None:
        return _slow_loads(raw)
    if isinstance(raw, bytes):
        # json.detect_encoding says utf-8 unless a BOM or a NUL in the first bytes says else
        if raw[:1] in (b"\xef", b"\xfe", b"\xff") or b"\x00" in raw[:4]:
            return _slow_loads(raw)
        s = raw.decode("utf-8", "surrogatepass")
    else:
        s = raw
        if s.startswith("\ufeff"):
            return _slow_loads(raw)
    try:
        value, end = _scan_once(s, _skip(s, 0))
    except StopIteration:
        return _slow_loads(raw)  # "Expecting value": the real module words it
    if _skip(s, end) != len(s):
        return _slow_loads(raw)  # "Extra data"
    return value


def dumps(obj: Any, *, ensure_ascii: bool = True) -> str:
    """`json.dumps(obj, ensure_ascii=...)` with every other argument at its default."""
    if _json is None:
        import json

        return json.dumps(obj, ensure_ascii=ensure_ascii)
    encode = _json.encode_basestring_ascii if ensure_ascii else _json.encode_basestring
    if isinstance(obj, str):
        return encode(obj)
    # a new encoder each time, as json.dumps does: its circular-reference markers start empty
    encoder = _json.make_encoder(
        {}, _not_serializable, encode, None, ": ", ", ", False, False, True
    )  # markers, default, encoder, indent, separators, sort_keys, skipkeys, allow_nan
    return "".join(encoder(obj, 0))


def _slow_loads(raw: bytes | str) -> Any:
    import json

    return json.loads(raw)
