"""Small factories: partners with keys, issue bodies, database probes."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import delete, text, update
from sqlalchemy.ext.asyncio import AsyncEngine

from services import admin
from services.intake.accept_writes import accept_rows, store_many
from shared.db.base import utcnow
from shared.db.direct import Direct
from shared.db.engine import create_engine, create_session_factory
from shared.db.models import (
    Issue,
    OutageCluster,
    OutboxMessage,
    OutboxPending,
    WebhookDelivery,
    WebhookSubscription,
)
from shared.db.uow import UnitOfWorkFactory
from shared.events.models import IssueClassified, IssueReceived, IssueUpdated
from shared.kafka.outbox import RELAY, OutboxRelay, enqueue
from shared.settings import DatabaseSettings, KafkaSettings, OutboxSettings
from shared.vocabulary import Category, CspModel, IssueStatus, Outcome, Role, Severity, Vehicle
from tests.support.broker import kafka


@dataclass(frozen=True)
class SeededPartner:
    id: uuid.UUID
    api_key: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.api_key}"}


def received_event(partner_id: uuid.UUID, ref: str) -> IssueReceived:
    """What the intake announces for PSA ticket ``ref`` (a new issue id each time)."""
    return IssueReceived(
        issue_id=uuid.uuid4(),
        partner_id=partner_id,
        external_ref=ref,
        title="Outlook cannot connect",
        description="Since 9:00 nobody can send mail.",
        service="Exchange Online",
        severity=Severity.MODERATE,
        contact={"name": "Ana", "email": "ana@example.com"},
        received_at=utcnow(),
    )


def classified_event(
    issue_id: uuid.UUID, partner_id: uuid.UUID, outcome: Outcome
) -> IssueClassified:
    """The classifier's decision on an issue: escalated issues go to Microsoft through the
    partner's vehicle, other outcomes name the partner's role."""
    escalated = outcome is Outcome.ESCALATED_TO_MICROSOFT
    return IssueClassified(
        issue_id=issue_id,
        partner_id=partner_id,
        external_ref="x",
        category=Category.SERVICE_UNAVAILABLE,
        category_source="given",
        outcome=outcome,
        vehicle=Vehicle.PARTNER_CLOUD_SUPPORT if escalated else None,
        partner_role=None if escalated else Role.ADMIN_AGENT,
        reasons=["r"],
        rule_id="r",
        confidence=1.0,
        severity=Severity.CRITICAL,
        service="Exchange Online",
        classified_at=utcnow(),
    )


async def accepted_issues(
    engine: AsyncEngine, partner_id: uuid.UUID, refs: list[str]
) -> list[IssueReceived]:
    """PSA tickets ``refs`` stored as the intake accepts them (issue, first step, outbox row);
    their events, in that order."""
    events = [received_event(partner_id, ref) for ref in refs]
    await store_many(Direct(engine), [accept_rows(e, service="t", detail="-") for e in events])
    return events


def updated_event(partner_id: uuid.UUID) -> IssueUpdated:
    """An event any consumer of ``issues.updated`` can take: the issue needs no row."""
    return IssueUpdated(
        issue_id=uuid.uuid4(),
        partner_id=partner_id,
        status=IssueStatus.RESOLVED,
        updated_at=utcnow(),
    )


async def queued_updates(
    engine: AsyncEngine, database_url: str, count: int
) -> tuple[UnitOfWorkFactory, uuid.UUID, list[str]]:
    """A new partner's ``count`` :func:`updated_event` s committed to the outbox, unsent: the
    units of work they were written with, the partner's id and their event ids."""
    partner = await seed_partner(database_url)
    uows = UnitOfWorkFactory(create_session_factory(engine))
    async with uows() as uow:
        ids = [
            enqueue(uow.session, updated_event(partner.id), service="test") for _ in range(count)
        ]
        await uow.commit()
    return uows, partner.id, ids


