"""The classifier's handler over one consumer batch, on a real database."""

from __future__ import annotations

import uuid

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from services.classifier.handler import IssueClassifier
from services.classifier.rulebook import RuleBook
from shared.db.base import utcnow
from shared.db.engine import create_session_factory
from shared.db.models import Classification, Issue
from shared.db.uow import UnitOfWorkFactory
from shared.events.envelope import Envelope, decode, encode
from shared.events.models import IssueReceived
from shared.settings import ClassifierSettings
from shared.vocabulary import Category, Severity
from tests.support.factories import seed_partner


async def test_issues_that_form_a_cluster_in_one_batch_are_all_linked_to_it(
    engine: AsyncEngine, database_url: str
) -> None:
    """The first two are classified in the batch's own transaction when the third forms the
    cluster; their classifications are linked all the same."""
    partner = await seed_partner(database_url)
    uows = UnitOfWorkFactory(create_session_factory(engine))
    now = utcnow()
    events = [
        IssueReceived(
            issue_id=uuid.uuid4(),
            partner_id=partner.id,
            tenant_id=uuid.uuid4(),
            external_ref=f"batch-{n}",
            title="Exchange Online is down",
            description="Nobody can open a mailbox.",
            service="Exchange Online",
            region="westeurope",
            category=Category.SERVICE_UNAVAILABLE,
            severity=Severity.CRITICAL,
            received_at=now,
        )
        for n in range(3)
    ]
    async with uows() as uow:
        for e in events:
            uow.session.add(
                Issue(
                    id=e.issue_id,
                    partner_id=partner.id,
                    tenant_id=e.tenant_id,
                    external_ref=e.external_ref,
                    title=e.title,
                    service=e.service,
                    region=e.region,
                    category=e.category,
                )
            )
        await uow.commit()

    classifier = IssueClassifier(
        RuleBook.load(None, None), settings=ClassifierSettings(correlation_min_tenants=3)
    )
    envelopes = [_envelope(e) for e in events]
    async with uows() as uow:
        _held = await classifier.preload(uow, envelopes)
        for envelope in envelopes:
            await classifier.handle(uow, envelope, None)
        await uow.commit()

    async with uows() as uow:
        stored = await uow.session.execute(
            select(Classification.issue_id, Classification.cluster_id)
        )
        clusters = {issue_id: cluster_id for issue_id, cluster_id in stored}
    assert set(clusters) == {e.issue_id for e in events}
    assert None not in clusters.values()
    assert len(set(clusters.values())) == 1


def _envelope(event: IssueReceived) -> Envelope:
    _, value, headers = encode(event, service="test")
    return decode(value, headers)
