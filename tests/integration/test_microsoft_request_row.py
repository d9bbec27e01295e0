"""An issue's own Microsoft request: written once, and read back as written."""

from __future__ import annotations

import uuid

from prometheus_client import REGISTRY
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from services.notifier.connector import SubmissionPolicy
from services.notifier.requests import REQUEST_COLUMNS, open_microsoft_request
from shared.db.base import utcnow
from shared.db.engine import create_session_factory
from shared.db.models import Issue, MicrosoftRequest, Partner
from shared.db.uow import UnitOfWork, UnitOfWorkFactory
from shared.events.models import IssueClassified
from shared.microsoft_requests import issue_ids_of
from shared.vocabulary import Category, Outcome, Severity, Vehicle
from tests.support.factories import seed_partner

# What the request is written with, less its last update: a second opening may touch it.
FIELDS = tuple(column for column in REQUEST_COLUMNS if column != "updated_at")


async def test_a_request_opened_twice_for_one_issue_is_one_row_as_first_returned(
    engine: AsyncEngine, database_url: str
) -> None:
    partner = await seed_partner(database_url)
    uows = UnitOfWorkFactory(create_session_factory(engine))
    issue_id = await _classified_issue(uows, partner.id)

    opened = []
    for _ in range(2):  # the second time: the issue re-driven after a crash
        async with uows() as uow:
            request = await _open(uow, partner.id, issue_id)
            opened.append({field: getattr(request, field) for field in FIELDS})
            await uow.commit()

    first, again = opened
    assert again == first, "the second time returns the row the first one wrote"
    assert first["partner_center_payload"]["SupportTopicId"] == "32444"
    async with uows() as uow:
        assert await uow.session.scalar(select(func.count()).select_from(MicrosoftRequest)) == 1
        listed = await issue_ids_of(uow.session, [first["id"]])
    assert listed == {first["id"]: [str(issue_id)]}, "the issue is the request's, once"


async def test_a_request_is_counted_when_its_transaction_commits_and_only_then(
    engine: AsyncEngine, database_url: str
) -> None:
    partner = await seed_partner(database_url)
    uows = UnitOfWorkFactory(create_session_factory(engine))
    issue_id = await _classified_issue(uows, partner.id)
    before = _opened_count()

    async with uows() as uow:  # a batch that failed together: rolled back, handled again
        await _open(uow, partner.id, issue_id)
    assert _opened_count() == before
    async with uows() as uow:
        await _open(uow, partner.id, issue_id)
        assert _opened_count() == before, "not before the commit"
        await uow.commit()
    assert _opened_count() == before + 1
    async with uows() as uow:  # it exists now: nothing opened
        await _open(uow, partner.id, issue_id)
        await uow.commit()
    assert _opened_count() == before + 1


def _opened_count() -> float:
    value = REGISTRY.get_sample_value(
        "escalation_microsoft_requests_opened_total",
        {"vehicle": Vehicle.ADVANCED_SUPPORT_FOR_PARTNERS.value},
    )
    return value or 0.0


async def _classified_issue(uows: UnitOfWorkFactory, partner_id: uuid.UUID) -> uuid.UUID:
    async with uows() as uow:
        issue = Issue(
            id=uuid.uuid4(),
            partner_id=partner_id,
            external_ref="T-7",
            title="Exchange Online: mail stuck in the outbound queue",
            description="Since 08:00 no mail leaves the tenant.",
            service="Exchange Online",
            contact={"name": "Ana", "email": "ana@example.com"},
            status="classified",
        )
        uow.session.add(issue)
        await uow.commit()
    return issue.id


async def _open(uow: UnitOfWork, partner_id: uuid.UUID, issue_id: uuid.UUID) -> MicrosoftRequest:
    partner_row = await uow.session.get(Partner, partner_id)
    issue_row = await uow.session.get(Issue, issue_id)
    assert partner_row is not None
    assert issue_row is not None
    return await open_microsoft_request(
        uow,
        issue=issue_row,
        partner=partner_row,
        event=IssueClassified(
            issue_id=issue_id,
            partner_id=partner_id,
            external_ref="T-7",
            category=Category.SERVICE_UNAVAILABLE,
            category_source="given",
            outcome=Outcome.ESCALATED_TO_MICROSOFT,
            vehicle=Vehicle.ADVANCED_SUPPORT_FOR_PARTNERS,
            reasons=["outage"],
            rule_id="r",
            confidence=1.0,
            severity=Severity.CRITICAL,
            service="Exchange Online",
            classified_at=utcnow(),
        ),
        support_topic_id="32444",
        policy=SubmissionPolicy(False, frozenset(), frozenset()),
    )
