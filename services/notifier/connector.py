"""The Partner Center connector: files queued Microsoft request records and follows their status.

A record is claimed with a lease in one transaction, sent outside any transaction, and the
answer recorded in another. The create call always carries the record's id as
``MS-RequestId``, so a retry after a crash or a timeout is the same call to Partner Center,
not a second request. Every change it makes produces ``microsoft_request.updated``.
"""

from __future__ import annotations

import asyncio
import logging
import random
import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from services.notifier.partner_center import (
    PartnerCenterClient,
    PartnerCenterError,
    PartnerCenterRejected,
    ServiceRequest,
)
from shared import microsoft_requests as lifecycle
from shared.db.base import utcnow
from shared.db.models import MicrosoftRequest
from shared.db.uow import UnitOfWorkFactory
from shared.observability import metrics
from shared.periodic import run_every
from shared.settings import PartnerCenterSettings

log = logging.getLogger(__name__)
AUTHOR = "partner-center"
# Statuses only Microsoft sets: reaching one of them counts as Microsoft's first response.
RESPONDED = frozenset({"attention_needed", "closed"})


@dataclass(frozen=True, slots=True)
class SubmissionPolicy:
    """Decides, when a record is opened, whether the connector files it."""

    enabled: bool
    vehicles: frozenset[str]
    partner_ids: frozenset[str]

    @classmethod
    def from_settings(cls, settings: PartnerCenterSettings) -> SubmissionPolicy:
        return cls(
            enabled=settings.enabled,
            vehicles=frozenset(settings.vehicles),
            partner_ids=frozenset(p.lower() for p in settings.partner_ids),
        )

    def covers(self, partner_id: uuid.UUID) -> bool:
        return not self.partner_ids or str(partner_id) in self.partner_ids

    def initial(
        self, *, partner_id: uuid.UUID, vehicle: str, support_topic_id: str | None
    ) -> tuple[str, str | None]:
        """``(submission, reason)``: ``queued`` or ``manual`` with why a person files it."""
        if not self.enabled or not self.covers(partner_id):
            return "manual", None
        if vehicle not in self.vehicles:
            return "manual", f"{vehicle} requests are not filed through Partner Center"
        if not support_topic_id:
            return (
                "manual",
                "no support topic is mapped for this service (MICROSOFT_SUPPORT_TOPICS)",
            )
        return "queued", None


@dataclass(frozen=True, slots=True)
class _Claim:
    id: uuid.UUID
    agent_locale: str
    payload: dict[str, Any]
    attempt: int


