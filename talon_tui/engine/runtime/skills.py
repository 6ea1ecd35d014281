"""Signed skill manifests (issue 3, "Skills").

A skill is a container image plus a manifest of the tools it may request. Its publisher signs
`skill_payload(name, version, image, manifest)` with Ed25519; the operator trusts publishers by
putting their public keys (PEM) in `<data>/keys/trusted/*.pub`. A docker override with
`require_signed: true` runs only skills whose status here is `"verified"`.

The payload is canonical JSON (DESIGN section 5 byte form) of the four fields plus a type tag,
so a signature for a skill can never be replayed as a signature for anything else, and any
change to the name, version, image or manifest makes the signature fail.
"""

from __future__ import annotations

import binascii
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from pydantic import ValidationError

from ..core.canon import NotCanonical, b64url_decode, b64url_encode, canonical, loads_strict
from ..core.keys import key_id
from ..core.paths import write_private
from ..errors import BadRequest
from ..policy.models import Skill

log = logging.getLogger(__name__)

PAYLOAD_TYPE = "talon.skill.v1"
SignatureStatus = Literal["verified", "unsigned", "bad"]


def skill_payload(name: str, version: str, image: str, manifest: Mapping[str, Any]) -> bytes:
    """The exact bytes a skill signature covers. Raises BadRequest if the fields have no
    canonical form (non-strings, floats or huge integers in the manifest, lone surrogates)."""
    for field, value in (("name", name), ("version", version), ("image", image)):
        if not isinstance(value, str) or not value:
            raise BadRequest(f"skill {field} must be a non-empty string")
    if not isinstance(manifest, Mapping):
        raise BadRequest("skill manifest must be a JSON object")
    doc = {
        "type": PAYLOAD_TYPE,
        "name": name,
        "version": version,
        "image": image,
        "manifest": dict(manifest),
    }
    try:
        return canonical(doc)
    except NotCanonical as exc:
        raise BadRequest(f"skill cannot be signed: {exc}") from exc


def _b64url_decode(text: str) -> bytes:
    if not isinstance(text, str) or not text or "=" in text:
        raise ValueError("not unpadded base64url")
    return b64url_decode(text)


def sign_skill(
    private_key: Ed25519PrivateKey,
    name: str,
    version: str,
    image: str,
    manifest: Mapping[str, Any],
) -> str:
    """Ed25519 signature over `skill_payload(...)`, base64url without padding."""
    if not isinstance(private_key, Ed25519PrivateKey):
        raise TypeError("sign_skill needs an Ed25519 private key")
    return b64url_encode(private_key.sign(skill_payload(name, version, image, manifest)))


def signed_skill(
    private_key: Ed25519PrivateKey,
    name: str,
    version: str,
    image: str,
    manifest: Mapping[str, Any],
) -> Skill:
    """A Skill carrying its signature and the signer's key_id, ready for `skill.register`."""
    return Skill(
        name=name,
        version=version,
        image=image,
        manifest=dict(manifest),
        signature=sign_skill(private_key, name, version, image, manifest),
        key_id=key_id(private_key.public_key()),
    )


def load_trusted_keys(trusted_keys_dir: Path | str) -> dict[str, Ed25519PublicKey]:
    """Trusted publisher keys, key_id -> key, from `*.pub` PEM files. Files that are not
    Ed25519 public keys are skipped with a warning naming them (they trust nothing)."""
    directory = Path(trusted_keys_dir)
    keys: dict[str, Ed25519PublicKey] = {}
    if not directory.is_dir():
        return keys
    for path in sorted(directory.glob("*.pub")):
        try:
            key = serialization.load_pem_public_key(path.read_bytes())
        except (ValueError, OSError) as exc:
            log.warning("trusted key %s is not a readable PEM public key: %s", path, exc)
            continue
        if not isinstance(key, Ed25519PublicKey):
            log.warning("trusted key %s is not an Ed25519 public key; ignored", path)
            continue
        keys[key_id(key)] = key
    return keys


def trust_public_key(
    trusted_keys_dir: Path | str, public_key: Ed25519PublicKey, name: str | None = None
) -> Path:
    """Write `public_key` as `<name>.pub` (PEM, 0600) into the trusted directory."""
    if not isinstance(public_key, Ed25519PublicKey):
        raise TypeError("only Ed25519 public keys can be trusted")
    directory = Path(trusted_keys_dir)
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    stem = name or key_id(public_key).removeprefix("sha256:")[:16]
    if not stem or "/" in stem or stem.startswith(".") or "\x00" in stem:
        raise BadRequest(f"trusted key name {stem!r} is not a plain file name")
    path = directory / f"{stem}.pub"
    pem = public_key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    write_private(path, pem)
    return path


def verify_skill(
    skill: Skill | Mapping[str, Any],
    trusted_keys_dir: Path | str,
    *,
    trusted_keys: Mapping[str, Ed25519PublicKey] | None = None,
) -> SignatureStatus:
    """`"verified"` when a trusted key signed exactly this name, version, image and manifest;
    `"unsigned"` when the skill carries no signature; `"bad"` otherwise (tampered, signed by an
    untrusted key, malformed signature, or a key_id naming no trusted key)."""
    try:
        sk = skill if isinstance(skill, Skill) else Skill.model_validate(dict(skill))
    except ValidationError:
        return "bad"
    if not sk.signature:
        return "unsigned"
    try:
        signature = _b64url_decode(sk.signature)
        payload = skill_payload(sk.name, sk.version, sk.image, sk.manifest)
    except (ValueError, binascii.Error, BadRequest):
        return "bad"
    if len(signature) != 64:
        return "bad"
    keys = dict(trusted_keys) if trusted_keys is not None else load_trusted_keys(trusted_keys_dir)
    if sk.key_id:
        candidates = [keys[sk.key_id]] if sk.key_id in keys else []
    else:
        candidates = list(keys.values())
    for key in candidates:
        try:
            key.verify(signature, payload)
        except InvalidSignature:
            continue
        return "verified"
    return "bad"


def parse_skill_answer(stdout: str) -> dict[str, Any] | None:
    """A skill answers one JSON object on stdout. Return it, or None when stdout is not
    exactly one JSON object (duplicate keys and NaN/Infinity are refused: two readers must
    never see two different answers)."""
    text = stdout.strip()
    if not text.startswith("{"):
        return None

    try:
        value = loads_strict(text)
    except (ValueError, RecursionError):
        return None
    return value if isinstance(value, dict) else None