async def seed_partner(
    database_url: str,
    *,
    csp_model: CspModel = CspModel.DIRECT_BILL,
    vehicles: tuple[Vehicle, ...] = (Vehicle.PARTNER_CLOUD_SUPPORT,),
    role: Role = Role.ADMIN_AGENT,
    locale: str = "en",
) -> SeededPartner:
    engine = create_engine(DatabaseSettings(url=database_url))
    try:
        uow_factory = UnitOfWorkFactory(create_session_factory(engine))
        partner_id = await admin.create_partner(
            uow_factory,
            name=f"partner-{uuid.uuid4().hex[:6]}",
            csp_model=csp_model,
            vehicles=list(vehicles),
            locale=locale,
            indirect_provider={"name": "Contoso Distribution"}
            if csp_model is CspModel.INDIRECT_RESELLER
            else None,
        )
        key = await admin.create_key(uow_factory, partner_id=partner_id, role=role, pepper="")
    finally:
        await engine.dispose()
    return SeededPartner(partner_id, key.plaintext)


WEBHOOK_SECRET = "whsec_" + "A" * 32


async def seed_webhook(
    engine: AsyncEngine,
    partner: SeededPartner,
    deliveries: dict[str, dict[str, Any]] | None = None,
    *,
    url: str = "https://8.8.8.8/hooks",
    disabled_reason: str | None = None,
) -> uuid.UUID:
    """A subscription signing with :data:`WEBHOOK_SECRET`, with one delivery per entry of
    ``deliveries`` (name: its columns)."""
    subscription_id = uuid.uuid4()
    async with create_session_factory(engine)() as session:
        session.add(
            WebhookSubscription(
                id=subscription_id,
                partner_id=partner.id,
                url=url,
                secret=WEBHOOK_SECRET,
                enabled=disabled_reason is None,
                disabled_reason=disabled_reason,
            )
        )
        await session.flush()
        for name, columns in (deliveries or {}).items():
            session.add(
                WebhookDelivery(
                    id=f"msg_{name}_{subscription_id.hex}",
                    subscription_id=subscription_id,
                    partner_id=partner.id,
                    event_id=f"evt_{name}_{uuid.uuid4().hex}",
                    event_type="issue.escalated_to_microsoft",
                    body="{}",
                    **columns,
                )
            )
        await session.commit()
    return subscription_id


def issue_body(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "external_ref": f"PSA-{uuid.uuid4().hex[:10]}",
        "title": "Teams calls drop",
        "description": "Calls drop after a minute for every user.",
        "service": "Microsoft Teams",
        "category": "bug",
        "severity": "moderate",
    }
    body.update(overrides)
    return body


async def scalar(engine: AsyncEngine, sql: str, **params: Any) -> Any:
    async with engine.connect() as connection:
        return (await connection.execute(text(sql), params)).scalar()


async def routed_issues(engine: AsyncEngine) -> int:
    """How many issues have reached ``routed``."""
    return int(await scalar(engine, "SELECT count(*) FROM issues WHERE status = 'routed'"))


async def rows(engine: AsyncEngine, sql: str, **params: Any) -> list[Any]:
    async with engine.connect() as connection:
        return list((await connection.execute(text(sql), params)).all())


def relay_for(engine: AsyncEngine, uows: UnitOfWorkFactory, settings: KafkaSettings) -> OutboxRelay:
    """A relay with the default outbox settings, as a test's service would run it."""
    return OutboxRelay(
        uows, Direct(engine), kafka=settings, settings=OutboxSettings(), service="test"
    )


async def running_relay(
    engine: AsyncEngine, bootstrap_servers: str, topic_prefix: str, **settings: Any
) -> OutboxRelay:
    """A relay whose broker has answered, as if its loop were running: it takes rows in hand.
    The tests run its passes themselves."""
    relay = OutboxRelay(
        UnitOfWorkFactory(create_session_factory(engine)),
        Direct(engine),
        kafka=kafka(bootstrap_servers, topic_prefix),
        settings=OutboxSettings(**settings),
        service="test",
    )
    await relay._ensure_producer()
    relay.broker_available = relay._running = True
    return relay


def relay_sessions(engine: AsyncEngine, relay: OutboxRelay) -> UnitOfWorkFactory:
    """Units of work whose outbox rows are leased to ``relay`` and handed to it on commit."""
    return UnitOfWorkFactory(create_session_factory(engine, info={RELAY: relay}))


