"""The webhook client refuses, at connect time, an address the URL check would have refused:
the case of a name that resolved to a public address when checked and to an inside one when
the delivery connects (DNS rebinding)."""

from __future__ import annotations

import uuid
from typing import Any, cast

import httpx
import pytest

from services.notifier import dispatcher as dispatcher_module
from services.notifier.dispatcher import Claimed, WebhookDispatcher
from services.notifier.targets import SSRFProtectionError, guarded
from shared.settings import WebhookSettings
from tests.support.receiver import WebhookReceiver

pytestmark = pytest.mark.single_db


async def _check_passes(url: str, *, allow_private: bool, require_https: bool) -> None:
    """The URL check as a name that still resolved to a public address would pass it."""


def _delivery(url: str) -> Claimed:
    return Claimed(
        id=f"msg_{uuid.uuid4().hex}",
        subscription_id=uuid.uuid4(),
        url=url,
        secrets=["whsec_" + "A" * 32],
        body='{"type": "issue.routed"}',
        attempt=1,
    )


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
async def test_a_guarded_client_does_not_connect_to_a_loopback_address(host: str) -> None:
    receiver = WebhookReceiver()
    async with receiver.running(), httpx.AsyncClient() as client:
        with pytest.raises(SSRFProtectionError):
            await guarded(client, allow_private=False).post(
                f"http://{host}:{receiver.port}/hooks", content=b"{}"
            )
    assert receiver.received == []


async def test_a_delivery_whose_name_now_points_inside_fails_for_good_and_sends_nothing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(dispatcher_module, "check_target", _check_passes)
    receiver = WebhookReceiver()
    async with receiver.running():
        results = {}
        for allow_private in (False, True):
            settings = WebhookSettings(allow_private_targets=allow_private)
            async with httpx.AsyncClient() as client:
                dispatcher = WebhookDispatcher(
                    cast(Any, None),  # _post reads and writes nothing
                    settings,
                    guarded(client, allow_private=allow_private),
                )
                results[allow_private] = await dispatcher._post(_delivery(receiver.url))
    refused, allowed = results[False], results[True]
    assert refused.status_code is None
    assert refused.error is not None
    assert refused.error.startswith("target refused:")
    assert not refused.retryable
    assert allowed.delivered, "the same delivery goes through where private targets are allowed"
    assert len(receiver.received) == 1


async def test_a_delivery_to_a_name_that_does_not_resolve_is_tried_again_later() -> None:
    """A resolver outage must not fail every delivery due meanwhile for good; a private address
    still does."""
    async with httpx.AsyncClient() as client:
        dispatcher = WebhookDispatcher(
            cast(Any, None), WebhookSettings(), guarded(client, allow_private=False)
        )
        unresolved = await dispatcher._post(_delivery("https://hooks.example.invalid/csp"))
        private = await dispatcher._post(_delivery("https://10.1.2.3/csp"))
    assert unresolved.status_code is None
    assert unresolved.error is not None
    assert "does not resolve" in unresolved.error
    assert unresolved.retryable
    assert private.error is not None
    assert private.error.startswith("target refused:")
    assert not private.retryable
