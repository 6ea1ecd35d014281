"""Ed25519 key pairs in `<data>/keys/` (0600): `policy` signs capability tokens, `audit` signs
checkpoints. The broker and auditors need only the public halves."""

from __future__ import annotations

import os
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from .canon import sha256_tag
from .paths import write_private


def key_id(public_key: Ed25519PublicKey) -> str:
    """`sha256:` + hex sha256 of the raw 32-byte public key (audit checkpoints, skills)."""
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return sha256_tag(raw)


def private_key_path(keys_dir: Path, name: str) -> Path:
    return keys_dir / f"{name}_ed25519.key"


def public_key_path(keys_dir: Path, name: str) -> Path:
    return keys_dir / f"{name}_ed25519.pub"


def load_or_create(keys_dir: Path, name: str) -> tuple[Ed25519PrivateKey, Ed25519PublicKey]:
    """Load the `name` key pair, creating it (mode 0600) on first start."""
    keys_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    priv_path = private_key_path(keys_dir, name)
    if priv_path.exists():
        key = serialization.load_pem_private_key(priv_path.read_bytes(), password=None)
        if not isinstance(key, Ed25519PrivateKey):
            raise ValueError(f"{priv_path} is not an Ed25519 private key")
        if priv_path.stat().st_mode & 0o077:
            os.chmod(priv_path, 0o600)
    else:
        key = Ed25519PrivateKey.generate()
        write_private(
            priv_path,
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            ),
        )
    pub = key.public_key()
    pub_path = public_key_path(keys_dir, name)
    pem = pub.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    if not pub_path.exists() or pub_path.read_bytes() != pem:
        write_private(pub_path, pem)
    return key, pub


def load_public(keys_dir: Path, name: str) -> Ed25519PublicKey:
    """Load only the public half (what verifiers hold)."""
    path = public_key_path(keys_dir, name)
    key = serialization.load_pem_public_key(path.read_bytes())
    if not isinstance(key, Ed25519PublicKey):
        raise ValueError(f"{path} is not an Ed25519 public key")
    return key


def public_pem(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
