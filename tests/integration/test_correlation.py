"""Outage correlation on a real database: thresholds, windows, out-of-order reports."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import event, select, text, update
from sqlalchemy.ext.asyncio import AsyncEngine

from services.classifier.correlation import Policy, Report, correlate
from services.classifier.correlation_memory import preload_reports
from services.notifier.connector import SubmissionPolicy
from services.notifier.requests import open_microsoft_request
from shared.db.base import utcnow
from shared.db.engine import create_session_factory
from shared.db.models import Issue, MicrosoftRequest, MicrosoftRequestIssue, Partner
from shared.db.uow import UnitOfWorkFactory
from shared.events.models import IssueClassified
from shared.microsoft_requests import issue_ids_of
from shared.vocabulary import Category, Outcome, Severity, Vehicle
from tests.support.factories import scalar, seed_partner

T0 = datetime(2026, 11, 21, 9, 0, tzinfo=UTC)
POLICY = Policy(enabled=True, min_tenants=3, window=timedelta(minutes=30))


async def reports_together(
    uows: UnitOfWorkFactory, partner_id: uuid.UUID, tenants: list[str], *, again: int = 0
) -> tuple[list[str | None], list[uuid.UUID]]:
    """Issues from ``tenants``, a minute apart, correlated in one transaction as a classifier
    batch does (their earlier reports preloaded); with ``again``, that many issues already
    reported are in the batch once more. The cluster ids, and the issues."""
    previous = await _issue_ids(uows, partner_id)
    async with uows() as uow:
        issues = [_issue(partner_id, T0 + timedelta(minutes=n)) for n in range(len(tenants))]
        uow.session.add_all(issues)
        await uow.session.flush()
        repeated = [(i, t) for i, t in zip(previous[:again], tenants[:again], strict=True)]
        batch = [*((issue.id, tenant) for issue, tenant in zip(issues, tenants, strict=True))]
        batch += repeated
        key = (partner_id, "exchange online", "westeurope")
        await preload_reports(uow.session, [(issue_id, key, tenant) for issue_id, tenant in batch])
        found = []
        for n, (issue_id, tenant) in enumerate(batch):
            at = T0 + timedelta(minutes=n)
            result = await correlate(
                uow.session,
                Report(issue_id, partner_id, tenant, "Exchange Online", "westeurope", at),
                POLICY,
            )
            found.append(result.cluster.id if result else None)
        await uow.commit()
    return found, [issue.id for issue in issues]


def _issue(partner_id: uuid.UUID, at: datetime, region: str = "westeurope") -> Issue:
    return Issue(
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
        issue = _issue(partner_id, at, region)
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
    assert await report(uows, partner.id, tenant="a", at=T0 + timedelta(minutes=21)) == cluster
    assert await scalar(engine, "SELECT tenants FROM outage_clusters") == 4, "tenants, not issues"


async def test_reports_correlated_in_one_transaction_add_up_as_one_at_a_time_would(
    engine: AsyncEngine, database_url: str
) -> None:
    partner = await seed_partner(database_url)
    uows = UnitOfWorkFactory(create_session_factory(engine))
    with _TenantQuestions(engine) as asked:
        found, _ = await reports_together(uows, partner.id, ["a", "b", "a", "c", "d", "c"])
        cluster = found[3]
        assert found[:3] == [None, None, None]
        assert cluster is not None
        assert found[4:] == [cluster, cluster]
        assert await scalar(engine, "SELECT tenants FROM outage_clusters") == 4
        assert await scalar(engine, "SELECT count(*) FROM cluster_signals") == 6

        # The next batch: two tenants already in the cluster, a new one, and two issues of
        # the first batch classified again (reported once each still).
        found, _ = await reports_together(uows, partner.id, ["b", "e", "d"], again=2)
        assert found == [cluster] * 5
        assert await scalar(engine, "SELECT tenants FROM outage_clusters") == 5
        assert await scalar(engine, "SELECT count(*) FROM cluster_signals") == 9
        assert await scalar(engine, "SELECT count(*) FROM outage_clusters") == 1
    assert asked == [], "what the batches knew already was not asked report by report"


class _TenantQuestions(list[str]):
    """The statements that ask, report by report, whether a tenant is in a cluster."""

    def __init__(self, engine: AsyncEngine) -> None:
        super().__init__()
        self._engine = engine.sync_engine

    def _sent(self, _conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if "DISTINCT cluster_signals.tenant_key" in statement:
            self.append(statement)

    def __enter__(self) -> _TenantQuestions:
        event.listen(self._engine, "before_cursor_execute", self._sent)
        return self

    def __exit__(self, *_: object) -> None:
        event.remove(self._engine, "before_cursor_execute", self._sent)


async def test_an_issue_classified_again_is_reported_once(
    engine: AsyncEngine, database_url: str
) -> None:
    partner = await seed_partner(database_url)
    uows = UnitOfWorkFactory(create_session_factory(engine))
    for tenant, minutes in (("a", 0), ("b", 1)):
        at = T0 + timedelta(minutes=minutes)
        assert await report(uows, partner.id, tenant=tenant, at=at) is None
    issue_id = await scalar(engine, "SELECT issue_id FROM cluster_signals WHERE tenant_key = 'b'")
    for _ in range(2):  # the same issue twice: two tenants still, no cluster
        async with uows() as uow:
            again = Report(
                uuid.UUID(str(issue_id)), partner.id, "b", "Exchange Online", "westeurope", T0
            )
            assert await correlate(uow.session, again, POLICY) is None
            await uow.commit()
    assert await scalar(engine, "SELECT count(*) FROM cluster_signals") == 2
    assert await report(uows, partner.id, tenant="c", at=T0 + timedelta(minutes=2)) is not None


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


async def test_a_cluster_request_leaves_a_member_request_being_filed_by_the_connector_alone(
    database_url: str, engine: AsyncEngine
) -> None:
    partner = await seed_partner(database_url)
    uows = UnitOfWorkFactory(create_session_factory(engine))
    first = await report(uows, partner.id, tenant="t1", at=T0)
    assert first is None
    issue_ids = await _issue_ids(uows, partner.id)  # the first issue, with a request of its own
    in_flight = uuid.uuid4()
    async with uows() as uow:
        uow.session.add(
            MicrosoftRequest(
                id=in_flight,
                partner_id=partner.id,
                dedupe_key=f"issue:{issue_ids[0]}",
                title="down",
                description="down",
                severity="critical",
                vehicle="partner_cloud_support",
                submission="queued",
                submission_claimed_until=utcnow() + timedelta(minutes=5),
            )
        )
        uow.session.add(MicrosoftRequestIssue(request_id=in_flight, issue_id=issue_ids[0]))
        await uow.session.flush()
        await uow.session.execute(
            update(Issue).where(Issue.id == issue_ids[0]).values(microsoft_request_id=in_flight)
        )
        await uow.commit()
    await report(uows, partner.id, tenant="t2", at=T0 + timedelta(minutes=1))
    cluster_id = await report(uows, partner.id, tenant="t3", at=T0 + timedelta(minutes=2))
    assert cluster_id is not None

    third = (await _issue_ids(uows, partner.id))[-1]
    cluster_request = await _escalated(uows, partner.id, third, cluster_id)
    assert any(str(in_flight) in note["text"] for note in cluster_request.notes)

    superseded = await scalar(
        engine,
        "SELECT count(*) FROM microsoft_requests WHERE superseded_by_id IS NOT NULL",
    )
    assert superseded == 0, "the request in Partner Center's hands right now is kept"

    # Members joining later leave the kept request as it is, and note it no more.
    for tenant, minutes in (("t4", 3), ("t5", 4)):
        joined = await report(uows, partner.id, tenant=tenant, at=T0 + timedelta(minutes=minutes))
        assert joined == cluster_id
        latest = (await _issue_ids(uows, partner.id))[-1]
        cluster_request = await _escalated(uows, partner.id, latest, cluster_id)
    kept = [note for note in cluster_request.notes if str(in_flight) in note["text"]]
    assert len(kept) == 1, cluster_request.notes
    assert await _unabsorbed(engine) == 1, "the member being filed is looked at again"

    # The connector gave up its claim without filing it: the next member's absorb merges it.
    async with uows() as uow:
        kept_request = await uow.session.get(MicrosoftRequest, in_flight)
        assert kept_request is not None
        kept_request.submission_claimed_until = utcnow() - timedelta(minutes=1)
        await uow.commit()
    await report(uows, partner.id, tenant="t6", at=T0 + timedelta(minutes=5))
    latest = (await _issue_ids(uows, partner.id))[-1]
    cluster_request = await _escalated(uows, partner.id, latest, cluster_id)
    async with uows() as uow:
        superseded_by = await uow.session.scalar(
            select(MicrosoftRequest.superseded_by_id).where(MicrosoftRequest.id == in_flight)
        )
    assert superseded_by == cluster_request.id
    assert await _unabsorbed(engine) == 0


async def test_a_cluster_request_lists_every_escalated_member_and_looks_at_each_once(
    engine: AsyncEngine, database_url: str
) -> None:
    partner = await seed_partner(database_url)
    uows = UnitOfWorkFactory(create_session_factory(engine))
    assert await report(uows, partner.id, tenant="t1", at=T0) is None
    first = (await _issue_ids(uows, partner.id))[-1]
    own = await _escalated(uows, partner.id, first, None)  # before the outage is seen
    await report(uows, partner.id, tenant="t2", at=T0 + timedelta(minutes=1))
    cluster_id = await report(uows, partner.id, tenant="t3", at=T0 + timedelta(minutes=2))
    assert cluster_id is not None
    assert await _unabsorbed(engine) == 3, "the cluster's members, all still to look at"

    third = (await _issue_ids(uows, partner.id))[-1]
    cluster_request = await _escalated(uows, partner.id, third, cluster_id)
    assert await _unabsorbed(engine) == 0
    for tenant, minutes in (("t4", 3), ("t1", 4)):  # a new tenant, then a second report
        await report(uows, partner.id, tenant=tenant, at=T0 + timedelta(minutes=minutes))
        assert await _unabsorbed(engine) == 1, "only what joined since the last absorb"
        latest = (await _issue_ids(uows, partner.id))[-1]
        again = await _escalated(uows, partner.id, latest, cluster_id)
        assert again.id == cluster_request.id
        assert await _unabsorbed(engine) == 0

    members = await _issue_ids(uows, partner.id)
    async with uows() as uow:
        listed = await issue_ids_of(uow.session, [own.id, cluster_request.id])
        merged = await uow.session.get(MicrosoftRequest, own.id)
        assert merged is not None
        merged_as = (merged.status, merged.superseded_by_id)
    # Every escalated member (not t2's, which was not escalated), the merged one's among them.
    escalated = [members[0], *members[2:]]
    assert listed[cluster_request.id] == sorted(str(i) for i in escalated)
    assert listed[own.id] == [str(first)], "the merged request still says whose it was"
    assert merged_as == ("closed", cluster_request.id)
    assert await scalar(engine, "SELECT tenants FROM outage_clusters") == 4


async def _unabsorbed(engine: AsyncEngine) -> int:
    """Cluster members whose own requests the cluster's request has still to look at."""
    found = await scalar(
        engine,
        "SELECT count(*) FROM cluster_signals WHERE cluster_id IS NOT NULL AND NOT absorbed",
    )
    return int(found)


