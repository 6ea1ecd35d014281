"""SecretStore files and modes, and redaction of values and their encodings."""

from __future__ import annotations

import base64
import json
import os
import stat
from urllib.parse import quote, quote_plus

import pytest

from talon_tui.engine.core.redact import redact
from talon_tui.engine.errors import BadRequest, ErrorCode, NotFound
from talon_tui.engine.runtime.secrets import InvalidSecretName, SecretStore

TOKEN = "sk-live-9f8e7d6c5b4a"


@pytest.fixture
def store(tmp_path) -> SecretStore:
    return SecretStore(tmp_path / "secrets")


def test_set_get_names_and_modes(store):
    store.set("api_token", TOKEN)
    store.set("other.key-2", "hunter22")
    assert store.get("api_token") == TOKEN
    assert store.names() == ["api_token", "other.key-2"]
    assert stat.S_IMODE(os.stat(store.dir).st_mode) == 0o700
    for name in store.names():
        assert stat.S_IMODE(os.stat(store.dir / name).st_mode) == 0o600
    store.set("api_token", "replaced-value")
    assert store.get("api_token") == "replaced-value"
    assert store.values() == {"api_token": "replaced-value", "other.key-2": "hunter22"}


def test_unicode_value_round_trips(store):
    store.set("u", "pässwörd-🔑")
    assert store.get("u") == "pässwörd-🔑"


def test_missing_secret_is_not_found_with_its_name(store):
    with pytest.raises(NotFound, match="'nope' is not set") as info:
        store.get("nope")
    assert info.value.code == ErrorCode.NOT_FOUND
    assert info.value.details == {"name": "nope"}


@pytest.mark.parametrize(
    "name", ["", "../x", "a/b", "x" * 65, "sp ace", "..", ".", "nul\x00", "ü", None]
)
def test_bad_names_refused(store, name):
    with pytest.raises(InvalidSecretName, match="invalid"):
        store.set(name, "value-1234")
    assert not any(store.dir.iterdir())
    assert isinstance(InvalidSecretName("x"), BadRequest)


def test_short_or_non_string_values_refused(store):
    with pytest.raises(BadRequest, match="at least 4"):
        store.set("s", "abc")
    with pytest.raises(BadRequest, match="string"):
        store.set("s", b"bytes-value")  # type: ignore[arg-type]
    assert store.names() == []


def test_get_does_not_follow_symlinks(store, tmp_path):
    target = tmp_path / "elsewhere"
    target.write_text("outside")
    os.symlink(target, store.dir / "link")
    with pytest.raises(OSError):
        store.get("link")


def test_delete(store):
    store.set("a", "value-1")
    store.delete("a")
    assert store.names() == []
    with pytest.raises(NotFound):
        store.delete("a")


# --------------------------------------------------------------------------- redaction


def test_redacts_every_occurrence_in_nested_structures():
    obj = {
        "headers": {"Authorization": f"Bearer {TOKEN}", "x": "clean"},
        "body": [f"{TOKEN}{TOKEN}", 5, None, True, {"deep": (f"a{TOKEN}b",)}],
        TOKEN: "key holds it",
    }
    out, hit = redact(obj, {"api": TOKEN})
    assert hit is True
    assert out == {
        "headers": {"Authorization": "Bearer «secret:api»", "x": "clean"},
        "body": ["«secret:api»«secret:api»", 5, None, True, {"deep": ("a«secret:api»b",)}],
        "«secret:api»": "key holds it",
    }
    assert TOKEN not in json.dumps(out, ensure_ascii=False)
    # the input is not modified
    assert obj["headers"]["Authorization"] == f"Bearer {TOKEN}"


def test_nothing_to_redact():
    obj = {"a": ["b", 1]}
    assert redact(obj, {"api": TOKEN}) == (obj, False)
    assert redact("plain", {}) == ("plain", False)


def test_short_values_are_not_searched():
    assert redact("abc abc", {"s": "abc"}) == ("abc abc", False)


def test_longest_secret_wins():
    out, hit = redact(f"x {TOKEN} y sk-live", {"short": "sk-live", "long": TOKEN})
    assert hit and out == "x «secret:long» y «secret:short»"


def test_regex_characters_in_values_are_literal():
    value = "a.b*c+(d)[e]$^|"
    out, hit = redact(f"<{value}> aXbYc", {"r": value})
    assert hit and out == "<«secret:r»> aXbYc"


@pytest.mark.parametrize("prefix", [b"", b"a", b"ab", b"abc", b"Basic user:"])
@pytest.mark.parametrize("suffix", [b"", b"z", b"zz"])
def test_base64_at_any_alignment(prefix, suffix):
    blob = prefix + TOKEN.encode() + suffix
    for enc in (base64.b64encode(blob), base64.urlsafe_b64encode(blob)):
        text = f"Authorization: Basic {enc.decode()}"
        out, hit = redact(text, {"api": TOKEN})
        assert hit, text
        assert "«secret:api»" in out
        # only the characters that also hold bits of the neighbouring bytes are left
        leftover = out.removeprefix("Authorization: Basic ").replace("«secret:api»", "")
        assert len(leftover) <= (len(prefix) + len(suffix)) * 4 // 3 + 4


def test_percent_encoded_forms():
    value = "p@ss w/rd&x=1"
    for enc in (
        quote(value, safe=""),
        quote_plus(value),
        quote(value),
        quote(value, safe="").lower(),
    ):
        out, hit = redact(f"https://h/?q={enc}&n=1", {"pw": value})
        assert hit and out == "https://h/?q=«secret:pw»&n=1", enc


def test_json_escaped_form():
    value = 'quo"te\\back'
    text = json.dumps({"echo": value})
    out, hit = redact(text, {"q": value})
    assert hit and value not in out and json.loads(out) == {"echo": "«secret:q»"}


def test_store_redact_uses_every_stored_secret(store):
    store.set("a", TOKEN)
    store.set("b", "second-secret")
    out, hit = store.redact({"x": f"{TOKEN} and second-secret"})
    assert hit and out == {"x": "«secret:a» and «secret:b»"}


def test_store_redact_with_explicit_values(store):
    store.set("a", TOKEN)
    assert store.redact("x hunter22", {"h": "hunter22"}) == ("x «secret:h»", True)
