"""Look-alike host names for the policy advisor: mixed-script and confusable labels.

A domain entry is judged in the form matching uses (`checks.canonical_domain`: lowercase,
IDNA/UTS-46, punycode). Each `xn--` label is decoded back to Unicode and checked two ways:

- *confusable*: mapping the characters that are commonly drawn like Latin letters (Cyrillic
  `а р ӏ е`, Greek `ο ν ρ`, Armenian `օ ո`, dotless `ı`, ...) to those letters gives an ASCII
  label, so the entry reads like an ASCII name it is not (`аррӏе` reads as `apple`);
- *mixed-script*: its letters come from more than one script, outside the combinations
  UTS #39 calls highly restrictive (Latin with Han and Hiragana/Katakana, Bopomofo or Hangul).

The script of a character is taken from its Unicode name (`CYRILLIC SMALL LETTER A`), digits,
hyphens and combining marks count as common. The table is the common Latin look-alikes, not
the full confusables.txt: a label it misses still shows in punycode in every message.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass

import idna

#: characters drawn like a lowercase ASCII letter or digit (after UTS-46 mapping, which has
#: already folded case, width and compatibility forms such as `ｉ` or `ⅼ`)
LOOKALIKES: dict[str, str] = {
    # Cyrillic
    "а": "a",
    "с": "c",
    "ԁ": "d",
    "е": "e",
    "һ": "h",
    "і": "i",
    "ј": "j",
    "ӏ": "l",
    "о": "o",
    "р": "p",
    "ԛ": "q",
    "ѕ": "s",
    "ѵ": "v",
    "ԝ": "w",
    "х": "x",
    "у": "y",
    "ү": "y",
    "з": "3",
    # Greek
    "α": "a",
    "ϲ": "c",
    "η": "n",
    "ι": "i",
    "ν": "v",
    "ο": "o",
    "ρ": "p",
    "υ": "u",
    "χ": "x",
    "γ": "y",
    # Armenian
    "ց": "g",
    "հ": "h",
    "ո": "n",
    "օ": "o",
    "զ": "q",
    "ս": "u",
    # Latin letters that are not ASCII but look it
    "ı": "i",
    "ȷ": "j",
    "ɑ": "a",
    "ɡ": "g",
    "ɩ": "i",
    "ᴏ": "o",
    "ꜱ": "s",
    "ᴠ": "v",
    "ᴡ": "w",
    "ᴢ": "z",
}

#: script sets a single label may combine (UTS #39 "highly restrictive")
ALLOWED_MIXES: tuple[frozenset[str], ...] = (
    frozenset({"LATIN", "HAN", "HIRAGANA", "KATAKANA"}),
    frozenset({"LATIN", "HAN", "BOPOMOFO"}),
    frozenset({"LATIN", "HAN", "HANGUL"}),
)
_COMMON_WORDS = frozenset({"DIGIT", "HYPHEN-MINUS", "MODIFIER", "COMBINING", "KATAKANA-HIRAGANA"})


def script_of(ch: str) -> str:
    """A character's script, from its Unicode name; COMMON for digits, hyphens and marks."""
    if ch.isascii():
        return "LATIN" if ch.isalpha() else "COMMON"
    if unicodedata.category(ch).startswith("M"):
        return "COMMON"
    name = unicodedata.name(ch, "")
    word = name.split(" ", 1)[0] if name else "UNKNOWN"
    if word in _COMMON_WORDS or (unicodedata.category(ch).startswith("N") and "DIGIT" in name):
        return "COMMON"
    if word == "CJK":
        return "HAN"
    return word


def scripts(label: str) -> set[str]:
    return {s for s in map(script_of, label) if s != "COMMON"}


def skeleton(label: str) -> str:
    """`label` with every look-alike replaced by the ASCII character it is drawn like."""
    return "".join(LOOKALIKES.get(ch, ch) for ch in unicodedata.normalize("NFC", label))


@dataclass(frozen=True)
class Spoof:
    """What is wrong with one label of a host name."""

    label: str  # as Unicode
    ascii_label: str  # as matched (punycode)
    confusable_with: str | None  # the ASCII label it reads as
    scripts: tuple[str, ...]  # the scripts it mixes (empty when one script)
    invalid: str | None = None  # an `xn--` label that does not decode


def host_spoofs(host: str) -> list[Spoof]:
    """Every confusable, mixed-script or undecodable label of `host` (ASCII, as matched)."""
    out: list[Spoof] = []
    for ascii_label in host.split("."):
        if not ascii_label.startswith("xn--"):
            continue
        try:
            label = idna.decode(ascii_label)
        except (idna.IDNAError, UnicodeError) as exc:
            out.append(Spoof(ascii_label, ascii_label, None, (), invalid=str(exc)))
            continue
        mixed = scripts(label)
        mixes = len(mixed) > 1 and not any(mixed <= ok for ok in ALLOWED_MIXES)
        sk = skeleton(label)
        confusable = sk if sk.isascii() and sk != label else None
        if confusable or mixes:
            out.append(Spoof(label, ascii_label, confusable, tuple(sorted(mixed)) if mixes else ()))
    return out