PUBLISHED = "id NOT IN (SELECT id FROM outbox_pending)"


async def all_sent(engine: AsyncEngine, n: int) -> bool:
    """Whether exactly ``n`` outbox rows are marked sent (off the queue), for ``eventually``."""
    return int(await scalar(engine, f"SELECT count(*) FROM outbox WHERE {PUBLISHED}")) == n


async def relay_all(
    engine: AsyncEngine,
    uows: UnitOfWorkFactory,
    settings: KafkaSettings,
    n: int,
    *,
    timeout: float = 30,
) -> None:
    """Run a relay (:func:`relay_for`) until exactly ``n`` outbox rows are marked sent (within
    ``timeout`` seconds), then stop it."""
    relay = relay_for(engine, uows, settings)
    stop = asyncio.Event()
    task = asyncio.create_task(relay.run(stop))
    try:
        await eventually(lambda: all_sent(engine, n), timeout=timeout)
    finally:
        stop.set()
        await task


async def outbox_states(engine: AsyncEngine) -> dict[str, tuple[bool, bool, int | None]]:
    """Each outbox row's event id: whether it is marked sent (off the queue), whether it is
    leased, and how often it was claimed (as queued; None once sent: the count goes with its
    queue entry)."""
    found = await rows(
        engine,
        "SELECT o.event_id, p.id IS NULL, p.claimed_until IS NOT NULL, p.attempts"
        " FROM outbox o LEFT JOIN outbox_pending p ON p.id = o.id",
    )
    return {e: (bool(sent), bool(leased), a) for e, sent, leased, a in found}


async def eventually(
    check: Callable[[], Awaitable[bool]],
    *,
    timeout: float = 30,
    interval: float = 0.2,
    message: str | Callable[[], str] = "condition not met",
) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not await check():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(message() if callable(message) else message)
        await asyncio.sleep(interval)


async def stuck_in_received(
    engine: AsyncEngine, database_url: str, *, announcements: int = 1
) -> tuple[UnitOfWorkFactory, uuid.UUID]:
    """An issue received ten minutes ago whose ``issues.received`` rows (one per announcement:
    the first, then one per PSA answer) were sent then, and lost by the broker."""
    partner = await seed_partner(database_url)
    uows = UnitOfWorkFactory(create_session_factory(engine))
    long_ago = utcnow() - timedelta(minutes=10)
    issue_id = uuid.uuid4()
    async with uows() as uow:
        uow.session.add(
            Issue(
                id=issue_id,
                partner_id=partner.id,
                external_ref=f"STUCK-{issue_id}",
                title="t",
                service="Exchange Online",
                status="received",
                created_at=long_ago,
                updated_at=long_ago,
            )
        )
        for _ in range(announcements):
            enqueue(
                uow.session,
                IssueUpdated(
                    issue_id=issue_id,
                    partner_id=partner.id,
                    status=IssueStatus.RECEIVED,
                    updated_at=long_ago,
                ),
                service="test",
            )
        await uow.commit()
    async with uows() as uow:
        written = (
            update(OutboxMessage)
            .where(OutboxMessage.aggregate_id == str(issue_id))
            .values(event_type="csp.issue.received", created_at=long_ago)
            .returning(OutboxMessage.id)
        )
        ids = list((await uow.session.execute(written)).scalars())
        await uow.session.execute(delete(OutboxPending).where(OutboxPending.id.in_(ids)))
        await uow.commit()
    return uows, issue_id


def open_cluster(cluster_id: str, key: tuple[uuid.UUID, str, str]) -> OutageCluster:
    """An open outage cluster on correlation key (partner id, service key, region key), seen
    just now."""
    partner_id, service_key, region_key = key
    return OutageCluster(
        id=cluster_id,
        partner_id=partner_id,
        service_key=service_key,
        region_key=region_key,
        service=service_key,
        region=region_key,
        first_seen_at=utcnow(),
        last_seen_at=utcnow(),
    )
