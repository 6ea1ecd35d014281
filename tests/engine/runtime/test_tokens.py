"""Capability tokens: issue/verify round trip and hostile tokens (each refused for its reason)."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from support.tokens import (
    CONS,
    IH,
    assert_edited_claims_refused,
    b64u,
    good_payload,
    issue,
    reason_of,
    verify,
)

from talon_tui.engine.core.canon import intent_hash
from talon_tui.engine.errors import TokenInvalid
from talon_tui.engine.runtime.tokens import (
    TOKEN_TYPE,
    CapabilityIssuer,
    CapabilityVerifier,
    Claims,
    JtiCache,
    ReplayCacheFull,
    RevocationList,
    token_sha256,
)


@pytest.fixture
def key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


@pytest.fixture
def issuer(key) -> CapabilityIssuer:
    return CapabilityIssuer(key)


@pytest.fixture
def verifier(key) -> CapabilityVerifier:
    return CapabilityVerifier(key.public_key())


def raw_jwt(header: dict, payload: dict, sign) -> str:
    signing_input = (
        b64u(json.dumps(header).encode()) + "." + b64u(json.dumps(payload).encode())
    ).encode()
    return signing_input.decode() + "." + b64u(sign(signing_input))


# --------------------------------------------------------------------------- happy path


def test_round_trip_claims(issuer, verifier):
    before = int(time.time())
    t = issue(issuer)
    assert t.sha256 == "sha256:" + hashlib.sha256(t.token.encode()).hexdigest()
    assert t.sha256 == token_sha256(t.token)
    assert before + 60 <= t.exp <= int(time.time()) + 60
    header = jwt.get_unverified_header(t.token)
    assert header == {"alg": "EdDSA", "typ": TOKEN_TYPE}
    c = verify(verifier, t.token)
    assert c.iss == "talon.policy" and c.aud == "talon.broker"
    assert (c.sub, c.sid, c.tool, c.ih, c.jti) == ("agent:a", "sess_1", "file.read", IH, t.jti)
    assert c.cons == CONS and c.cons["cpus"] == 1.5
    assert c.iat == c.nbf == t.exp - 60 and c.exp == t.exp


def test_each_token_has_its_own_jti(issuer):
    assert len({issue(issuer).jti for _ in range(50)}) == 50


def test_issue_refuses_bad_ttl_and_blank_fields(issuer):
    with pytest.raises(ValueError, match="ttl_seconds"):
        issue(issuer, ttl_seconds=0)
    with pytest.raises(ValueError, match="ttl_seconds"):
        issue(issuer, ttl_seconds=3601)
    with pytest.raises(ValueError, match="session_id"):
        issue(issuer, session_id="")


def test_key_types_and_leeway_are_checked(key):
    with pytest.raises(TypeError):
        CapabilityIssuer(key.public_key())
    with pytest.raises(TypeError):
        CapabilityVerifier(key)
    with pytest.raises(ValueError, match="leeway"):
        CapabilityVerifier(key.public_key(), leeway=6)


# --------------------------------------------------------------------------- algorithm attacks


def test_alg_none_refused(verifier):
    tok = raw_jwt({"alg": "none", "typ": TOKEN_TYPE}, good_payload(), lambda _: b"")
    assert reason_of(verifier, tok) == "bad_algorithm"
    assert reason_of(verifier, tok.rsplit(".", 1)[0] + ".") == "bad_algorithm"


def test_alg_none_with_pyjwt(verifier):
    tok = jwt.encode(good_payload(), None, algorithm="none", headers={"typ": TOKEN_TYPE})
    assert reason_of(verifier, tok) == "bad_algorithm"


@pytest.mark.parametrize("form", ["pem", "raw", "der"])
def test_hs256_signed_with_public_key_bytes_refused(key, verifier, form):
    pub = key.public_key()
    secret = {
        "pem": pub.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        ),
        "raw": pub.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw),
        "der": pub.public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        ),
    }[form]
    tok = raw_jwt(
        {"alg": "HS256", "typ": TOKEN_TYPE},
        good_payload(),
        lambda m: hmac.new(secret, m, hashlib.sha256).digest(),
    )
    assert reason_of(verifier, tok) == "bad_algorithm"


def test_header_claims_eddsa_but_other_alg_in_list_refused(key, verifier):
    # RS/ES algorithms are never accepted, whatever the key.
    tok = raw_jwt({"alg": "ES256", "typ": TOKEN_TYPE}, good_payload(), lambda m: b"x" * 64)
    assert reason_of(verifier, tok) == "bad_algorithm"


def test_signed_by_another_ed25519_key_refused(verifier):
    other = CapabilityIssuer(Ed25519PrivateKey.generate())
    assert reason_of(verifier, issue(other).token) == "bad_signature"


def test_edited_claims_with_original_signature_refused(issuer, verifier):
    assert_edited_claims_refused(issuer, verifier)


def test_edited_header_with_original_signature_refused(issuer, verifier):
    t = issue(issuer)
    _head, body, sig = t.token.split(".")
    head = b64u(json.dumps({"alg": "EdDSA", "typ": TOKEN_TYPE, "x": 1}).encode())
    assert reason_of(verifier, ".".join([head, body, sig])) == "bad_header"
    head = b64u(json.dumps({"typ": TOKEN_TYPE, "alg": "EdDSA"}).encode())
    assert reason_of(verifier, ".".join([head, body, sig])) == "bad_signature"


def test_truncated_or_corrupted_signature_refused(issuer, verifier):
    t = issue(issuer)
    head, body, sig = t.token.split(".")
    assert reason_of(verifier, f"{head}.{body}.{sig[:-4]}") in ("bad_signature", "malformed")
    flipped = sig[:10] + ("A" if sig[10] != "A" else "B") + sig[11:]
    assert reason_of(verifier, f"{head}.{body}.{flipped}") == "bad_signature"


@pytest.mark.parametrize("junk", ["", "abc", "a.b.c", "." * 3, "x" * 20_000, "e30.e30.e30"])
def test_garbage_refused(verifier, junk):
    assert reason_of(verifier, junk) in ("malformed", "bad_algorithm")


# --------------------------------------------------------------------------- time


def test_expired_refused(key, verifier):
    old = CapabilityIssuer(key, clock=lambda: time.time() - 120)
    assert reason_of(verifier, issue(old).token) == "expired"


def test_expired_within_leeway_accepted_but_still_single_use(key, verifier):
    almost = CapabilityIssuer(key, clock=lambda: time.time() - 62)
    t = issue(almost)
    assert t.exp < time.time()
    verify(verifier, t.token)
    assert reason_of(verifier, t.token) == "replayed"


def test_issued_in_the_future_refused(key, verifier):
    future = CapabilityIssuer(key, clock=lambda: time.time() + 120)
    assert reason_of(verifier, issue(future).token) == "not_yet_valid"


def test_nbf_in_the_future_refused(key, verifier):
    tok = jwt.encode(
        good_payload(nbf=int(time.time()) + 120),
        key,
        algorithm="EdDSA",
        headers={"typ": TOKEN_TYPE},
    )
    assert reason_of(verifier, tok) == "not_yet_valid"


def test_min_iat_refuses_tokens_from_before_start(key):
    v = CapabilityVerifier(key.public_key(), min_iat=int(time.time()) + 1)
    assert reason_of(v, issue(CapabilityIssuer(key)).token) == "issued_before_start"


# --------------------------------------------------------------------------- audience, issuer, type


def test_wrong_audience_refused(key, verifier):
    assert reason_of(verifier, issue(CapabilityIssuer(key, audience="other")).token) == (
        "wrong_audience"
    )


def test_audience_list_refused(key, verifier):
    tok = jwt.encode(
        good_payload(aud=["talon.broker", "other"]),
        key,
        algorithm="EdDSA",
        headers={"typ": TOKEN_TYPE},
    )
    assert reason_of(verifier, tok) == "wrong_audience"


def test_wrong_issuer_refused(key, verifier):
    assert reason_of(verifier, issue(CapabilityIssuer(key, issuer="mallory")).token) == (
        "wrong_issuer"
    )


@pytest.mark.parametrize("typ", ["JWT", "at+jwt", "", None])
def test_wrong_type_refused(key, verifier, typ):
    headers = {"typ": typ} if typ is not None else None
    tok = jwt.encode(good_payload(), key, algorithm="EdDSA", headers=headers)
    if typ is None:
        # PyJWT adds typ JWT by default; drop it entirely with a hand-made token
        tok = raw_jwt({"alg": "EdDSA"}, good_payload(), key.sign)
    assert reason_of(verifier, tok) == "bad_type"


@pytest.mark.parametrize(
    "extra", [{"kid": "k1"}, {"jwk": {"kty": "OKP"}}, {"b64": False, "crit": ["b64"]}]
)
def test_unexpected_header_fields_refused(key, verifier, extra):
    tok = raw_jwt({"alg": "EdDSA", "typ": TOKEN_TYPE, **extra}, good_payload(), key.sign)
    assert reason_of(verifier, tok) == "bad_header"


# --------------------------------------------------------------------------- binding


def test_other_session_refused(issuer, verifier):
    t = issue(issuer)
    assert reason_of(verifier, t.token, session_id="sess_2") == "wrong_session"


def test_other_tool_refused(issuer, verifier):
    t = issue(issuer)
    assert reason_of(verifier, t.token, tool="file.write") == "wrong_tool"


def test_changed_params_refused(issuer, verifier):
    t = issue(issuer)
    other = intent_hash("file.read", {"path": "work/secret.txt"})
    assert reason_of(verifier, t.token, intent_hash=other) == "intent_mismatch"


def test_wrong_presentation_does_not_burn_the_token(issuer, verifier):
    t = issue(issuer)
    assert reason_of(verifier, t.token, tool="file.write") == "wrong_tool"
    assert reason_of(verifier, t.token, session_id="sess_x") == "wrong_session"
    assert verify(verifier, t.token).jti == t.jti
    assert reason_of(verifier, t.token) == "replayed"


@pytest.mark.parametrize(
    "claim", ["exp", "iat", "nbf", "jti", "aud", "iss", "sid", "tool", "ih", "cons", "sub"]
)
def test_missing_claim_refused(key, verifier, claim):
    payload = good_payload()
    del payload[claim]
    tok = jwt.encode(payload, key, algorithm="EdDSA", headers={"typ": TOKEN_TYPE})
    assert reason_of(verifier, tok) == "missing_claim"


@pytest.mark.parametrize(
    "edit", [{"sid": 5}, {"tool": ["file.read"]}, {"cons": "x"}, {"exp": 1e12}, {"ih": ""}]
)
def test_claims_of_wrong_type_refused(key, verifier, edit):
    tok = jwt.encode(good_payload(**edit), key, algorithm="EdDSA", headers={"typ": TOKEN_TYPE})
    with pytest.raises(TokenInvalid):
        verifier.verify(
            tok,
            tool="file.read",
            intent_hash=IH,
            session_id=edit.get("sid", "sess_1") if isinstance(edit.get("sid"), str) else "5",
        )


# --------------------------------------------------------------------------- single use


def test_replay_in_sequence_refused(issuer, verifier):
    t = issue(issuer)
    verify(verifier, t.token)
    assert reason_of(verifier, t.token) == "replayed"
    assert reason_of(verifier, t.token) == "replayed"


def test_replay_from_many_threads_exactly_one_succeeds(issuer, verifier):
    t = issue(issuer)
    n = 8
    barrier = threading.Barrier(n)
    ok: list[str] = []
    refused: list[str] = []
    lock = threading.Lock()

    def attempt() -> None:
        barrier.wait()
        try:
            c = verify(verifier, t.token)
        except TokenInvalid as exc:
            with lock:
                refused.append(exc.details["reason"])
        else:
            with lock:
                ok.append(c.jti)

    threads = [threading.Thread(target=attempt) for _ in range(n)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert ok == [t.jti]
    assert refused == ["replayed"] * (n - 1)


def test_two_verifiers_sharing_a_cache_share_single_use(key, issuer):
    cache = JtiCache()
    a = CapabilityVerifier(key.public_key(), replay_cache=cache)
    b = CapabilityVerifier(key.public_key(), replay_cache=cache)
    t = issue(issuer)
    verify(a, t.token)
    assert reason_of(b, t.token) == "replayed"


# --------------------------------------------------------------------------- revocation


def test_revoked_jti_refused(issuer, verifier):
    t = issue(issuer)
    other = issue(issuer)
    verifier.revocations.revoke_jti(t.jti, t.exp)
    assert reason_of(verifier, t.token) == "revoked"
    assert verify(verifier, other.token).jti == other.jti


def test_revoked_session_refuses_earlier_tokens_only(key):
    now = [1_000_000.0]
    revs = RevocationList(clock=lambda: now[0])
    v = CapabilityVerifier(key.public_key(), revocations=revs)
    real = time.time()
    early = issue(CapabilityIssuer(key, clock=lambda: real - 3))
    other_session = issue(CapabilityIssuer(key, clock=lambda: real - 3), session_id="sess_2")
    revs.revoke_session("sess_1", at=real - 1)
    late = issue(CapabilityIssuer(key, clock=lambda: real))
    assert reason_of(v, early.token) == "revoked"
    assert verify(v, late.token).jti == late.jti
    assert verify(v, other_session.token, session_id="sess_2").sid == "sess_2"


def test_session_revocation_catches_token_issued_in_same_second(key):
    real = time.time()
    revs = RevocationList()
    v = CapabilityVerifier(key.public_key(), revocations=revs)
    t = issue(CapabilityIssuer(key, clock=lambda: real))
    revs.revoke_session("sess_1", at=real + 0.001)
    assert reason_of(v, t.token) == "revoked"


def test_revocation_list_forgets_expired_jtis():
    now = [100.0]
    revs = RevocationList(clock=lambda: now[0])
    revs.revoke_jti("a", exp=110)
    claims = Claims("i", "a", "s", "sid", "t", {}, "ih", "a", 100, 100, 110)
    assert revs.is_revoked(claims) == "jti"
    now[0] = 200.0
    assert revs.is_revoked(claims) is None
    assert revs._jtis == {}


# --------------------------------------------------------------------------- replay cache


def test_jti_cache_prunes_expired_entries():
    now = [0.0]
    cache = JtiCache(clock=lambda: now[0])
    for i in range(100):
        assert cache.consume(f"j{i}", expires_at=10 + i)
    assert len(cache) == 100
    now[0] = 60.0
    assert len(cache) == 50
    assert "j10" not in cache and "j60" in cache
    now[0] = 1000.0
    assert len(cache) == 0
    assert cache._heap == []


def test_jti_cache_refuses_when_full_then_recovers():
    now = [0.0]
    cache = JtiCache(max_entries=2, clock=lambda: now[0])
    assert cache.consume("a", 10) and cache.consume("b", 20)
    with pytest.raises(ReplayCacheFull) as info:
        cache.consume("c", 30)
    assert info.value.details["reason"] == "replay_cache_full"
    assert not cache.consume("a", 10)
    now[0] = 15.0
    assert cache.consume("c", 30)
    assert not cache.consume("b", 20)


def test_revocation_racing_with_verify_is_honoured(key, issuer):
    t = issue(issuer)

    class RevokeOnConsume(JtiCache):
        def consume(self, jti, expires_at):
            revs.revoke_jti(jti, t.exp)  # lands between the checks and the consumption
            return super().consume(jti, expires_at)

    revs = RevocationList()
    v = CapabilityVerifier(key.public_key(), replay_cache=RevokeOnConsume(), revocations=revs)
    assert reason_of(v, t.token) == "revoked"
    assert reason_of(v, t.token) == "revoked"
