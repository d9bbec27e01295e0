"""Outage correlation on a real database: thresholds, windows, out-of-order reports."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncEngine

from services.classifier.correlation import Policy, Report, correlate
from shared.db.engine import create_session_factory
from shared.db.models import Issue
from shared.db.uow import UnitOfWorkFactory
from tests.support.factories import scalar, seed_partner

T0 = datetime(2026, 11, 21, 9, 0, tzinfo=UTC)
POLICY = Policy(enabled=True, min_tenants=3, window=timedelta(minutes=30))


async def report(
    uows: UnitOfWorkFactory,
    partner_id: uuid.UUID,
    *,
    tenant: str,
    at: datetime,
    region: str = "westeurope",
) -> str | None:
    """Record one issue and correlate it, in its own transaction; the cluster id, if any."""
    async with uows() as uow:
        issue = Issue(
            id=uuid.uuid4(),
            partner_id=partner_id,
            external_ref=uuid.uuid4().hex,
            title="down",
            service="Exchange Online",
            region=region,
            status="received",
            created_at=at,
            updated_at=at,
        )
        uow.session.add(issue)
        await uow.session.flush()
        result = await correlate(
            uow.session, Report(issue.id, partner_id, tenant, "Exchange Online", region, at), POLICY
        )
        await uow.commit()
    return result.cluster.id if result else None


async def test_the_third_distinct_tenant_forms_a_cluster_that_includes_the_first_two(
    engine: AsyncEngine, database_url: str
) -> None:
    partner = await seed_partner(database_url)
    uows = UnitOfWorkFactory(create_session_factory(engine))
    assert await report(uows, partner.id, tenant="a", at=T0) is None
    assert await report(uows, partner.id, tenant="a", at=T0 + timedelta(minutes=1)) is None
    assert await report(uows, partner.id, tenant="b", at=T0 + timedelta(minutes=2)) is None
    cluster = await report(uows, partner.id, tenant="c", at=T0 + timedelta(minutes=3))
    assert cluster is not None
    assert (
        await scalar(
            engine, "SELECT count(*) FROM cluster_signals WHERE cluster_id = :c", c=cluster
        )
        == 4
    )
    assert await scalar(engine, "SELECT tenants FROM outage_clusters") == 3
    later = await report(uows, partner.id, tenant="d", at=T0 + timedelta(minutes=20))
    assert later == cluster, "a later issue joins the open cluster"


async def test_reports_arriving_out_of_order_correlate_by_when_they_were_received(
    engine: AsyncEngine, database_url: str
) -> None:
    partner = await seed_partner(database_url)
    uows = UnitOfWorkFactory(create_session_factory(engine))
    assert await report(uows, partner.id, tenant="a", at=T0 + timedelta(minutes=25)) is None
    assert await report(uows, partner.id, tenant="b", at=T0) is None
    cluster = await report(uows, partner.id, tenant="c", at=T0 + timedelta(minutes=12))
    assert cluster is not None
    early = await report(uows, partner.id, tenant="e", at=T0 - timedelta(minutes=10))
    assert early == cluster


async def test_tenants_outside_the_window_or_in_another_region_do_not_add_up(
    engine: AsyncEngine, database_url: str
) -> None:
    partner = await seed_partner(database_url)
    uows = UnitOfWorkFactory(create_session_factory(engine))
    assert await report(uows, partner.id, tenant="a", at=T0) is None
    assert await report(uows, partner.id, tenant="b", at=T0 + timedelta(minutes=45)) is None
    assert await report(uows, partner.id, tenant="c", at=T0 + timedelta(minutes=90)) is None
    assert (
        await report(uows, partner.id, tenant="d", at=T0 + timedelta(minutes=91), region="eastus")
        is None
    )
    assert await scalar(engine, "SELECT count(*) FROM outage_clusters") == 0


async def test_a_cluster_quiet_for_a_whole_window_closes_and_a_new_outage_opens_a_new_one(
    engine: AsyncEngine, database_url: str
) -> None:
    partner = await seed_partner(database_url)
    uows = UnitOfWorkFactory(create_session_factory(engine))
    for minute, tenant in ((0, "a"), (1, "b"), (2, "c")):
        first = await report(uows, partner.id, tenant=tenant, at=T0 + timedelta(minutes=minute))
    for minute, tenant in ((120, "a"), (121, "b"), (122, "c")):
        second = await report(uows, partner.id, tenant=tenant, at=T0 + timedelta(minutes=minute))
    assert first is not None
    assert second is not None
    assert first != second
    assert await scalar(engine, "SELECT count(*) FROM outage_clusters WHERE status = 'open'") == 1