class PartnerCenterConnector:
    def __init__(
        self,
        uow_factory: UnitOfWorkFactory,
        settings: PartnerCenterSettings,
        client: PartnerCenterClient,
    ) -> None:
        self._uow_factory = uow_factory
        self._settings = settings
        self._client = client
        self._policy = SubmissionPolicy.from_settings(settings)
        self._next_poll = 0.0

    async def run(self, stop: asyncio.Event) -> None:
        await run_every(
            self._settings.submit_interval_s,
            stop,
            self.pass_once,
            logger=log,
            what="Partner Center connector pass",
        )

    async def pass_once(self) -> None:
        """File what is queued; every poll interval (at most a minute), also read back what
        is filed."""
        await self.submit_once()
        loop = asyncio.get_running_loop()
        if loop.time() >= self._next_poll:
            self._next_poll = loop.time() + min(self._settings.poll_interval_s, 60.0)
            await self.poll_once()

    # -- filing ---------------------------------------------------------------------------

    async def submit_once(self) -> int:
        claims = await self._claim()
        await asyncio.gather(*(self._submit(claim) for claim in claims))
        return len(claims)

    async def _claim(self) -> list[_Claim]:
        now = utcnow()
        settings = self._settings
        lease = now + timedelta(
            seconds=(settings.timeout_s + settings.retry_cap_s) * settings.call_attempts + 30
        )
        async with self._uow_factory() as uow:
            rows = await uow.session.scalars(
                select(MicrosoftRequest)
                .where(
                    MicrosoftRequest.submission == "queued",
                    MicrosoftRequest.microsoft_id.is_(None),
                    MicrosoftRequest.superseded_by_id.is_(None),
                    (MicrosoftRequest.submission_next_at.is_(None))
                    | (MicrosoftRequest.submission_next_at <= now),
                    (MicrosoftRequest.submission_claimed_until.is_(None))
                    | (MicrosoftRequest.submission_claimed_until < now),
                )
                .order_by(MicrosoftRequest.created_at)
                .limit(settings.batch_size)
                .with_for_update(skip_locked=True)
            )
            claims = []
            for record in rows:
                record.submission_claimed_until = lease
                record.submission_attempts += 1
                claims.append(
                    _Claim(
                        record.id,
                        record.agent_locale,
                        dict(record.partner_center_payload),
                        record.submission_attempts,
                    )
                )
            await uow.commit()
        return claims

    async def _submit(self, claim: _Claim) -> None:
        try:
            filed = await self._client.create(
                agent_locale=claim.agent_locale, body=claim.payload, request_id=claim.id
            )
        except PartnerCenterRejected as exc:
            await self._not_filed(claim, str(exc), give_up=True)
        except PartnerCenterError as exc:
            give_up = claim.attempt >= self._settings.max_submissions
            await self._not_filed(claim, str(exc), give_up=give_up)
        else:
            await self._filed(claim, filed)

    async def _filed(self, claim: _Claim, filed: ServiceRequest) -> None:
        now = utcnow()
        async with self._uow_factory() as uow:
            record = await _locked(uow.session, claim.id)
            record.submission = "submitted"
            record.submission_claimed_until = None
            record.submission_error = None
            status = _status(filed, record.status)
            if record.microsoft_id and record.microsoft_id != filed.id:
                # Someone recorded another number meanwhile; keep theirs, note Microsoft's.
                changed = lifecycle.apply_update(
                    record,
                    now=now,
                    note=f"Partner Center also filed this as {filed.id}",
                    author=AUTHOR,
                )
            else:
                changed = lifecycle.apply_update(
                    record,
                    now=now,
                    status=status,
                    microsoft_id=filed.id,
                    note=f"filed in Partner Center as {filed.id}",
                    author=AUTHOR,
                )
            record.polled_at = now
            await lifecycle.announce(uow.session, record, now=now, changed=["submission", *changed])
            await uow.commit()
        metrics.PARTNER_CENTER_SUBMISSIONS.labels(outcome="submitted").inc()
        log.info("Microsoft request %s filed in Partner Center as %s", claim.id, filed.id)

    async def _not_filed(self, claim: _Claim, error: str, *, give_up: bool) -> None:
        now = utcnow()
        async with self._uow_factory() as uow:
            record = await _locked(uow.session, claim.id)
            record.submission_claimed_until = None
            record.submission_error = error[:500]
            if give_up:
                record.submission = "failed"
                changed = lifecycle.apply_update(
                    record,
                    now=now,
                    note=f"Partner Center did not take it ({error[:200]}); file it by hand",
                    author=AUTHOR,
                )
                await lifecycle.announce(
                    uow.session, record, now=now, changed=["submission", *changed]
                )
            else:
                record.submission_next_at = now + timedelta(seconds=self._backoff(claim.attempt))
            await uow.commit()
        if give_up:
            metrics.PARTNER_CENTER_SUBMISSIONS.labels(outcome="failed").inc()
            log.error("Microsoft request %s not filed in Partner Center: %s", claim.id, error)
        else:
            log.warning("Microsoft request %s: Partner Center unavailable (%s)", claim.id, error)

    def _backoff(self, attempt: int) -> float:
        step = min(3600.0, max(1.0, self._settings.retry_cap_s) * 2.0 ** (attempt - 1))
        return step * random.uniform(0.5, 1.0)

    # -- following ------------------------------------------------------------------------

    async def poll_once(self) -> int:
        """Read every open filed record not read within the poll interval; record changes."""
        now = utcnow()
        cutoff = now - timedelta(seconds=self._settings.poll_interval_s)
        async with self._uow_factory() as uow:
            due = [
                (record.id, record.microsoft_id, record.partner_id)
                for record in await uow.session.scalars(
                    select(MicrosoftRequest)
                    .where(
                        MicrosoftRequest.microsoft_id.is_not(None),
                        MicrosoftRequest.status != "closed",
                        MicrosoftRequest.vehicle.in_(self._policy.vehicles),
                        (MicrosoftRequest.polled_at.is_(None))
                        | (MicrosoftRequest.polled_at <= cutoff),
                    )
                    .order_by(MicrosoftRequest.polled_at.nulls_first())
                    .limit(self._settings.batch_size)
                )
            ]
        polled = 0
        for record_id, microsoft_id, partner_id in due:
            if microsoft_id is None or not self._policy.covers(partner_id):
                continue
            try:
                current = await self._client.get(microsoft_id)
            except PartnerCenterError as exc:
                log.warning("Partner Center request %s not read: %s", microsoft_id, exc)
                await self._mark_polled(record_id, error=str(exc))
                continue
            await self._observed(record_id, current)
            polled += 1
        return polled

    async def _observed(self, record_id: uuid.UUID, current: ServiceRequest) -> None:
        now = utcnow()
        async with self._uow_factory() as uow:
            record = await _locked(uow.session, record_id)
            record.polled_at = now
            status = _status(current, record.status)
            changed = lifecycle.apply_update(
                record,
                now=now,
                status=status,
                author=AUTHOR,
                responded=status in RESPONDED and status != record.status,
            )
            if changed:
                await lifecycle.announce(uow.session, record, now=now, changed=changed)
            await uow.commit()

    async def _mark_polled(self, record_id: uuid.UUID, *, error: str) -> None:
        async with self._uow_factory() as uow:
            record = await _locked(uow.session, record_id)
            record.polled_at = utcnow()
            record.submission_error = error[:500]
            await uow.commit()


async def _locked(session: AsyncSession, record_id: uuid.UUID) -> MicrosoftRequest:
    record: MicrosoftRequest = (
        await session.scalars(
            select(MicrosoftRequest).where(MicrosoftRequest.id == record_id).with_for_update()
        )
    ).one()
    return record


def _status(request: ServiceRequest, fallback: str) -> str:
    try:
        return lifecycle.parse_status(request.status)
    except ValueError:
        log.warning("Partner Center request %s has unknown status %r", request.id, request.status)
        return fallback
