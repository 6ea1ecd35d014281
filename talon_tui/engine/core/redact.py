"""Redaction of named secret values: `redact` replaces each value, and its common encodings
(base64 at any alignment, base64url, percent-encoding, JSON string escaping, hex in either
case, reversed), with `«secret:NAME»` in every string of a JSON-like structure. Nothing that
leaves the broker (results, errors, audit events) may carry a value.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote, quote_plus

MIN_SECRET_CHARS = 4
"""Shorter values cannot be redacted without mangling ordinary text, so they are refused."""
MIN_ENCODED_CHARS = 8
"""An encoded form is only searched for when it is at least this long (avoids false hits)."""


def marker(name: str) -> str:
    return f"«secret:{name}»"


def _base64_forms(raw: bytes) -> list[str]:
    """Substrings that appear in the base64 (std or url-safe) of any text containing `raw`.

    Base64 maps 3 bytes to 4 characters, so a value at offset 0, 1 or 2 mod 3 of the encoded
    stream has three different encodings; the characters fully determined by the value alone
    are the same in every stream with that alignment.
    """
    forms: list[str] = []
    for shift in range(3):
        enc = base64.b64encode(b"\0" * shift + raw).decode("ascii")
        # character i holds bits [6i, 6i+6); the value holds bits [8*shift, 8*(shift+len))
        start = -(-4 * shift // 3)
        end = (4 * (shift + len(raw))) // 3
        core = enc[start:end]
        if len(core) >= MIN_ENCODED_CHARS:
            forms.append(core)
            forms.append(core.replace("+", "-").replace("/", "_"))
    return forms


def _percent_pattern(value: str) -> list[str]:
    """Regex sources for the percent-encoded forms (hex digits in either case)."""
    out = []
    for enc in {quote(value, safe=""), quote_plus(value, safe=""), quote(value)}:
        if enc == value or len(enc) < MIN_ENCODED_CHARS:
            continue
        out.append(
            re.sub(
                r"%([0-9A-F])([0-9A-F])",
                lambda m: f"%[{m[1]}{m[1].lower()}][{m[2]}{m[2].lower()}]",
                re.escape(enc).replace(r"\%", "%"),
            )
        )
    return out


class SecretRedaction:
    """A compiled redaction of a set of named secret values."""

    def __init__(self, values: Mapping[str, str]) -> None:
        alternatives: list[tuple[int, str, str]] = []
        for name, value in values.items():
            if not isinstance(value, str) or len(value) < MIN_SECRET_CHARS:
                continue
            forms = {re.escape(value)}
            escaped = json.dumps(value, ensure_ascii=False)[1:-1]  # as it sits inside JSON text
            forms.add(re.escape(escaped))
            forms.add(re.escape(json.dumps(value)[1:-1]))
            forms.update(re.escape(f) for f in _base64_forms(value.encode("utf-8")))
            forms.update(_percent_pattern(value))
            # an echoing server's other easy transforms: hex of the UTF-8 bytes (either case)
            # and the value reversed; any other transform is a residual limit (SECURITY.md)
            forms.add(f"(?i:{value.encode('utf-8').hex()})")
            forms.add(re.escape(value[::-1]))
            for src in forms:
                alternatives.append((len(src), src, name))
        # longest first, so a secret that contains another is replaced whole
        alternatives.sort(key=lambda a: -a[0])
        self._names: list[str] = [name for _, _, name in alternatives]
        self._regex = (
            re.compile("|".join(f"({src})" for _, src, _ in alternatives)) if alternatives else None
        )

    def text(self, s: str) -> tuple[str, bool]:
        if self._regex is None:
            return s, False
        hit = False

        def repl(m: re.Match[str]) -> str:
            nonlocal hit
            hit = True
            return marker(self._names[m.lastindex - 1])  # type: ignore[operator]

        out = self._regex.sub(repl, s)
        return out, hit

    def __call__(self, obj: Any) -> tuple[Any, bool]:
        if self._regex is None:
            return obj, False
        return self._walk(obj)

    def _walk(self, obj: Any) -> tuple[Any, bool]:
        if isinstance(obj, str):
            return self.text(obj)
        if isinstance(obj, dict):
            out: dict[Any, Any] = {}
            any_hit = False
            for k, v in obj.items():
                if isinstance(k, str):
                    k, hit_k = self.text(k)
                    any_hit |= hit_k
                v, hit_v = self._walk(v)
                any_hit |= hit_v
                out[k] = v
            return out, any_hit
        if isinstance(obj, list | tuple):
            items = []
            any_hit = False
            for v in obj:
                v, hit = self._walk(v)
                any_hit |= hit
                items.append(v)
            return (tuple(items) if isinstance(obj, tuple) else items), any_hit
        return obj, False


def redact(obj: Any, values: Mapping[str, str]) -> tuple[Any, bool]:
    """Replace every secret value (and its base64 / percent-encoded forms) in every string of
    `obj` (str, or dicts / lists / tuples of them, keys included) with `«secret:NAME»`.
    Returns the redacted copy and whether anything was replaced. Values shorter than
    MIN_SECRET_CHARS are not searched for (SecretStore refuses them)."""
    return SecretRedaction(values)(obj)
