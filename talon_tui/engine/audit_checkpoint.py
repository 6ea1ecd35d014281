"""Checkpoint signatures in the audit log (DESIGN section 5): the key id, the signed message,
and the check `audit_verify` applies to every checkpoint event, with the damage it reports.
"""

from __future__ import annotations

import base64
import hashlib
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from .canon import canonical

CHECKPOINT_TYPE = "audit.checkpoint"


def key_id(public_key: Ed25519PublicKey) -> str:
    """`sha256:` + hex sha256 of the raw 32-byte public key."""
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return "sha256:" + hashlib.sha256(raw).hexdigest()


def checkpoint_message(seq: int, hash_: str) -> bytes:
    return canonical({"seq": seq, "hash": hash_})


def b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class _Bad(Exception):
    def __init__(self, damage: str, seq: int | None, message: str) -> None:
        super().__init__(message)
        self.damage, self.seq, self.message = damage, seq, message


def _check_checkpoint(ev: dict[str, Any], pub: Ed25519PublicKey | None, kid: str | None) -> int:
    seq = ev["seq"]
    data = ev.get("data")
    if not isinstance(data, dict):
        raise _Bad("bad_signature", seq, f"checkpoint {seq} has no data")
    cseq, chash, sig = (
        data.get("checkpoint_seq"),
        data.get("checkpoint_hash"),
        data.get("signature"),
    )
    if cseq != seq - 1 or chash != ev["prev_hash"]:
        raise _Bad(
            "bad_signature",
            seq,
            f"checkpoint {seq} signs seq {cseq} / {chash}, not the event before it "
            "(the log was rewritten after it was signed)",
        )
    if pub is None:
        raise _Bad("bad_signature", seq, f"checkpoint {seq}: no public key to check it with")
    if data.get("key_id") != kid:
        raise _Bad("bad_signature", seq, f"checkpoint {seq} was signed by another key")
    try:
        pub.verify(b64url_decode(str(sig)), checkpoint_message(cseq, chash))
    except (InvalidSignature, ValueError) as exc:
        raise _Bad(
            "bad_signature",
            seq,
            f"checkpoint {seq}: signature does not verify (rewritten without the key)",
        ) from exc
    return cseq
