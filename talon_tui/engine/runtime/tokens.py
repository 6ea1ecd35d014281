"""Capability tokens (DESIGN section 4): short-lived, single-use, scoped JWTs.

The policy engine issues one token per allowed intent and the broker verifies every token
here, in one place. A token that crosses a process boundary is signed with Ed25519 (the issuer
holds the private key, the verifier only the public key); the engine's own tokens, which never
leave its process, carry an HMAC-SHA256 under a random per-process `TokenMacKey` instead
(SECURITY.md, "In-process token MAC"). The algorithm is pinned by the key the verifier holds:

1. size and shape, header (`alg` EdDSA or HS256 as pinned, `typ` talon-cap+jwt, nothing else);
2. signature or MAC, then `exp`/`nbf`/`iat` (leeway at most 5 s),
   `aud`/`iss`, required claims and their types;
3. binding: `sid`, `tool` and `ih` must equal what is being executed;
4. revocation, per jti and per session;
5. last, an atomic check-and-remember of the `jti` until `exp` + leeway.

Order decision: the jti is consumed only after every other check has passed. A token presented
with the wrong tool, session or intent is therefore refused without being burnt: the failed
presentation executed nothing, and the token still only works for its one exact intent. A
replay can never succeed twice, because the consuming step is a single locked
check-and-insert, and entries stay until the token could no longer pass the `exp` check.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import heapq
import hmac
import json
import math
import re
import secrets
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import jwt
import jwt.api_jws
import orjson
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from ..core.canon import b64url_encode, sha256_tag, token_header, token_payload
from ..errors import TokenInvalid
from ..policy.models import MAX_TTL_SECONDS

ALGORITHM = "EdDSA"
#: the in-process tokens' algorithm (HMAC-SHA256 under a TokenMacKey)
MAC_ALGORITHM = "HS256"
MAC_KEY_BYTES = 32
TOKEN_TYPE = "talon-cap+jwt"
ISSUER = "talon.policy"
AUDIENCE = "talon.broker"
DEFAULT_TTL_SECONDS = 60
MAX_LEEWAY_SECONDS = 5
MAX_TOKEN_CHARS = 16_384
REQUIRED_CLAIMS = ("exp", "iat", "nbf", "jti", "aud", "iss")
_ALLOWED_HEADER_FIELDS = frozenset({"alg", "typ"})
#: what PyJWT checks on decode, fixed once (merging option dicts per call showed in profiles)
_DECODE_OPTIONS: dict[str, Any] = {
    "require": list(REQUIRED_CLAIMS),
    "verify_signature": True,
    "verify_exp": True,
    "verify_nbf": True,
    "verify_iat": True,
    "verify_aud": True,
    "verify_iss": True,
    "strict_aud": True,
}
_BASE64URL_RE = re.compile(rb"[A-Za-z0-9_-]*")


def _b64url(data: bytes) -> bytes:
    return b64url_encode(data).encode("ascii")


#: the protected header PyJWT writes for `headers={"typ": TOKEN_TYPE}` (sorted keys, compact)
_HEADER_SEGMENT = _b64url(token_header({"alg": ALGORITHM, "typ": TOKEN_TYPE}))
#: the one header an in-process (MAC) token may carry, byte for byte
_MAC_HEADER_SEGMENT = _b64url(token_header({"alg": MAC_ALGORITHM, "typ": TOKEN_TYPE}))
_MAC_HEADER_TEXT = _MAC_HEADER_SEGMENT.decode("ascii")

Clock = Callable[[], float]


def token_sha256(token: str) -> str:
    """What the audit log records instead of the token: `"sha256:" + hex`."""
    return sha256_tag(token.encode("ascii"))


class TokenMacKey:
    """The key of the engine's in-process capability tokens: 32 random bytes made when the
    process starts, never written, logged or sent anywhere. Whoever holds it can both issue
    and verify, so it is used only where issuer and verifier share one address space (where
    an Ed25519 private key would sit in the same memory as its public half anyway)."""

    __slots__ = ("_inner", "_outer")

    def __init__(self, secret: bytes) -> None:
        if not isinstance(secret, bytes) or len(secret) < MAC_KEY_BYTES:
            raise ValueError(f"a token MAC key needs at least {MAC_KEY_BYTES} random bytes")
        # RFC 2104 with both padded keys hashed once: each MAC copies two sha256 states
        # (a third of `hmac.digest`'s cost, which sets up OpenSSL's HMAC on every call)
        block = hashlib.sha256().block_size
        if len(secret) > block:
            secret = hashlib.sha256(secret).digest()
        padded = secret.ljust(block, b"\0")
        self._inner = hashlib.sha256(bytes(b ^ 0x36 for b in padded))
        self._outer = hashlib.sha256(bytes(b ^ 0x5C for b in padded))

    @classmethod
    def generate(cls) -> TokenMacKey:
        return cls(secrets.token_bytes(MAC_KEY_BYTES))

    def mac(self, data: bytes) -> bytes:
        """HMAC-SHA256 of `data`."""
        inner = self._inner.copy()
        inner.update(data)
        outer = self._outer.copy()
        outer.update(inner.digest())
        return outer.digest()

    def __repr__(self) -> str:
        return "TokenMacKey(<secret>)"

    def __reduce__(self) -> Any:
        raise TypeError("a TokenMacKey never leaves its process")


@dataclass(frozen=True)
class IssuedToken:
    token: str
    jti: str
    exp: int
    sha256: str


@dataclass(frozen=True)
class Claims:
    """The verified claims of a capability token."""

    iss: str
    aud: str
    sub: str
    sid: str
    tool: str
    cons: dict[str, Any]
    ih: str
    jti: str
    iat: int
    nbf: int
    exp: int


def _reject(reason: str, message: str, **details: Any) -> TokenInvalid:
    return TokenInvalid(
        f"capability token refused: {message}", details={"reason": reason, **details}
    )


# --------------------------------------------------------------------------- PyJWT, faster


def decode_base64url_segment(segment: bytes, name: str) -> bytes:
    """PyJWS's strict base64url segment decoder, with the same checks in the same order, but
    the alphabet check is one regex match instead of a Python generator over every byte (about
    610 iterations per token, the largest PyJWT cost in the broker's profile). Anything the
    original refuses is refused here with the same error (tests compare the two)."""
    padding = 0
    stripped = segment
    while stripped.endswith(b"="):
        stripped = stripped[:-1]
        padding += 1
        if padding > 2:
            raise jwt.DecodeError(f"Invalid {name} padding")
    if padding and len(segment) % 4 != 0:
        raise jwt.DecodeError(f"Invalid {name} padding")
    if len(stripped) % 4 == 1 or _BASE64URL_RE.fullmatch(stripped) is None:
        raise jwt.DecodeError(f"Invalid {name} padding")
    try:
        decoded = base64.urlsafe_b64decode(stripped + b"=" * (-len(stripped) % 4))
    except (TypeError, binascii.Error) as err:
        raise jwt.DecodeError(f"Invalid {name} padding") from err
    if base64.urlsafe_b64encode(decoded).replace(b"=", b"") != stripped:
        raise jwt.DecodeError(f"Invalid {name} padding")
    return decoded


class FastPyJWS(jwt.PyJWS):
    """PyJWS with the base64url segment check above; everything else is PyJWT's own. If a
    future PyJWT renames the hook, this override is simply not used (slower, equally strict)."""

    _decode_base64url_segment = staticmethod(decode_base64url_segment)


def make_pyjwt() -> jwt.PyJWT:
    """A PyJWT decoder with our options fixed and the faster JWS underneath."""
    decoder = jwt.PyJWT(options=_DECODE_OPTIONS)  # type: ignore[arg-type]
    if hasattr(jwt.api_jws.PyJWS, "_decode_base64url_segment") and hasattr(decoder, "_jws"):
        decoder._jws = FastPyJWS(
            algorithms=[ALGORITHM],
            options=decoder._get_sig_options(),
        )
    return decoder


# --------------------------------------------------------------------------- issuing


class CapabilityIssuer:
    """Signs capability tokens with an Ed25519 private key (tokens that leave the process) or
    MACs them with the process's TokenMacKey (tokens that never do)."""

    def __init__(
        self,
        private_key: Ed25519PrivateKey | TokenMacKey,
        *,
        issuer: str = ISSUER,
        audience: str = AUDIENCE,
        clock: Clock = time.time,
    ) -> None:
        self._sign: Callable[[bytes], bytes]
        if isinstance(private_key, TokenMacKey):
            self._header = _MAC_HEADER_SEGMENT
            self._sign = private_key.mac
        elif isinstance(private_key, Ed25519PrivateKey):
            self._header = _HEADER_SEGMENT
            self._sign = private_key.sign
        else:
            raise TypeError("CapabilityIssuer needs an Ed25519 private key or a TokenMacKey")
        self._issuer = issuer
        self._audience = audience
        self._clock = clock

    def issue(
        self,
        *,
        session_id: str,
        subject: str,
        tool: str,
        constraints: Mapping[str, Any] | None,
        intent_hash: str,
        ttl_seconds: int = DEFAULT_TTL_SECONDS,
    ) -> IssuedToken:
        """A token for exactly one intent (`intent_hash`) of `tool` in `session_id`."""
        if isinstance(ttl_seconds, bool) or not isinstance(ttl_seconds, int):
            raise ValueError("ttl_seconds must be an integer number of seconds")
        if not 1 <= ttl_seconds <= MAX_TTL_SECONDS:
            raise ValueError(f"ttl_seconds must be between 1 and {MAX_TTL_SECONDS}")
        for name, value in (
            ("session_id", session_id),
            ("subject", subject),
            ("tool", tool),
            ("intent_hash", intent_hash),
        ):
            if not isinstance(value, str) or not value:
                raise ValueError(f"{name} must be a non-empty string")
        now = int(self._clock())
        jti = secrets.token_hex(16)  # 128 random bits, 32 hex digits
        exp = now + ttl_seconds
        payload = {
            "iss": self._issuer,
            "aud": self._audience,
            "sub": subject,
            "sid": session_id,
            "tool": tool,
            "cons": dict(constraints or {}),
            "ih": intent_hash,
            "jti": jti,
            "iat": now,
            "nbf": now,
            "exp": exp,
        }
        # exactly what jwt.encode(payload, key, algorithm=..., headers={"typ": TOKEN_TYPE})
        # returns (Ed25519 signatures and HMACs are deterministic; tests compare the two),
        # without PyJWT's per-call header merging, algorithm lookup and key preparation
        signing_input = self._header + b"." + _b64url(token_payload(payload))
        raw = signing_input + b"." + _b64url(self._sign(signing_input))
        return IssuedToken(
            token=raw.decode("ascii"),
            jti=jti,
            exp=exp,
            sha256=sha256_tag(raw),
        )


# --------------------------------------------------------------------------- replay + revocation


class ReplayCacheFull(TokenInvalid):
    """The replay cache holds its maximum of live entries; refusing is the safe answer."""


class JtiCache:
    """Remembers consumed jtis until they expire. Thread-safe, bounded.

    `consume(jti, expires_at)` is one locked check-and-insert: of many concurrent callers with
    the same jti exactly one gets True. Expired entries are pruned from a heap as time passes;
    when `max_entries` live entries are held, new tokens are refused rather than forgotten.
    """

    def __init__(self, *, max_entries: int = 1_000_000, clock: Clock = time.time) -> None:
        if max_entries < 1:
            raise ValueError("max_entries must be at least 1")
        self._max = max_entries
        self._clock = clock
        self._lock = threading.Lock()
        self._seen: dict[str, float] = {}
        self._heap: list[tuple[float, str]] = []

    def _prune(self, now: float) -> None:
        heap, seen = self._heap, self._seen
        while heap and heap[0][0] < now:
            expires_at, jti = heapq.heappop(heap)
            if seen.get(jti) == expires_at:
                del seen[jti]

    def consume(self, jti: str, expires_at: float) -> bool:
        """True the first time `jti` is seen (it is then remembered until `expires_at`)."""
        with self._lock:
            now = self._clock()
            self._prune(now)
            if jti in self._seen:
                return False
            if len(self._seen) >= self._max:
                raise ReplayCacheFull(
                    "capability token refused: the replay cache is full "
                    f"({self._max} live tokens); retry when older tokens expire",
                    details={"reason": "replay_cache_full"},
                )
            self._seen[jti] = expires_at
            heapq.heappush(self._heap, (expires_at, jti))
            return True

    def __contains__(self, jti: object) -> bool:
        with self._lock:
            self._prune(self._clock())
            return jti in self._seen

    def __len__(self) -> int:
        with self._lock:
            self._prune(self._clock())
            return len(self._seen)


@dataclass
class RevocationList:
    """Revoked jtis (kept until they expire) and revoked sessions.

    Revoking a session revokes every token of that session issued before the revocation:
    a token is refused when its `iat` (whole seconds, rounded down) is earlier than the
    revocation time, so a token issued in the same second just before it is caught too
    (a token issued in that same second just after it is also refused: the safe side).
    """

    clock: Clock = time.time
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _jtis: dict[str, float] = field(default_factory=dict, repr=False)
    _sessions: dict[str, float] = field(default_factory=dict, repr=False)
    #: (until, jti) for pruning in expiry order; an entry whose `until` no longer matches
    #: `_jtis` (the jti was revoked again) is skipped
    _expiry: list[tuple[float, str]] = field(default_factory=list, repr=False)

    def revoke_jti(self, jti: str, exp: float | None = None) -> None:
        """Revoke one token; remembered until `exp` (forever if unknown)."""
        until = math.inf if exp is None else float(exp) + MAX_LEEWAY_SECONDS
        with self._lock:
            self._jtis[jti] = until
            if until != math.inf:
                heapq.heappush(self._expiry, (until, jti))

    def revoke_session(self, session_id: str, at: float | None = None) -> None:
        """Revoke every token of `session_id` issued before now (or before `at`)."""
        when = self.clock() if at is None else at
        with self._lock:
            self._sessions[session_id] = max(when, self._sessions.get(session_id, -math.inf))

    def is_revoked(self, claims: Claims) -> str | None:
        """Why the token is revoked (`"jti"` or `"session"`), or None."""
        with self._lock:
            now = self.clock()
            expiry, jtis = self._expiry, self._jtis
            while expiry and expiry[0][0] < now:  # forget expired revocations, oldest first
                until, jti = heapq.heappop(expiry)
                if jtis.get(jti) == until:
                    del jtis[jti]
            if claims.jti in jtis:
                return "jti"
            revoked_at = self._sessions.get(claims.sid)
            if revoked_at is not None and claims.iat < revoked_at:
                return "session"
            return None


# --------------------------------------------------------------------------- verifying


class CapabilityVerifier:
    """The one token check the broker runs before executing anything."""

    def __init__(
        self,
        public_key: Ed25519PublicKey | TokenMacKey,
        *,
        replay_cache: JtiCache | None = None,
        revocations: RevocationList | None = None,
        leeway: int = MAX_LEEWAY_SECONDS,
        issuer: str = ISSUER,
        audience: str = AUDIENCE,
        min_iat: int | None = None,
    ) -> None:
        """`min_iat`: refuse tokens issued before this time (pass the engine's start time so
        tokens from a previous process, whose jtis this cache never saw, cannot be replayed).
        A TokenMacKey pins HS256 (and the one header the issuer writes); an Ed25519 public key
        pins EdDSA. A private key is refused: a verifier never holds one."""
        self._mac: TokenMacKey | None = None
        self._key: Ed25519PublicKey | None = None
        if isinstance(public_key, TokenMacKey):
            self._mac = public_key
        elif isinstance(public_key, Ed25519PublicKey):
            self._key = public_key
        else:
            raise TypeError("CapabilityVerifier needs an Ed25519 public key or a TokenMacKey")
        if not 0 <= leeway <= MAX_LEEWAY_SECONDS:
            raise ValueError(f"leeway must be between 0 and {MAX_LEEWAY_SECONDS} seconds")
        self.replay_cache = replay_cache if replay_cache is not None else JtiCache()
        self.revocations = revocations if revocations is not None else RevocationList()
        self._leeway = leeway
        self._issuer = issuer
        self._audience = audience
        self._min_iat = min_iat
        self._jwt = make_pyjwt()

    def check(self, token: str, *, tool: str, intent_hash: str, session_id: str) -> Claims:
        """Every check of `verify` except consuming the jti (nothing is remembered)."""
        claims = self._decode(token)
        if claims.sid != session_id:
            raise _reject(
                "wrong_session",
                f"issued for session {claims.sid!r}, presented for {session_id!r}",
                jti=claims.jti,
            )
        if claims.tool != tool:
            raise _reject(
                "wrong_tool", f"issued for {claims.tool!r}, presented for {tool!r}", jti=claims.jti
            )
        if claims.ih != intent_hash:
            raise _reject(
                "intent_mismatch",
                "the intent presented (tool and params) is not the one the token was issued for",
                jti=claims.jti,
            )
        if self._min_iat is not None and claims.iat < self._min_iat:
            raise _reject(
                "issued_before_start",
                "issued before this broker started; its single use cannot be checked",
                jti=claims.jti,
            )
        revoked = self.revocations.is_revoked(claims)
        if revoked == "jti":
            raise _reject("revoked", "the token was revoked", jti=claims.jti)
        if revoked == "session":
            raise _reject(
                "revoked", f"all tokens of session {claims.sid!r} were revoked", jti=claims.jti
            )
        return claims

    def verify(self, token: str, *, tool: str, intent_hash: str, session_id: str) -> Claims:
        """Check everything, then consume the jti (single use). Raises TokenInvalid whose
        `details["reason"]` names the failed check."""
        claims = self.check(token, tool=tool, intent_hash=intent_hash, session_id=session_id)
        if not self.replay_cache.consume(claims.jti, claims.exp + self._leeway + 1):
            raise _reject("replayed", "the token was already used (single use)", jti=claims.jti)
        if self.revocations.is_revoked(claims):
            # revoked while it was being checked: it stays consumed and is refused
            raise _reject("revoked", "the token was revoked", jti=claims.jti)
        return claims

    def _decode(self, token: str) -> Claims:
        if not isinstance(token, str) or not token:
            raise _reject("malformed", "no token given")
        if len(token) > MAX_TOKEN_CHARS:
            raise _reject("malformed", f"token longer than {MAX_TOKEN_CHARS} characters")
        if self._mac is not None:
            return self._decode_mac(self._mac, token)
        assert self._key is not None  # one of the two, from __init__
        header = _unverified_header(token)
        if header.get("alg") != ALGORITHM:
            raise _reject(
                "bad_algorithm", f"algorithm {header.get('alg')!r} is not allowed (only EdDSA)"
            )
        extra = set(header) - _ALLOWED_HEADER_FIELDS
        if extra:
            raise _reject("bad_header", f"unexpected header fields {sorted(extra)}")
        try:
            decoded = self._jwt.decode_complete(
                token,
                self._key,
                algorithms=[ALGORITHM],
                audience=self._audience,
                issuer=self._issuer,
                leeway=self._leeway,
            )
        except jwt.InvalidAlgorithmError as exc:
            raise _reject("bad_algorithm", f"algorithm not allowed ({exc})") from exc
        except jwt.InvalidSignatureError as exc:
            raise _reject("bad_signature", "the signature does not verify") from exc
        except jwt.ExpiredSignatureError as exc:
            raise _reject("expired", "the token has expired") from exc
        except jwt.ImmatureSignatureError as exc:
            raise _reject("not_yet_valid", f"the token is not yet valid ({exc})") from exc
        except jwt.InvalidAudienceError as exc:
            raise _reject("wrong_audience", f"wrong audience ({exc})") from exc
        except jwt.InvalidIssuerError as exc:
            raise _reject("wrong_issuer", f"wrong issuer ({exc})") from exc
        except jwt.MissingRequiredClaimError as exc:
            raise _reject("missing_claim", f"required claim {exc.claim!r} is missing") from exc
        except jwt.PyJWTError as exc:
            raise _reject("malformed", f"invalid token ({exc})") from exc
        if decoded["header"].get("typ") != TOKEN_TYPE:
            raise _reject(
                "bad_type", f"token type {decoded['header'].get('typ')!r} is not {TOKEN_TYPE!r}"
            )
        return _claims(decoded["payload"])

    def _decode_mac(self, key: TokenMacKey, token: str) -> Claims:
        """An in-process token: the exact header the issuer writes, the MAC (constant-time
        compare) before anything of the payload is read, then the claims as PyJWT checks them
        (required, iat/nbf not in the future, exp not past, all with the leeway; iss; aud
        exactly, a string) and their types."""
        parts = token.split(".")
        if len(parts) != 3:
            raise _reject("malformed", "not a JWT (expected three dot-separated parts)")
        head, body, sig = parts
        if head != _MAC_HEADER_TEXT:
            header = _unverified_header(token)
            if header.get("alg") != MAC_ALGORITHM:
                raise _reject(
                    "bad_algorithm",
                    f"algorithm {header.get('alg')!r} is not allowed (only {MAC_ALGORITHM})",
                )
            extra = set(header) - _ALLOWED_HEADER_FIELDS
            if extra:
                raise _reject("bad_header", f"unexpected header fields {sorted(extra)}")
            if header.get("typ") != TOKEN_TYPE:
                raise _reject("bad_type", f"token type {header.get('typ')!r} is not {TOKEN_TYPE!r}")
            raise _reject("bad_header", "the header is not the one this engine writes")
        try:
            mac = decode_base64url_segment(sig.encode("ascii"), "crypto")
            signing_input = (head + "." + body).encode("ascii")
        except (jwt.DecodeError, UnicodeEncodeError) as exc:
            raise _reject("malformed", f"invalid token ({exc})") from exc
        if not hmac.compare_digest(mac, key.mac(signing_input)):
            raise _reject("bad_signature", "the signature does not verify")
        try:
            payload = orjson.loads(decode_base64url_segment(body.encode("ascii"), "payload"))
        except (jwt.DecodeError, orjson.JSONDecodeError) as exc:
            raise _reject("malformed", f"invalid token ({exc})") from exc
        if not isinstance(payload, dict):
            raise _reject("malformed", "invalid token (the payload is not a JSON object)")
        self._check_registered(payload)
        return _claims(payload)

    def _check_registered(self, payload: dict[str, Any]) -> None:
        """PyJWT's registered-claim checks, in its order, with its reasons."""
        for name in REQUIRED_CLAIMS:
            if payload.get(name) is None:
                raise _reject("missing_claim", f"required claim {name!r} is missing")
        for name in ("iat", "nbf", "exp"):
            v = payload[name]
            if isinstance(v, bool) or not isinstance(v, int):
                raise _reject("malformed", f"claim {name!r} must be an integer")
        now = time.time()
        leeway = self._leeway
        if payload["iat"] > now + leeway:
            raise _reject("not_yet_valid", "the token is not yet valid (iat)")
        if payload["nbf"] > now + leeway:
            raise _reject("not_yet_valid", "the token is not yet valid (nbf)")
        if payload["exp"] <= now - leeway:
            raise _reject("expired", "the token has expired")
        if payload["iss"] != self._issuer:
            raise _reject("wrong_issuer", "wrong issuer (Invalid issuer)")
        aud = payload["aud"]
        if not isinstance(aud, str):
            raise _reject("wrong_audience", "wrong audience (Invalid claim format in token)")
        if aud != self._audience:
            raise _reject("wrong_audience", "wrong audience (Audience doesn't match)")


#: header segment -> decoded header, for headers that decoded to an object (every token the
#: issuer signs has the same one); a pure function of the segment, bounded
_HEADERS: dict[str, dict[str, Any]] = {}
_MAX_HEADERS = 64


def _unverified_header(token: str) -> dict[str, Any]:
    """The JOSE header, decoded only to refuse unexpected fields before PyJWT acts on them."""
    parts = token.split(".")
    if len(parts) != 3:
        raise _reject("malformed", "not a JWT (expected three dot-separated parts)")
    known = _HEADERS.get(parts[0])
    if known is not None:
        return dict(known)
    try:
        raw = base64.urlsafe_b64decode(parts[0] + "=" * (-len(parts[0]) % 4))
        header = json.loads(raw)
    except (ValueError, binascii.Error) as exc:
        raise _reject("malformed", "not a JWT (header is not base64url JSON)") from exc
    if not isinstance(header, dict):
        raise _reject("malformed", "not a JWT (header is not a JSON object)")
    if len(_HEADERS) >= _MAX_HEADERS:
        _HEADERS.clear()
    _HEADERS[parts[0]] = dict(header)
    return header


def _claims(payload: dict[str, Any]) -> Claims:
    """Typed claims; any claim of the wrong type makes the token malformed."""
    strings = ("iss", "aud", "sub", "sid", "tool", "ih", "jti")
    ints = ("iat", "nbf", "exp")
    for name in (*strings, *ints, "cons"):
        if name not in payload:
            raise _reject("missing_claim", f"required claim {name!r} is missing")
    for name in strings:
        if not isinstance(payload.get(name), str) or not payload[name]:
            raise _reject("malformed", f"claim {name!r} must be a non-empty string")
    for name in ints:
        v = payload.get(name)
        if isinstance(v, bool) or not isinstance(v, int):
            raise _reject("malformed", f"claim {name!r} must be an integer")
    if not isinstance(payload.get("cons"), dict):
        raise _reject("malformed", "claim 'cons' must be an object")
    return Claims(**{k: payload[k] for k in (*strings, *ints, "cons")})
