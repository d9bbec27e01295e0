"""Sends queued webhook deliveries: signed, timed out, retried with backoff, each attempt logged."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.utils import parsedate_to_datetime

import httpx
from sqlalchemy import select, update

from services.notifier.signing import signature_header
from shared.db.base import utcnow
from shared.db.models import WebhookAttempt, WebhookDelivery, WebhookSubscription
from shared.db.uow import UnitOfWorkFactory
from shared.observability import metrics
from shared.settings import WebhookSettings

log = logging.getLogger(__name__)


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

    @property
    def delivered(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


class WebhookDispatcher:
    def __init__(
        self, uow_factory: UnitOfWorkFactory, settings: WebhookSettings, client: httpx.AsyncClient
    ) -> None:
        self._uow_factory = uow_factory
        self._settings = settings
        self._client = client
        self._slots = asyncio.Semaphore(settings.concurrency)

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                sent = await self.dispatch_once()
            except Exception:
                log.exception("webhook dispatch pass failed")
                sent = 0
            if sent == 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), timeout=self._settings.poll_interval_s)

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
                delivery.claimed_until = lease
                subscription = subscriptions[delivery.subscription_id]
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
        async with self._slots:
            result = await self._post(item)
        await self._record(item, result)

    async def _post(self, item: Claimed) -> AttemptResult:
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
                    .values(enabled=False)
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
