"""API keys: ``csp_<prefix>_<secret>``; the prefix finds the row, a keyed hash checks the rest."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass

KEY_SCHEME = "csp"


@dataclass(frozen=True, slots=True)
class NewKey:
    plaintext: str
    prefix: str
    key_hash: str


def hash_key(plaintext: str, *, pepper: str) -> str:
    """Keys are 256-bit random, so one keyed SHA-256 is enough; no slow KDF is needed."""
    return hmac.new(pepper.encode(), plaintext.encode(), hashlib.sha256).hexdigest()


def generate_key(*, pepper: str) -> NewKey:
    prefix = secrets.token_hex(6)
    plaintext = f"{KEY_SCHEME}_{prefix}_{secrets.token_urlsafe(32)}"
    return NewKey(plaintext, prefix, hash_key(plaintext, pepper=pepper))


def parse_prefix(plaintext: str) -> str | None:
    parts = plaintext.split("_", 2)
    if len(parts) != 3 or parts[0] != KEY_SCHEME or len(parts[1]) != 12:
        return None
    return parts[1]


def verify_key(plaintext: str, key_hash: str, *, pepper: str) -> bool:
    return hmac.compare_digest(hash_key(plaintext, pepper=pepper), key_hash)