async def _escalated(
    uows: UnitOfWorkFactory, partner_id: uuid.UUID, issue_id: uuid.UUID, cluster_id: str | None
) -> MicrosoftRequest:
    """The notifier opens (or joins) the Microsoft request of ``issue_id``, a member of
    ``cluster_id``, escalated; the cluster's request as committed."""
    async with uows() as uow:
        partner_row = await uow.session.get(Partner, partner_id)
        issue = await uow.session.get(Issue, issue_id)
        assert partner_row is not None
        assert issue is not None
        event = IssueClassified(
            issue_id=issue.id,
            partner_id=partner_id,
            external_ref=issue.external_ref,
            category=Category.SERVICE_UNAVAILABLE,
            category_source="given",
            outcome=Outcome.ESCALATED_TO_MICROSOFT,
            vehicle=Vehicle.PARTNER_CLOUD_SUPPORT,
            reasons=["outage"],
            rule_id="r",
            cluster_id=cluster_id,
            confidence=1.0,
            severity=Severity.CRITICAL,
            service=issue.service,
            classified_at=utcnow(),
        )
        request = await open_microsoft_request(
            uow,
            issue=issue,
            partner=partner_row,
            event=event,
            support_topic_id="1",
            policy=SubmissionPolicy(False, frozenset(), frozenset()),
        )
        issue.microsoft_request_id = request.id  # as the notifier's handler records it
        await uow.commit()
    return request


