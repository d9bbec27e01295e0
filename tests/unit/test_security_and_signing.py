"""API keys and Standard Webhooks signatures."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from standardwebhooks import Webhook, WebhookVerificationError

from services.notifier.dispatcher import _retry_after
from services.notifier.microsoft import TITLE_MAX
from services.notifier.signing import new_secret, signature_header
from services.notifier.targets import TargetRefused, check_target
from shared.security import generate_key, parse_prefix, verify_key


def test_a_generated_key_verifies_and_only_its_hash_is_needed() -> None:
    key = generate_key(pepper="pepper")
    assert key.plaintext.startswith(f"csp_{key.prefix}_")
    assert parse_prefix(key.plaintext) == key.prefix
    assert key.key_hash not in key.plaintext
    assert verify_key(key.plaintext, key.key_hash, pepper="pepper")
    assert not verify_key(key.plaintext + "x", key.key_hash, pepper="pepper")
    assert not verify_key(key.plaintext, key.key_hash, pepper="other")


@pytest.mark.parametrize("token", ["", "abc", "csp_short_x", "sk_123456789012_x"])
def test_malformed_keys_have_no_prefix(token: str) -> None:
    assert parse_prefix(token) is None


def test_signatures_verify_with_the_standard_webhooks_library_for_old_and_new_secrets() -> None:
    old, new = new_secret(), new_secret()
    now = datetime.now(UTC)
    body = '{"type":"issue.needs_information"}'
    headers = {
        "webhook-id": "msg_1",
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": signature_header([new, old], msg_id="msg_1", timestamp=now, body=body),
    }
    assert Webhook(new).verify(body, headers)["type"] == "issue.needs_information"
    assert Webhook(old).verify(body, headers)["type"] == "issue.needs_information"
    with pytest.raises(WebhookVerificationError):
        Webhook(new_secret()).verify(body, headers)


def test_retry_after_is_read_as_seconds_or_as_an_http_date() -> None:
    assert _retry_after("120") == 120.0
    later = (datetime.now(UTC) + timedelta(seconds=90)).strftime("%a, %d %b %Y %H:%M:%S GMT")
    value = _retry_after(later)
    assert value is not None
    assert 80 <= value <= 91
    assert _retry_after("soon") is None
    assert _retry_after(None) is None


def test_partner_center_titles_are_limited_to_255_characters() -> None:
    assert TITLE_MAX == 255


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8000/hook",
        "http://10.1.2.3/hook",
        "http://169.254.169.254/latest/meta-data",
        "http://100.64.0.1/hook",  # carrier-grade NAT: not globally reachable
        "http://[::1]/hook",
        "http://localhost/hook",
    ],
)
async def test_webhooks_to_private_loopback_or_link_local_targets_are_refused(url: str) -> None:
    with pytest.raises(TargetRefused):
        await check_target(url, allow_private=False, require_https=False)
    await check_target(url, allow_private=True, require_https=False)


async def test_production_requires_https_webhooks() -> None:
    with pytest.raises(TargetRefused, match="https"):
        await check_target("http://8.8.8.8/hook", allow_private=True, require_https=True)
    await check_target("https://8.8.8.8/hook", allow_private=False, require_https=True)
