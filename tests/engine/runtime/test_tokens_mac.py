"""In-process capability tokens (HMAC-SHA256 under a per-process TokenMacKey): the same
hostile tokens as the Ed25519 suite, each refused for its reason, plus what only a MAC key
has to answer (another process's key, algorithm confusion with EdDSA, the key never leaving
the process) and the engine really using it."""

from __future__ import annotations

import hashlib
import hmac
import json
import pickle
import secrets
import threading
import time

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from support.tokens import (
    CONS,
    IH,
    assert_edited_claims_refused,
    b64u,
    good_payload,
    issue,
    reason_of,
    unb64u,
    verify,
)

from talon_tui.engine.core.canon import intent_hash
from talon_tui.engine.errors import TokenInvalid
from talon_tui.engine.runtime.tokens import (
    TOKEN_TYPE,
    CapabilityIssuer,
    CapabilityVerifier,
    TokenMacKey,
)


@pytest.fixture
def secret() -> bytes:
    return secrets.token_bytes(32)


@pytest.fixture
def key(secret) -> TokenMacKey:
    return TokenMacKey(secret)


@pytest.fixture
def issuer(key) -> CapabilityIssuer:
    return CapabilityIssuer(key)


@pytest.fixture
def verifier(key) -> CapabilityVerifier:
    return CapabilityVerifier(key)


def compact(obj: dict) -> bytes:
    return json.dumps(obj, separators=(",", ":"), sort_keys=True).encode()


def raw_jwt(header: dict, payload: dict, sign, *, header_bytes: bytes | None = None) -> str:
    head = b64u(header_bytes if header_bytes is not None else compact(header))
    signing_input = (head + "." + b64u(json.dumps(payload).encode())).encode()
    return signing_input.decode() + "." + b64u(sign(signing_input))


HS = {"alg": "HS256", "typ": TOKEN_TYPE}


# --------------------------------------------------------------------------- happy path


def test_round_trip_claims_and_pyjwt_agrees_byte_for_byte(secret, issuer, verifier):
    t = issue(issuer)
    assert jwt.get_unverified_header(t.token) == HS
    c = verify(verifier, t.token)
    assert (c.sub, c.sid, c.tool, c.ih, c.jti) == ("agent:a", "sess_1", "file.read", IH, t.jti)
    assert c.cons == CONS and c.iat == c.nbf == t.exp - 60
    # the token is exactly PyJWT's HS256 encoding of the same claims under the same secret
    payload = json.loads(unb64u(t.token.split(".")[1]))
    assert jwt.encode(payload, secret, algorithm="HS256", headers={"typ": TOKEN_TYPE}) == t.token
    # and PyJWT verifies it with the secret (and nothing else)
    decoded = jwt.decode(t.token, secret, algorithms=["HS256"], audience="talon.broker")
    assert decoded["jti"] == t.jti


@pytest.mark.parametrize("size", [32, 64, 65, 200])
def test_mac_is_hmac_sha256(size):
    secret = secrets.token_bytes(size)
    key = TokenMacKey(secret)
    for data in (b"", b"a", b"x" * 63, b"y" * 64, b"z" * 1000):
        assert key.mac(data) == hmac.new(secret, data, hashlib.sha256).digest()


def test_mac_key_is_random_secret_and_stays_in_its_process(secret):
    a, b = TokenMacKey.generate(), TokenMacKey.generate()
    assert a.mac(b"x") != b.mac(b"x")
    key = TokenMacKey(secret)
    assert secret.hex() not in repr(key) and str(secret) not in repr(key)
    with pytest.raises(TypeError, match="never leaves"):
        pickle.dumps(key)
    for weak in (b"", b"short", "a" * 32):
        with pytest.raises(ValueError):
            TokenMacKey(weak)  # type: ignore[arg-type]


def test_key_types_are_checked(key):
    priv = Ed25519PrivateKey.generate()
    with pytest.raises(TypeError):
        CapabilityVerifier(priv)  # a verifier never holds a private key
    with pytest.raises(TypeError):
        CapabilityIssuer(b"\x00" * 32)  # raw bytes are not a key object
    with pytest.raises(TypeError):
        CapabilityVerifier(b"\x00" * 32)


# --------------------------------------------------------------------------- keys and algorithms


def test_token_of_another_process_key_refused(verifier):
    """Another engine process (or a previous run) has its own key: its tokens never verify."""
    other = CapabilityIssuer(TokenMacKey.generate())
    assert reason_of(verifier, issue(other).token) == "bad_signature"


