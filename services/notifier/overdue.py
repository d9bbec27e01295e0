"""Marks filed requests that passed Microsoft's first-response target, and tells the partner."""

from __future__ import annotations

import asyncio
import logging

from sqlalchemy import select

from shared import microsoft_requests as lifecycle
from shared.db.base import utcnow
from shared.db.models import MicrosoftRequest
from shared.db.uow import UnitOfWorkFactory
from shared.periodic import run_every

log = logging.getLogger(__name__)


async def mark_overdue(uow_factory: UnitOfWorkFactory) -> int:
    now = utcnow()
    async with uow_factory() as uow:
        late = list(
            await uow.session.scalars(
                select(MicrosoftRequest)
                .where(
                    MicrosoftRequest.first_response_due_at < now,
                    MicrosoftRequest.first_response_at.is_(None),
                    MicrosoftRequest.overdue_at.is_(None),
                    MicrosoftRequest.status != "closed",
                    MicrosoftRequest.superseded_by_id.is_(None),
                )
                .limit(500)
                .with_for_update(skip_locked=True)
            )
        )
        for request in late:
            request.overdue_at = now
            await lifecycle.announce(uow.session, request, now=now, changed=["overdue"])
        await uow.commit()
    return len(late)


async def run_overdue_sweep(
    uow_factory: UnitOfWorkFactory, interval_s: float, stop: asyncio.Event
) -> None:

    async def sweep() -> None:
        marked = await mark_overdue(uow_factory)
        if marked:
            log.warning("%d Microsoft requests passed their first-response target", marked)

    await run_every(interval_s, stop, sweep, logger=log, what="overdue sweep")
