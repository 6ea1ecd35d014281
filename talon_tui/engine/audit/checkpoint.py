"""Checkpoint signatures in the audit log (DESIGN section 5): the key id, the signed message,
and the check `verify` applies to every checkpoint event, with the damage it reports.
"""

from __future__ import annotations

from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from ..core.canon import b64url_decode, checkpoint_message

CHECKPOINT_TYPE = "audit.checkpoint"


class Damage(Exception):
    def __init__(self, damage: str, seq: int | None, message: str) -> None:
        super().__init__(message)
        self.damage, self.seq, self.message = damage, seq, message


def check_checkpoint(ev: dict[str, Any], pub: Ed25519PublicKey | None, kid: str | None) -> int:
    seq = ev["seq"]
    data = ev.get("data")
    if not isinstance(data, dict):
        raise Damage("bad_signature", seq, f"checkpoint {seq} has no data")
    cseq, chash, sig = (
        data.get("checkpoint_seq"),
        data.get("checkpoint_hash"),
        data.get("signature"),
    )
    if cseq != seq - 1 or chash != ev["prev_hash"]:
        raise Damage(
            "bad_signature",
            seq,
            f"checkpoint {seq} signs seq {cseq} / {chash}, not the event before it "
            "(the log was rewritten after it was signed)",
        )
    if pub is None:
        raise Damage("bad_signature", seq, f"checkpoint {seq}: no public key to check it with")
    if data.get("key_id") != kid:
        raise Damage("bad_signature", seq, f"checkpoint {seq} was signed by another key")
    try:
        pub.verify(b64url_decode(str(sig)), checkpoint_message(cseq, chash))
    except (InvalidSignature, ValueError) as exc:
        raise Damage(
            "bad_signature",
            seq,
            f"checkpoint {seq}: signature does not verify (rewritten without the key)",
        ) from exc
    return int(cseq)
