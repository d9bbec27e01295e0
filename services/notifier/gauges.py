"""Gauges read from the database: Microsoft requests by status, overdue ones, webhook backlog.

Every notifier instance reports the same figures; dashboards take ``max`` across instances.
"""

from __future__ import annotations

import asyncio
import logging

from sqlalchemy import func, select

from shared.db.models import MicrosoftRequest, WebhookDelivery
from shared.db.uow import UnitOfWorkFactory
from shared.microsoft_requests import STATUSES
from shared.observability import metrics
from shared.periodic import run_every

log = logging.getLogger(__name__)

DELIVERY_STATES = ("pending", "succeeded", "failed", "exhausted")


async def report_once(uow_factory: UnitOfWorkFactory) -> None:
    async with uow_factory() as uow:
        by_status: dict[str, int] = {
            status: count
            for status, count in await uow.session.execute(
                select(MicrosoftRequest.status, func.count())
                .where(MicrosoftRequest.superseded_by_id.is_(None))
                .group_by(MicrosoftRequest.status)
            )
        }
        overdue = await uow.session.scalar(
            select(func.count()).where(
                MicrosoftRequest.overdue_at.is_not(None),
                MicrosoftRequest.first_response_at.is_(None),
                MicrosoftRequest.status != "closed",
                MicrosoftRequest.superseded_by_id.is_(None),
            )
        )
        deliveries: dict[str, int] = {
            state: count
            for state, count in await uow.session.execute(
                select(WebhookDelivery.status, func.count()).group_by(WebhookDelivery.status)
            )
        }
    for status in {*STATUSES, *by_status}:
        metrics.MICROSOFT_REQUESTS_BY_STATUS.labels(status).set(by_status.get(status, 0))
    metrics.MICROSOFT_REQUESTS_OVERDUE.set(overdue or 0)
    for state in {*DELIVERY_STATES, *deliveries}:
        metrics.WEBHOOK_DELIVERIES.labels(state).set(deliveries.get(state, 0))


async def run_gauges(
    uow_factory: UnitOfWorkFactory, interval_s: float, stop: asyncio.Event
) -> None:
    await run_every(
        interval_s,
        stop,
        lambda: report_once(uow_factory),
        logger=log,
        what="notifier gauges refresh",
    )
