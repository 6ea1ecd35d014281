"""Signed skills: verified, unsigned, tampered, untrusted key, changed image, malformed."""

from __future__ import annotations

import base64
import json
import logging
import stat

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ec import SECP256R1, generate_private_key
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from talon_tui.engine.core.keys import key_id
from talon_tui.engine.core.paths import DataDir
from talon_tui.engine.errors import BadRequest
from talon_tui.engine.policy.models import Skill
from talon_tui.engine.runtime.skills import (
    load_trusted_keys,
    sign_skill,
    signed_skill,
    skill_payload,
    trust_public_key,
    verify_skill,
)

IMAGE = "registry.local/summarize@sha256:" + "c" * 64
MANIFEST = {"tools": ["http.fetch"], "description": "summarise a page", "limits": {"n": 3}}


@pytest.fixture
def trusted(tmp_path):
    return DataDir(tmp_path / "data").ensure().trusted_keys_dir


@pytest.fixture
def publisher(trusted):
    key = Ed25519PrivateKey.generate()
    trust_public_key(trusted, key.public_key(), "publisher")
    return key


def make(key, **over) -> Skill:
    s = signed_skill(key, "summarize", "1.0.0", IMAGE, MANIFEST)
    return s.model_copy(update=over)


def test_payload_is_canonical_and_type_tagged():
    p = skill_payload("summarize", "1.0.0", IMAGE, {"b": 1, "a": [2]})
    assert p == skill_payload("summarize", "1.0.0", IMAGE, {"a": [2], "b": 1})
    assert json.loads(p) == {
        "type": "talon.skill.v1",
        "name": "summarize",
        "version": "1.0.0",
        "image": IMAGE,
        "manifest": {"a": [2], "b": 1},
    }
    assert b" " not in p


@pytest.mark.parametrize(
    "args",
    [
        ("", "1", IMAGE, {}),
        ("n", "", IMAGE, {}),
        ("n", "1", "", {}),
        ("n", "1", IMAGE, ["not", "an", "object"]),
        ("n", "1", IMAGE, {"cpus": 1.5}),
        ("n", "1", IMAGE, {"big": 2**60}),
    ],
)
def test_payload_refuses_fields_without_canonical_form(args):
    with pytest.raises(BadRequest):
        skill_payload(*args)


def test_signature_format(publisher):
    sig = sign_skill(publisher, "summarize", "1.0.0", IMAGE, MANIFEST)
    assert "=" not in sig and "+" not in sig and "/" not in sig
    assert len(base64.urlsafe_b64decode(sig + "==")) == 64


def test_verified(trusted, publisher):
    s = make(publisher)
    assert s.key_id == key_id(publisher.public_key())
    assert verify_skill(s, trusted) == "verified"
    assert verify_skill(s.model_dump(), trusted) == "verified"
    # without a key_id every trusted key is tried
    assert verify_skill(s.model_copy(update={"key_id": None}), trusted) == "verified"


def test_key_id_is_sha256_of_raw_public_key(publisher):
    import hashlib

    raw = publisher.public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )
    assert key_id(publisher.public_key()) == "sha256:" + hashlib.sha256(raw).hexdigest()


def test_unsigned(trusted, publisher):
    assert verify_skill(make(publisher, signature=None, key_id=None), trusted) == "unsigned"
    assert verify_skill(make(publisher, signature=""), trusted) == "unsigned"


@pytest.mark.parametrize(
    "change",
    [
        {"manifest": {**MANIFEST, "tools": ["http.fetch", "shell.exec"]}},
        {"manifest": {}},
        {"image": "registry.local/summarize@sha256:" + "d" * 64},
        {"name": "summarise"},
        {"version": "1.0.1"},
    ],
)
def test_tampered_fields_are_bad(trusted, publisher, change):
    assert verify_skill(make(publisher, **change), trusted) == "bad"


def test_signed_by_untrusted_key_is_bad(trusted, publisher):
    stranger = Ed25519PrivateKey.generate()
    s = signed_skill(stranger, "summarize", "1.0.0", IMAGE, MANIFEST)
    assert verify_skill(s, trusted) == "bad"
    # claiming the trusted publisher's key_id does not help
    assert verify_skill(
        s.model_copy(update={"key_id": key_id(publisher.public_key())}), trusted
    ) == ("bad")
    assert verify_skill(s.model_copy(update={"key_id": None}), trusted) == "bad"


def test_key_id_naming_no_trusted_key_is_bad(trusted, publisher):
    assert verify_skill(make(publisher, key_id="sha256:" + "0" * 64), trusted) == "bad"


def test_no_trusted_keys_at_all_is_bad(tmp_path, publisher):
    assert verify_skill(make(publisher), tmp_path / "missing") == "bad"


@pytest.mark.parametrize("sig", ["!!!", "abc=", "AAAA", "A" * 86 + "==", "x"])
def test_malformed_signature_is_bad(trusted, publisher, sig):
    assert verify_skill(make(publisher, signature=sig), trusted) == "bad"


def test_malformed_skill_document_is_bad(trusted):
    assert verify_skill({"name": "x"}, trusted) == "bad"


def test_signature_bit_flip_is_bad(trusted, publisher):
    s = make(publisher)
    raw = bytearray(base64.urlsafe_b64decode(s.signature + "=="))
    raw[0] ^= 1
    flipped = base64.urlsafe_b64encode(bytes(raw)).rstrip(b"=").decode()
    assert verify_skill(make(publisher, signature=flipped), trusted) == "bad"


def test_trusted_dir_skips_non_ed25519_and_junk(trusted, publisher, caplog):
    ec = generate_private_key(SECP256R1()).public_key()
    (trusted / "ec.pub").write_bytes(
        ec.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    (trusted / "junk.pub").write_text("not a key")
    (trusted / "ignored.txt").write_text("whatever")
    with caplog.at_level(logging.WARNING):
        keys = load_trusted_keys(trusted)
    assert list(keys) == [key_id(publisher.public_key())]
    assert "ec.pub" in caplog.text and "junk.pub" in caplog.text
    assert verify_skill(make(publisher), trusted) == "verified"


def test_trust_public_key_writes_private_pem(trusted):
    key = Ed25519PrivateKey.generate().public_key()
    path = trust_public_key(trusted, key)
    assert path.parent == trusted and path.suffix == ".pub"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert key_id(key) in load_trusted_keys(trusted)
    with pytest.raises(BadRequest):
        trust_public_key(trusted, key, "../escape")
    with pytest.raises(TypeError):
        trust_public_key(trusted, Ed25519PrivateKey.generate())  # type: ignore[arg-type]
