"""Helpers of the capability token suites (Ed25519 in test_tokens.py, in-process MAC in
test_tokens_mac.py): one standard intent, issuing and presenting it, reading why a token was
refused, and hand-made JWT pieces."""

from __future__ import annotations

import base64
import json
import time

import pytest

from talon_tui.engine.core.canon import intent_hash
from talon_tui.engine.errors import ErrorCode, TokenInvalid
from talon_tui.engine.runtime.tokens import CapabilityIssuer, CapabilityVerifier, Claims

PARAMS = {"path": "work/a.txt"}
IH = intent_hash("file.read", PARAMS)
CONS = {"roots": ["work"], "max_bytes": 1024, "cpus": 1.5}


def issue(issuer: CapabilityIssuer, **kw):
    args = dict(
        session_id="sess_1",
        subject="agent:a",
        tool="file.read",
        constraints=CONS,
        intent_hash=IH,
        ttl_seconds=60,
    )
    args.update(kw)
    return issuer.issue(**args)


def verify(verifier: CapabilityVerifier, token: str, **kw) -> Claims:
    args = dict(tool="file.read", intent_hash=IH, session_id="sess_1")
    args.update(kw)
    return verifier.verify(token, **args)


def reason_of(verifier: CapabilityVerifier, token: str, **kw) -> str:
    """The `reason` a refused token names (it must be refused, as TOKEN_INVALID)."""
    with pytest.raises(TokenInvalid) as info:
        verify(verifier, token, **kw)
    assert info.value.code == ErrorCode.TOKEN_INVALID
    assert info.value.message.startswith("capability token refused: ")
    return info.value.details["reason"]


def b64u(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64u(part: str) -> bytes:
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


def good_payload(**over) -> dict:
    """Claims that pass every check (now), with `over` replacing some."""
    now = int(time.time())
    p = {
        "iss": "talon.policy",
        "aud": "talon.broker",
        "sub": "agent:a",
        "sid": "sess_1",
        "tool": "file.read",
        "cons": CONS,
        "ih": IH,
        "jti": "j" * 32,
        "iat": now,
        "nbf": now,
        "exp": now + 60,
    }
    p.update(over)
    return p


def assert_edited_claims_refused(issuer: CapabilityIssuer, verifier: CapabilityVerifier) -> None:
    """Claims edited under the token's original signature or MAC (another tool, wider
    constraints, another session, a later expiry): each refused as `bad_signature`, and the
    genuine token still verifies afterwards."""
    t = issue(issuer)
    head, body, sig = t.token.split(".")
    for edit in (
        {"tool": "shell.exec"},
        {"cons": {"roots": ["/"], "max_bytes": 1 << 30}},
        {"sid": "sess_2"},
        {"exp": int(time.time()) + 3600},
    ):
        payload = json.loads(unb64u(body))
        payload.update(edit)
        forged = ".".join([head, b64u(json.dumps(payload).encode()), sig])
        kw = {}
        if "tool" in edit:
            kw["tool"] = edit["tool"]
        if "sid" in edit:
            kw["session_id"] = edit["sid"]
        assert reason_of(verifier, forged, **kw) == "bad_signature"
    assert verify(verifier, t.token).jti == t.jti
