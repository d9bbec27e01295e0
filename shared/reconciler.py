"""Re-drives issues stuck in a state past a timeout by re-publishing the same event.

With the inbox on the consumer side this is safe to run anywhere and more than once: an event
that was in fact processed is skipped by event id.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import timedelta

from sqlalchemy import func, select, update

from shared.db.base import utcnow
from shared.db.models import Issue, OutboxMessage
from shared.db.uow import UnitOfWorkFactory
from shared.events.models import IssueClassified, IssueReceived
from shared.observability import metrics
from shared.periodic import run_every
from shared.settings import ReconcilerSettings
from shared.vocabulary import IssueStatus

log = logging.getLogger(__name__)

# A status an issue must not stay in, and the event whose processing moves it on.
STUCK_STATES = {
    IssueStatus.RECEIVED: IssueReceived.TYPE,
    IssueStatus.CLASSIFIED: IssueClassified.TYPE,
}
_BATCH = 500


async def reconcile_once(uow_factory: UnitOfWorkFactory, settings: ReconcilerSettings) -> int:
    """Mark the outbox rows of stuck issues unsent again; return how many were re-driven.

    Each stuck issue's latest event of the kind that moves it on is re-driven, and only when
    it was sent more than ``stuck_after_s`` ago, so it is re-published at most once per
    timeout.
    """
    cutoff = utcnow() - timedelta(seconds=settings.stuck_after_s)
    total = 0
    async with uow_factory() as uow:
        for status, event_type in STUCK_STATES.items():
            stuck = await uow.session.scalars(
                select(Issue.id)
                .where(Issue.status == status, Issue.updated_at < cutoff)
                .order_by(Issue.updated_at)
                .limit(_BATCH)
            )
            ids = [str(issue_id) for issue_id in stuck]
            if not ids:
                continue
            # Only each issue's latest announcement: an issue classified again (see
            # shared.issue_state.reopen) has an earlier one, about the text it had then.
            latest = (
                select(func.max(OutboxMessage.id))
                .where(
                    OutboxMessage.aggregate_id.in_(ids),
                    OutboxMessage.event_type == event_type,
                )
                .group_by(OutboxMessage.aggregate_id)
            )
            result = await uow.session.execute(
                update(OutboxMessage)
                .where(OutboxMessage.id.in_(latest), OutboxMessage.sent_at < cutoff)
                .values(sent_at=None, claimed_until=None)
            )
            count = int(getattr(result, "rowcount", 0) or 0)
            if count:
                metrics.RECONCILED.labels(status=status.value).inc(count)
                log.warning("re-driving %d issues stuck in %s", count, status.value)
            total += count
        await uow.commit()
    return total


async def run_reconciler(
    uow_factory: UnitOfWorkFactory,
    settings: ReconcilerSettings,
    stop: asyncio.Event,
    *,
    on_redrive: Callable[[], None] | None = None,
) -> None:

    async def reconcile() -> None:
        redriven = await reconcile_once(uow_factory, settings)
        if redriven and on_redrive is not None:
            on_redrive()

    await run_every(settings.interval_s, stop, reconcile, logger=log, what="reconciler pass")
