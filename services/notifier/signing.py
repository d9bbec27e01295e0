"""Standard Webhooks signing and secrets, through the ``standardwebhooks`` package."""

from __future__ import annotations

import base64
import secrets
from datetime import datetime

from standardwebhooks import Webhook

SECRET_PREFIX = "whsec_"  # noqa: S105 - a prefix, not a secret


def new_secret() -> str:
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()


def signature_header(
    secrets_in_use: list[str], *, msg_id: str, timestamp: datetime, body: str
) -> str:
    """``v1,<sig>`` for every active secret, space separated (several during rotation)."""
    return " ".join(Webhook(secret).sign(msg_id, timestamp, body) for secret in secrets_in_use)
