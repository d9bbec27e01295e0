"""Re-drives issues stuck in a state past a timeout by re-publishing the same event.

With the inbox on the consumer side this is safe to run anywhere and more than once: an event
that was in fact processed is skipped by event id.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import NamedTuple

from sqlalchemy import func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from shared.db.base import table_of, utcnow
from shared.db.models import Issue, OutboxMessage, OutboxPending
from shared.db.uow import UnitOfWorkFactory
from shared.events.models import IssueClassified, IssueEvent, IssueReceived
from shared.kafka.backlog import GroupBacklog
from shared.kafka.outbox import published_before
from shared.kafka.topics import CLASSIFIER, NOTIFIER
from shared.observability import metrics
from shared.periodic import run_every
from shared.settings import ReconcilerSettings
from shared.vocabulary import IssueStatus

log = logging.getLogger(__name__)

# A status an issue must not stay in: the event whose processing moves it on, and the consumer
# that processes it.
STUCK_STATES: dict[IssueStatus, tuple[type[IssueEvent], str]] = {
    IssueStatus.RECEIVED: (IssueReceived, CLASSIFIER),
    IssueStatus.CLASSIFIED: (IssueClassified, NOTIFIER),
}
_BATCH = 500


async def reconcile_once(
    uow_factory: UnitOfWorkFactory,
    settings: ReconcilerSettings,
    backlog: GroupBacklog | None = None,
) -> int:
    """Queue the outbox rows of stuck issues for publishing again; return how many were
    re-driven.

    Each stuck issue's latest event of the kind that moves it on is re-driven, and only when
    it has been published and was written, or last re-driven, more than ``stuck_after_s`` ago,
    so it is re-published at most once per timeout. With a ``backlog``, an issue whose event is
    still queued for its consumer (its group has not reached the records published since the
    issue's status change, see :mod:`shared.kafka.backlog`) waits instead: a consumer that is
    late is given no copies to skip. It waits ``queued_wait_s`` at most: past that it is
    re-driven whatever the broker says, so a broker that answers wrongly (one that muddled a
    partition on a restart, say) delays an issue but cannot hold it for good.
    """
    cutoff = utcnow() - timedelta(seconds=settings.stuck_after_s)
    overdue = cutoff - timedelta(seconds=settings.queued_wait_s)
    async with uow_factory() as uow:
        stuck = {
            status: [
                _Stuck(str(issue_id), updated_at, bool(late))
                for issue_id, updated_at, late in await uow.session.execute(
                    select(Issue.id, Issue.updated_at, Issue.updated_at < overdue)
                    .where(Issue.status == status, Issue.updated_at < cutoff)
                    .order_by(Issue.updated_at)
                    .limit(_BATCH)
                )
            ]
            for status in STUCK_STATES
        }
    due: dict[IssueStatus, list[str]] = {}
    for status, issues in stuck.items():
        ids = [issue.id for issue in issues]
        if ids and backlog is not None:
            ids = await _not_queued(backlog, status, issues)
        if ids:
            due[status] = ids
    if not due:
        return 0
    total = 0
    async with uow_factory() as uow:
        for status, ids in due.items():
            count = await _queue_again(uow.session, STUCK_STATES[status][0].TYPE, ids, cutoff)
            if count:
                metrics.RECONCILED.labels(status=status.value).inc(count)
                log.warning("re-driving %d issues stuck in %s", count, status.value)
            total += count
        await uow.commit()
    return total


async def _queue_again(
    session: AsyncSession, event_type: str, ids: list[str], cutoff: datetime
) -> int:
    """Queue again (:class:`OutboxPending`) each issue's latest outbox row of ``event_type``,
    unleased, where it is published and was written, or last queued again, before ``cutoff``;
    how many were.

    Only the latest: an issue classified again (see shared.issue_state.reopen) has an earlier
    one, about the text it had then."""
    outbox, pending = table_of(OutboxMessage), table_of(OutboxPending)
    latest = (
        select(func.max(outbox.c.id))
        .where(outbox.c.aggregate_id.in_(ids), outbox.c.event_type == event_type)
        .group_by(outbox.c.aggregate_id)
    )
    chosen = list(
        (
            await session.execute(
                select(outbox.c.id).where(outbox.c.id.in_(latest), published_before(cutoff))
            )
        ).scalars()
    )
    if not chosen:
        return 0
    await session.execute(
        update(outbox).where(outbox.c.id.in_(chosen)).values(redriven_at=utcnow())
    )
    await session.execute(
        insert(pending), [{"id": row_id, "claimed_until": None, "attempts": 0} for row_id in chosen]
    )
    return len(chosen)


class _Stuck(NamedTuple):
    """An issue past the timeout: since when (no later than its event's publication), and
    whether it has also waited out ``queued_wait_s``."""

    id: str
    since: datetime
    overdue: bool


async def _not_queued(
    backlog: GroupBacklog, status: IssueStatus, issues: list[_Stuck]
) -> list[str]:
    """Those of ``issues``, stuck in ``status``, whose event is not certainly still waiting for
    its consumer, or that are overdue; all of them when the broker cannot say."""
    event, consumer = STUCK_STATES[status]
    queued = await backlog.queued(event.TOPIC, consumer, {i.id: i.since for i in issues})
    if queued is None:
        return [issue.id for issue in issues]
    waited_out = {issue.id for issue in issues if issue.overdue and issue.id in queued}
    waiting = len(queued) - len(waited_out)
    if waiting:
        metrics.RECONCILE_QUEUED.labels(status=status.value).inc(waiting)
        log.info(
            "%d issues stuck in %s are still queued for the %s consumer: not re-driven",
            waiting,
            status.value,
            consumer,
        )
    if waited_out:
        log.warning(
            "%d issues stuck in %s have been queued for the %s consumer for too long: "
            "waited for no longer",
            len(waited_out),
            status.value,
            consumer,
        )
    return [issue.id for issue in issues if issue.id not in queued or issue.id in waited_out]


async def run_reconciler(
    uow_factory: UnitOfWorkFactory,
    settings: ReconcilerSettings,
    stop: asyncio.Event,
    *,
    on_redrive: Callable[[], None] | None = None,
    backlog: GroupBacklog | None = None,
) -> None:

    async def reconcile() -> None:
        redriven = await reconcile_once(uow_factory, settings, backlog)
        if redriven and on_redrive is not None:
            on_redrive()

    await run_every(settings.interval_s, stop, reconcile, logger=log, what="reconciler pass")