def test_eddsa_token_refused_by_mac_verifier_and_mac_token_by_eddsa_verifier(key, verifier):
    ed = Ed25519PrivateKey.generate()
    assert reason_of(verifier, issue(CapabilityIssuer(ed)).token) == "bad_algorithm"
    ed_verifier = CapabilityVerifier(ed.public_key())
    assert reason_of(ed_verifier, issue(CapabilityIssuer(key)).token) == "bad_algorithm"


@pytest.mark.parametrize("alg", ["none", "HS384", "HS512", "EdDSA", "ES256", "hs256"])
def test_other_algorithms_refused(secret, verifier, alg):
    tok = raw_jwt(
        {"alg": alg, "typ": TOKEN_TYPE},
        good_payload(),
        lambda m: hmac.new(secret, m, hashlib.sha256).digest(),
    )
    assert reason_of(verifier, tok) == "bad_algorithm"


def test_alg_none_with_pyjwt_refused(verifier):
    tok = jwt.encode(good_payload(), None, algorithm="none", headers={"typ": TOKEN_TYPE})
    assert reason_of(verifier, tok) == "bad_algorithm"


@pytest.mark.parametrize("guess", [b"", b"\x00" * 32, b"talon.policy", b"secret"])
def test_mac_under_guessed_keys_refused(verifier, guess):
    tok = raw_jwt(HS, good_payload(), lambda m: hmac.new(guess, m, hashlib.sha256).digest())
    assert reason_of(verifier, tok) == "bad_signature"


def test_edited_claims_with_original_mac_refused(issuer, verifier):
    assert_edited_claims_refused(issuer, verifier)


def test_header_other_than_the_issuers_refused_even_when_mac_is_right(key, verifier):
    # a correctly MACed token whose header is spelled differently: not the issuer's header
    spaced = b'{"alg": "HS256", "typ": "' + TOKEN_TYPE.encode() + b'"}'
    assert reason_of(verifier, raw_jwt(HS, good_payload(), key.mac, header_bytes=spaced)) == (
        "bad_header"
    )
    for extra in ({"kid": "k1"}, {"jwk": {"kty": "oct"}}, {"b64": False, "crit": ["b64"]}):
        tok = raw_jwt({**HS, **extra}, good_payload(), key.mac)
        assert reason_of(verifier, tok) == "bad_header"


@pytest.mark.parametrize("typ", ["JWT", "at+jwt", "", None])
def test_wrong_type_refused(key, verifier, typ):
    header = {"alg": "HS256"} if typ is None else {"alg": "HS256", "typ": typ}
    assert reason_of(verifier, raw_jwt(header, good_payload(), key.mac)) == "bad_type"


def test_truncated_or_corrupted_mac_refused(issuer, verifier):
    t = issue(issuer)
    head, body, sig = t.token.split(".")
    assert reason_of(verifier, f"{head}.{body}.{sig[:-4]}") in ("bad_signature", "malformed")
    assert reason_of(verifier, f"{head}.{body}.") == "bad_signature"
    flipped = sig[:10] + ("A" if sig[10] != "A" else "B") + sig[11:]
    assert reason_of(verifier, f"{head}.{body}.{flipped}") == "bad_signature"
    assert reason_of(verifier, f"{head}.{body}.{sig[:-1]}é") == "malformed"


@pytest.mark.parametrize(
    "junk", ["", "abc", "a.b.c", "." * 3, "x" * 20_000, "e30.e30.e30", "a.b.c.d"]
)
def test_garbage_refused(verifier, junk):
    assert reason_of(verifier, junk) in ("malformed", "bad_algorithm")


def test_mac_right_but_payload_not_an_object_refused(key, verifier):
    head = b64u(compact(HS))
    for body in (b"[1,2]", b"not json", b'"s"'):
        signing_input = (head + "." + b64u(body)).encode()
        tok = signing_input.decode() + "." + b64u(key.mac(signing_input))
        assert reason_of(verifier, tok) == "malformed"


# --------------------------------------------------------------------------- time, audience, issuer


def test_expired_refused(key, verifier):
    old = CapabilityIssuer(key, clock=lambda: time.time() - 120)
    assert reason_of(verifier, issue(old).token) == "expired"


def test_expired_within_leeway_accepted_but_still_single_use(key, verifier):
    t = issue(CapabilityIssuer(key, clock=lambda: time.time() - 62))
    assert t.exp < time.time()
    verify(verifier, t.token)
    assert reason_of(verifier, t.token) == "replayed"


