"""Sends queued webhook deliveries: signed, timed out, retried with backoff, each attempt logged."""

from __future__ import annotations

import asyncio
import logging
import random
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.utils import parsedate_to_datetime

import httpx
from sqlalchemy import Exists, exists, select, update
from sqlalchemy.orm import aliased

from services.notifier.signing import signature_header
from services.notifier.targets import (
    SSRFProtectionError,
    TargetRefused,
    TargetUnresolved,
    check_target,
)
from shared.db.base import utcnow
from shared.db.models import WebhookAttempt, WebhookDelivery, WebhookSubscription
from shared.db.uow import UnitOfWorkFactory
from shared.observability import metrics
from shared.periodic import run_every
from shared.settings import WebhookSettings
from shared.vocabulary import WEBHOOK_NOT_SENT

log = logging.getLogger(__name__)


RETRYABLE_CLIENT_ERRORS = frozenset({408, 425, 429})


@dataclass(frozen=True, slots=True)
class Claimed:
    id: str
    subscription_id: uuid.UUID
    url: str
    secrets: list[str]
    body: str
    attempt: int


@dataclass(frozen=True, slots=True)
class AttemptResult:
    status_code: int | None
    latency_ms: int
    error: str | None = None
    excerpt: str | None = None
    retry_after_s: float | None = None
    permanent: bool = False

    @property
    def delivered(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300

    @property
    def retryable(self) -> bool:
        """Server trouble, throttling, timeouts and network errors are worth another try; any
        other 4xx (and a redirect, which is not followed) means the request itself is refused."""
        if self.permanent:
            return False
        code = self.status_code
        return code is None or code >= 500 or code in RETRYABLE_CLIENT_ERRORS


class WebhookDispatcher:
    def __init__(
        self,
        uow_factory: UnitOfWorkFactory,
        settings: WebhookSettings,
        client: httpx.AsyncClient,
        *,
        require_https: bool = False,
    ) -> None:
        self._uow_factory = uow_factory
        self._settings = settings
        self._client = client
        self._require_https = require_https
        self._slots = asyncio.Semaphore(settings.concurrency)
        self._endpoint_slots: dict[uuid.UUID, asyncio.Semaphore] = {}

    async def run(self, stop: asyncio.Event) -> None:
        await run_every(
            self._settings.poll_interval_s,
            stop,
            self.dispatch_once,
            logger=log,
            what="webhook dispatch pass",
            again_if_busy=True,
        )

    async def dispatch_once(self) -> int:
        claimed = await self._claim()
        await asyncio.gather(*(self._deliver(item) for item in claimed))
        return len(claimed)

    async def _claim(self) -> list[Claimed]:
        now = utcnow()
        lease = now + timedelta(seconds=self._settings.timeout_s + 30)
        async with self._uow_factory() as uow:
            due = await uow.session.scalars(
                select(WebhookDelivery)
                .where(WebhookDelivery.status == "pending", WebhookDelivery.next_attempt_at <= now)
                .where(
                    (WebhookDelivery.claimed_until.is_(None))
                    | (WebhookDelivery.claimed_until < now)
                )
                .where(~_earlier_pending())
                .order_by(WebhookDelivery.next_attempt_at)
                .limit(self._settings.concurrency * 2)
                .with_for_update(skip_locked=True)
            )
            deliveries = list(due.all())
            if not deliveries:
                return []
            subscriptions = {
                s.id: s
                for s in await uow.session.scalars(
                    select(WebhookSubscription).where(
                        WebhookSubscription.id.in_({d.subscription_id for d in deliveries})
                    )
                )
            }
            claimed = []
            for delivery in deliveries:
                subscription = subscriptions[delivery.subscription_id]
                if not subscription.enabled:
                    # Kept, so it can be redelivered once the endpoint is enabled again.
                    delivery.status = "failed"
                    reason = subscription.disabled_reason or "disabled"
                    delivery.last_error = f"{WEBHOOK_NOT_SENT}{reason}"
                    continue
                delivery.claimed_until = lease
                claimed.append(
                    Claimed(
                        id=delivery.id,
                        subscription_id=subscription.id,
                        url=subscription.url,
                        secrets=_active_secrets(subscription, now),
                        body=delivery.body,
                        attempt=delivery.attempts + 1,
                    )
                )
            await uow.commit()
        return claimed

    async def _deliver(self, item: Claimed) -> None:
        endpoint = self._endpoint_slots.setdefault(
            item.subscription_id, asyncio.Semaphore(self._settings.per_endpoint_concurrency)
        )
        async with self._slots, endpoint:
            result = await self._post(item)
        await self._record(item, result)

    async def _post(self, item: Claimed) -> AttemptResult:
        try:
            # Again at send time: the name may point somewhere else than when it was subscribed.
            await check_target(
                item.url,
                allow_private=self._settings.allow_private_targets,
                require_https=self._require_https,
            )
        except TargetUnresolved as exc:  # a name gone, or a resolver down: try again later
            return AttemptResult(None, 0, error=str(exc))
        except TargetRefused as exc:
            return AttemptResult(None, 0, error=f"target refused: {exc}", permanent=True)
        timestamp = utcnow()
        headers = {
            "content-type": "application/json",
            "webhook-id": item.id,
            "webhook-timestamp": str(int(timestamp.timestamp())),
            "webhook-signature": signature_header(
                item.secrets, msg_id=item.id, timestamp=timestamp, body=item.body
            ),
            "user-agent": "csp-escalation-webhooks/1",
        }
        started = time.perf_counter()
        try:
            response = await self._client.post(
                item.url, content=item.body, headers=headers, timeout=self._settings.timeout_s
            )
        except SSRFProtectionError as exc:  # the name now points inside the network
            latency = int((time.perf_counter() - started) * 1000)
            return AttemptResult(None, latency, error=f"target refused: {exc}", permanent=True)
        except httpx.HTTPError as exc:
            latency = int((time.perf_counter() - started) * 1000)
            return AttemptResult(None, latency, error=f"{type(exc).__name__}: {exc}"[:500])
        latency = int((time.perf_counter() - started) * 1000)
        metrics.WEBHOOK_LATENCY.observe(latency / 1000)
        return AttemptResult(
            response.status_code,
            latency,
            excerpt=response.text[:500],
            retry_after_s=_retry_after(response.headers.get("retry-after")),
        )

    async def _record(self, item: Claimed, result: AttemptResult) -> None:
        now = utcnow()
        values: dict[str, object] = {
            "attempts": item.attempt,
            "claimed_until": None,
            "last_status_code": result.status_code,
            "last_error": result.error,
        }
        disable = False
        if result.delivered:
            values.update(status="succeeded", delivered_at=now)
            outcome = "succeeded"
        elif result.status_code == 410:
            values.update(status="failed", last_error="410 Gone: subscription disabled")
            disable, outcome = True, "gone"
        elif not result.retryable:
            values.update(status="failed")
            outcome = "failed"
        elif item.attempt >= self._settings.max_attempts:
            values.update(status="exhausted")
            outcome = "exhausted"
        else:
            values.update(
                next_attempt_at=now + timedelta(seconds=self._backoff(item.attempt, result))
            )
            outcome = "retry"
        metrics.WEBHOOK_ATTEMPTS.labels(outcome=outcome).inc()
        async with self._uow_factory() as uow:
            uow.session.add(
                WebhookAttempt(
                    delivery_id=item.id,
                    attempt=item.attempt,
                    at=now,
                    status_code=result.status_code,
                    latency_ms=result.latency_ms,
                    error=result.error,
                    response_excerpt=result.excerpt,
                )
            )
            await uow.session.execute(
                update(WebhookDelivery).where(WebhookDelivery.id == item.id).values(**values)
            )
            if disable:
                await uow.session.execute(
                    update(WebhookSubscription)
                    .where(WebhookSubscription.id == item.subscription_id)
                    .values(enabled=False, disabled_reason="the endpoint answered 410 Gone")
                )
            await uow.commit()

    def _backoff(self, attempt: int, result: AttemptResult) -> float:
        """Exponential with full jitter in [½, 1] of the step, never sooner than Retry-After."""
        step: float = min(
            self._settings.backoff_cap_s, self._settings.backoff_base_s * 2.0 ** (attempt - 1)
        )
        delay = step * random.uniform(0.5, 1.0)
        if result.retry_after_s is not None:
            delay = max(delay, min(result.retry_after_s, self._settings.backoff_cap_s))
        return delay


def _earlier_pending() -> Exists:
    """Whether an earlier delivery about the same issue to the same endpoint is still pending:
    then this one waits for it, so an endpoint hears about an issue in the order its outcomes
    were decided (``needs_information``, then the decision once answered), even while the
    earlier one is being retried."""
    earlier = aliased(WebhookDelivery)
    return exists().where(
        earlier.subscription_id == WebhookDelivery.subscription_id,
        earlier.issue_id == WebhookDelivery.issue_id,
        earlier.status == "pending",
        (earlier.created_at < WebhookDelivery.created_at)
        | ((earlier.created_at == WebhookDelivery.created_at) & (earlier.id < WebhookDelivery.id)),
    )


def _active_secrets(subscription: WebhookSubscription, now: datetime) -> list[str]:
    secrets = [subscription.secret]
    expires = subscription.previous_secret_expires_at
    if subscription.previous_secret and expires is not None and expires > now:
        secrets.append(subscription.previous_secret)
    return secrets


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, (parsedate_to_datetime(value) - utcnow()).total_seconds())
    except (TypeError, ValueError):
        return None
