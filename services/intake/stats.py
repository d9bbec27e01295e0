"""An ops dashboard's front page: how issues were routed over a window, and what waits."""

from __future__ import annotations

import re
import uuid
from collections import Counter
from datetime import datetime, timedelta

from pydantic import BaseModel, Field
from sqlalchemy import exists, func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from shared.db.base import utcnow
from shared.db.models import Classification, Issue, IssueEvent
from shared.vocabulary import IssueStatus, Outcome, Vehicle

WINDOW_PATTERN = r"^[1-9][0-9]{0,3}[mhd]$"
MAX_WINDOW = timedelta(days=90)
UNROUTED = (IssueStatus.RECEIVED.value, IssueStatus.CLASSIFIED.value)
RECENT = 10
NONE_KEY = "none"


def parse_window(text: str) -> timedelta:
    """``15m``, ``24h``, ``7d`` → a duration; ``ValueError`` past 90 days or when malformed."""
    match = re.fullmatch(r"([1-9][0-9]{0,3})([mhd])", text)
    if match is None:
        raise ValueError("a window is a number and m, h or d, e.g. 24h")
    amount, unit = int(match[1]), match[2]
    window = {"m": timedelta(minutes=amount), "h": timedelta(hours=amount)}.get(
        unit, timedelta(days=amount)
    )
    if window > MAX_WINDOW:
        raise ValueError("the window is at most 90 days")
    return window


class Unrouted(BaseModel):
    count: int = Field(description="Issues received or classified but not routed yet (any age).")
    oldest_issue_id: uuid.UUID | None
    oldest_status: IssueStatus | None
    oldest_age_s: float | None = Field(description="Seconds since the oldest one was received.")


class RoutedIssue(BaseModel):
    id: uuid.UUID
    external_ref: str
    service: str
    outcome: Outcome | None
    vehicle: Vehicle | None
    language: str | None
    routed_at: datetime
    took_s: float = Field(description="From acceptance to routing.")


class Stats(BaseModel):
    """Counts over the window (issues received in it), the routing backlog, the latest routed."""

    window: str
    since: datetime
    until: datetime
    received: int
    by_status: dict[str, int]
    by_outcome: dict[str, int] = Field(description="Classified issues; key `none`: not yet.")
    by_vehicle: dict[str, int] = Field(description="Escalations to Microsoft by vehicle.")
    by_service: dict[str, int]
    by_language: dict[str, int] = Field(description="Detected language; `none`: undetermined.")
    by_category: dict[str, int]
    unrouted: Unrouted
    recent_routed: list[RoutedIssue]


async def gather(
    session: AsyncSession, *, partner_id: uuid.UUID, window: str, span: timedelta
) -> Stats:
    """``span`` is ``window`` parsed (see :func:`parse_window`)."""
    until = utcnow()
    since = until - span
    grouped = (
        Issue.status,
        Issue.service,
        Issue.category,
        Classification.outcome,
        Classification.vehicle,
        Classification.language,
        Classification.category,
    )
    rows = (
        await session.execute(
            select(*grouped, func.count())
            .outerjoin(Classification, Classification.issue_id == Issue.id)
            .where(Issue.partner_id == partner_id, Issue.created_at >= since)
            .group_by(*grouped)
        )
    ).all()
    counts: dict[str, Counter[str]] = {
        name: Counter() for name in ("status", "outcome", "vehicle", "service", "language", "cat")
    }
    for status, service, given, outcome, vehicle, language, inferred, n in rows:
        counts["status"][status] += n
        counts["service"][service] += n
        counts["cat"][inferred or given or NONE_KEY] += n
        counts["outcome"][outcome or NONE_KEY] += n
        if outcome is not None:
            counts["language"][language or NONE_KEY] += n
        if vehicle is not None:
            counts["vehicle"][vehicle] += n
    return Stats(
        window=window,
        since=since,
        until=until,
        received=sum(counts["status"].values()),
        by_status=_sorted(counts["status"]),
        by_outcome=_sorted(counts["outcome"]),
        by_vehicle=_sorted(counts["vehicle"]),
        by_service=_sorted(counts["service"]),
        by_language=_sorted(counts["language"]),
        by_category=_sorted(counts["cat"]),
        unrouted=await _unrouted(session, partner_id=partner_id, now=until),
        recent_routed=await _recent(session, partner_id=partner_id),
    )


def _sorted(counter: Counter[str]) -> dict[str, int]:
    return dict(sorted(counter.items(), key=lambda item: (-item[1], item[0])))


async def _unrouted(session: AsyncSession, *, partner_id: uuid.UUID, now: datetime) -> Unrouted:
    waiting = Issue.partner_id == partner_id, Issue.status.in_(UNROUTED)
    count = await session.scalar(select(func.count()).select_from(Issue).where(*waiting)) or 0
    oldest = (
        await session.execute(
            select(Issue.id, Issue.status, Issue.created_at)
            .where(*waiting)
            .order_by(Issue.created_at)
            .limit(1)
        )
    ).first()
    if oldest is None:
        return Unrouted(count=count, oldest_issue_id=None, oldest_status=None, oldest_age_s=None)
    return Unrouted(
        count=count,
        oldest_issue_id=oldest.id,
        oldest_status=IssueStatus(oldest.status),
        oldest_age_s=round((now - oldest.created_at).total_seconds(), 3),
    )


async def _recent(session: AsyncSession, *, partner_id: uuid.UUID) -> list[RoutedIssue]:
    """Each issue once, at its latest routing, with the decision it stands on; an issue
    classified again since (see ``shared.issue_state.reopen``) and not yet routed is left out,
    its earlier decision being dropped."""
    routed = IssueStatus.ROUTED.value
    later = aliased(IssueEvent)
    routed_again = exists().where(
        later.issue_id == IssueEvent.issue_id, later.status == routed, later.id > IssueEvent.id
    )
    rows = await session.execute(
        select(Issue, IssueEvent.at, Classification)
        .join(IssueEvent, IssueEvent.issue_id == Issue.id)
        .outerjoin(Classification, Classification.issue_id == Issue.id)
        .where(
            Issue.partner_id == partner_id,
            Issue.status.not_in(UNROUTED),
            IssueEvent.status == routed,
            ~routed_again,
        )
        .order_by(IssueEvent.at.desc(), IssueEvent.id.desc())
        .limit(RECENT)
    )
    return [
        RoutedIssue(
            id=issue.id,
            external_ref=issue.external_ref,
            service=issue.service,
            outcome=Outcome(found.outcome) if found else None,
            vehicle=Vehicle(found.vehicle) if found and found.vehicle else None,
            language=found.language if found else None,
            routed_at=routed_at,
            took_s=round((routed_at - issue.created_at).total_seconds(), 3),
        )
        for issue, routed_at, found in rows
    ]