def test_issued_in_the_future_refused(key, verifier):
    future = CapabilityIssuer(key, clock=lambda: time.time() + 120)
    assert reason_of(verifier, issue(future).token) == "not_yet_valid"


def test_nbf_in_the_future_refused(key, verifier):
    tok = raw_jwt(HS, good_payload(nbf=int(time.time()) + 120), key.mac)
    assert reason_of(verifier, tok) == "not_yet_valid"


def test_min_iat_refuses_tokens_from_before_start(key):
    v = CapabilityVerifier(key, min_iat=int(time.time()) + 1)
    assert reason_of(v, issue(CapabilityIssuer(key)).token) == "issued_before_start"


def test_wrong_audience_and_issuer_refused(key, verifier):
    assert reason_of(verifier, issue(CapabilityIssuer(key, audience="x")).token) == (
        "wrong_audience"
    )
    tok = raw_jwt(HS, good_payload(aud=["talon.broker", "other"]), key.mac)
    assert reason_of(verifier, tok) == "wrong_audience"
    assert reason_of(verifier, issue(CapabilityIssuer(key, issuer="mallory")).token) == (
        "wrong_issuer"
    )


@pytest.mark.parametrize(
    "claim", ["exp", "iat", "nbf", "jti", "aud", "iss", "sid", "tool", "ih", "cons", "sub"]
)
def test_missing_claim_refused(key, verifier, claim):
    payload = good_payload()
    del payload[claim]
    assert reason_of(verifier, raw_jwt(HS, payload, key.mac)) == "missing_claim"


@pytest.mark.parametrize(
    "edit",
    [
        {"sid": 5},
        {"tool": ["file.read"]},
        {"cons": "x"},
        {"exp": 1e12},
        {"iat": True},
        {"nbf": "0"},
        {"ih": ""},
    ],
)
def test_claims_of_wrong_type_refused(key, verifier, edit):
    with pytest.raises(TokenInvalid):
        verifier.verify(
            raw_jwt(HS, good_payload(**edit), key.mac),
            tool="file.read",
            intent_hash=IH,
            session_id="sess_1",
        )


# --------------------------------------------------------------------------- binding, single use


def test_binding_checked_without_burning_the_token(issuer, verifier):
    t = issue(issuer)
    assert reason_of(verifier, t.token, tool="file.write") == "wrong_tool"
    assert reason_of(verifier, t.token, session_id="sess_x") == "wrong_session"
    other = intent_hash("file.read", {"path": "work/secret.txt"})
    assert reason_of(verifier, t.token, intent_hash=other) == "intent_mismatch"
    assert verify(verifier, t.token).jti == t.jti
    assert reason_of(verifier, t.token) == "replayed"


def test_replay_from_many_threads_exactly_one_succeeds(issuer, verifier):
    t = issue(issuer)
    wins, reasons = [], []
    barrier = threading.Barrier(16)

    def go():
        barrier.wait()
        try:
            wins.append(verify(verifier, t.token))
        except TokenInvalid as exc:
            reasons.append(exc.details["reason"])

    threads = [threading.Thread(target=go) for _ in range(16)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert len(wins) == 1 and reasons == ["replayed"] * 15


def test_revocation_per_jti_and_per_session(key, issuer, verifier):
    t = issue(issuer)
    verifier.revocations.revoke_jti(t.jti, t.exp)
    assert reason_of(verifier, t.token) == "revoked"
    old = issue(CapabilityIssuer(key, clock=lambda: time.time() - 5))
    verifier.revocations.revoke_session("sess_1")
    assert reason_of(verifier, old.token) == "revoked"


# --------------------------------------------------------------------------- the engine


def test_engine_store_uses_a_fresh_mac_key_per_open(tmp_path):
    """The engine's tokens are MACed under a key of this process only: a token of one open
    store never verifies in another (a restarted engine refuses the old run's tokens)."""
    from talon_tui.engine.core.paths import DataDir
    from talon_tui.engine.runtime.store import EngineStore

    stores = []
    for name in ("a", "b"):
        store = EngineStore(DataDir(tmp_path / name))
        store.open(10)
        stores.append(store)
    try:
        a, b = stores
        t = issue(a.issuer)
        assert jwt.get_unverified_header(t.token)["alg"] == "HS256"
        assert reason_of(b.verifier, t.token) == "bad_signature"
        assert verify(a.verifier, t.token).jti == t.jti
        assert not list((tmp_path / "a" / "keys").glob("policy*"))
    finally:
        for store in stores:
            store.close()