async def _issue_ids(uows: UnitOfWorkFactory, partner_id: uuid.UUID) -> list[uuid.UUID]:
    async with uows() as uow:
        found = await uow.session.scalars(
            select(Issue.id).where(Issue.partner_id == partner_id).order_by(Issue.created_at)
        )
        return list(found)


@pytest.mark.usefixtures("postgresql_only")
async def test_an_absorb_leaves_members_another_notifier_is_absorbing_to_it(
    engine: AsyncEngine, database_url: str
) -> None:
    partner = await seed_partner(database_url)
    uows = UnitOfWorkFactory(create_session_factory(engine))
    for tenant, minutes in (("t1", 0), ("t2", 1)):
        await report(uows, partner.id, tenant=tenant, at=T0 + timedelta(minutes=minutes))
    cluster_id = await report(uows, partner.id, tenant="t3", at=T0 + timedelta(minutes=2))
    assert cluster_id is not None
    first, _, third = await _issue_ids(uows, partner.id)
    async with engine.connect() as other:
        await other.execute(
            text("SELECT 1 FROM cluster_signals WHERE issue_id = :i FOR UPDATE"), {"i": first}
        )
        # Not waited for: the member is the other transaction's to look at.
        await asyncio.wait_for(_escalated(uows, partner.id, third, cluster_id), timeout=5)
        assert await _unabsorbed(engine) == 1
        await other.rollback()
    await report(uows, partner.id, tenant="t4", at=T0 + timedelta(minutes=3))
    fourth = (await _issue_ids(uows, partner.id))[-1]
    await _escalated(uows, partner.id, fourth, cluster_id)
    assert await _unabsorbed(engine) == 0, "looked at by the next absorb"
