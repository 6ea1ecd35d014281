"""The broker's PyJWT decoder uses a faster base64url segment check; it must refuse exactly
what PyJWT's own check refuses, with the same error, and decode the same bytes otherwise."""

from __future__ import annotations

import base64
import random

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from talon_tui.engine.errors import TokenInvalid
from talon_tui.engine.runtime.tokens import (
    CapabilityIssuer,
    CapabilityVerifier,
    FastPyJWS,
    decode_base64url_segment,
    make_pyjwt,
)

reference = jwt.PyJWS._decode_base64url_segment


def outcome(fn, segment: bytes):
    try:
        return ("ok", fn(segment, "header"))
    except jwt.DecodeError as exc:
        return ("err", str(exc))


SEGMENTS = [
    b"",
    b"=",
    b"==",
    b"===",
    b"A",
    b"AA",
    b"AA=",
    b"AA==",
    b"AAA",
    b"AAA=",
    b"AAAA",
    b"AAAA====",
    b"AB",  # non-canonical trailing bits
    b"AAB",
    b"eyJhbGciOiJFZERTQSJ9",
    b"eyJhbGciOiJFZERTQSJ9=",
    b"ab+c",
    b"ab/c",
    b"ab c",
    b"ab\nc",
    b"ab.c",
    b"!!!!",
    b"ab-_",
    b"a=b=",
    b"\xff\xfe",
    b"abc\x00",
]


@pytest.mark.parametrize("segment", SEGMENTS)
def test_same_as_pyjwt(segment: bytes) -> None:
    assert outcome(decode_base64url_segment, segment) == outcome(reference, segment)


def test_random_segments_same_as_pyjwt() -> None:
    rng = random.Random(7)
    alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_=+/ .!\n\x00\xff"
    for _ in range(20_000):
        if rng.random() < 0.5:
            raw = rng.randbytes(rng.randrange(12))
            seg = base64.urlsafe_b64encode(raw).rstrip(b"=" if rng.random() < 0.7 else b"")
            if seg and rng.random() < 0.5:
                i = rng.randrange(len(seg))
                seg = seg[:i] + bytes([rng.choice(alphabet)]) + seg[i + 1 :]
        else:
            seg = bytes(rng.choice(alphabet) for _ in range(rng.randrange(10)))
        assert outcome(decode_base64url_segment, seg) == outcome(reference, seg), seg


def test_decoder_uses_fast_jws_pinned_to_eddsa() -> None:
    decoder = make_pyjwt()
    assert isinstance(decoder._jws, FastPyJWS)
    assert decoder._jws.get_algorithm_by_name("EdDSA") is not None
    with pytest.raises(NotImplementedError):
        decoder._jws.get_algorithm_by_name("HS256")


def test_damaged_tokens_still_refused() -> None:
    key = Ed25519PrivateKey.generate()
    issued = CapabilityIssuer(key).issue(
        session_id="ses_1",
        subject="agent:x",
        tool="file.read",
        constraints={},
        intent_hash="sha256:" + "0" * 64,
    )
    verifier = CapabilityVerifier(key.public_key())
    header, payload, sig = issued.token.split(".")
    for bad in (
        f"{header}.{payload}.{sig[:-1]}!",
        f"{header}.{payload}=.{sig}",
        f"{header}.{payload} .{sig}",
        f"{header}.{payload}.{sig}A",
        f"{header}.{payload[:-1]}.{sig}",
    ):
        with pytest.raises(TokenInvalid):
            verifier.verify(
                bad, tool="file.read", intent_hash="sha256:" + "0" * 64, session_id="ses_1"
            )
    claims = verifier.verify(
        issued.token, tool="file.read", intent_hash="sha256:" + "0" * 64, session_id="ses_1"
    )
    assert claims.jti == issued.jti


def test_revocations_expire_in_order_and_re_revoking_wins() -> None:
    from talon_tui.engine.runtime.tokens import MAX_LEEWAY_SECONDS, Claims, RevocationList

    now = [1000.0]
    rl = RevocationList(clock=lambda: now[0])

    def claims(jti: str) -> Claims:
        return Claims("i", "a", "s", "ses", "t", {}, "ih", jti, 1000, 1000, 1060)

    rl.revoke_jti("a", exp=1010)
    rl.revoke_jti("b", exp=1020)
    rl.revoke_jti("c", exp=1010)
    rl.revoke_jti("c")  # again, now forever
    rl.revoke_jti("d", exp=1030)
    rl.revoke_jti("d", exp=1005)  # again, shorter: the newest revocation counts
    assert all(rl.is_revoked(claims(j)) == "jti" for j in "abcd")
    now[0] = 1005 + MAX_LEEWAY_SECONDS + 1
    assert rl.is_revoked(claims("d")) is None
    assert rl.is_revoked(claims("a")) == "jti"
    now[0] = 1010 + MAX_LEEWAY_SECONDS + 1
    assert rl.is_revoked(claims("a")) is None
    assert rl.is_revoked(claims("b")) == "jti"
    assert rl.is_revoked(claims("c")) == "jti"
    now[0] = 10**9
    assert [rl.is_revoked(claims(j)) for j in "abcd"] == [None, None, "jti", None]
    assert set(rl._jtis) == {"c"}
