"""`bash.is_assignment` (written out so that the hook imports no `re`) against the regular
expression it replaced, `^[A-Za-z_][A-Za-z0-9_]*\\+?=`, word by word."""

from __future__ import annotations

import itertools
import re

import pytest

from talon_tui.hooks.bash import is_assignment

REGEX = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*\+?=")
WORDS = [
    "X=y",
    "X+=y",
    "_=1",
    "_9=",
    "A=b=c",
    "PATH=/tmp",
    "=x",
    "+=x",
    "9A=x",
    "A++=x",
    "A+B=x",
    "A-B=x",
    "é=x",
    "٣=x",
    "Aé=x",
    "A x=y",
    "A",
    "",
    "A\x00=x",
    "ＡＢ=x",
    "A\n=x",
    "env",
]


@pytest.mark.parametrize("word", WORDS)
def test_is_assignment_matches_the_regex(word):
    assert is_assignment(word) == bool(REGEX.match(word))


def test_every_short_word_over_a_hostile_alphabet():
    for n in range(5):
        for chars in itertools.product("A_9+=é٣ ", repeat=n):
            word = "".join(chars)
            assert is_assignment(word) == bool(REGEX.match(word)), word
