"""The notifier's handler over one consumer batch, on a real database."""

from __future__ import annotations

import uuid

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from services.notifier.connector import SubmissionPolicy
from services.notifier.handler import IssueRouter, preload_batch
from shared.db.engine import create_session_factory
from shared.db.models import Issue, MicrosoftRequest, WebhookDelivery, WebhookSubscription
from shared.db.uow import UnitOfWorkFactory
from shared.events.envelope import Envelope, decode, encode
from shared.vocabulary import IssueStatus, Outcome
from tests.support.factories import accepted_issues, classified_event, seed_partner


async def test_a_batch_routes_each_issue_with_its_request_and_webhooks(
    engine: AsyncEngine, database_url: str
) -> None:
    """Escalated issues point at their own Microsoft request, the other does not; each
    outcome is queued once to the subscription that wants it and not to the one that does
    not, and every issue is routed."""
    partner = await seed_partner(database_url)
    received = await accepted_issues(engine, partner.id, ["route-0", "route-1", "route-2"])
    uows = UnitOfWorkFactory(create_session_factory(engine))
    async with uows() as uow:
        for event_types in ([], ["issue.partner_action_required"]):
            uow.session.add(
                WebhookSubscription(
                    partner_id=partner.id,
                    url="https://hooks.example/x",
                    secret="whsec_x",
                    event_types=event_types,
                )
            )
        for e in received:
            issue = await uow.session.get(Issue, e.issue_id)
            assert issue is not None
            issue.status = IssueStatus.CLASSIFIED
        await uow.commit()
    escalated, partner_resolves = Outcome.ESCALATED_TO_MICROSOFT, Outcome.PARTNER_RESOLVES
    outcomes = [escalated, partner_resolves, escalated]
    envelopes = [
        _classified(e.issue_id, e.partner_id, o) for e, o in zip(received, outcomes, strict=True)
    ]
    router = IssueRouter({}, SubmissionPolicy(False, frozenset(), frozenset()))
    async with uows() as uow:
        _held = await preload_batch(uow, envelopes)
        for envelope in envelopes:
            await router.handle(uow, envelope, None)
        await uow.commit()

    ids = [e.issue_id for e in received]
    async with uows() as uow:
        session = uow.session
        issues = dict(
            (await session.execute(select(Issue.id, Issue.status).where(Issue.id.in_(ids)))).all()
        )
        pointed: dict[uuid.UUID, list[str]] = dict(
            (
                await session.execute(
                    select(Issue.id, MicrosoftRequest.issue_ids)
                    .join(MicrosoftRequest, Issue.microsoft_request_id == MicrosoftRequest.id)
                    .where(Issue.id.in_(ids))
                )
            ).all()
        )
        queued = (
            await session.execute(select(WebhookDelivery.issue_id, WebhookDelivery.event_type))
        ).all()
    assert issues == dict.fromkeys(ids, IssueStatus.ROUTED)
    assert pointed == {ids[0]: [str(ids[0])], ids[2]: [str(ids[2])]}
    assert sorted(queued) == sorted(
        [
            (ids[0], "issue.escalated_to_microsoft"),
            (ids[1], "issue.partner_action_required"),
            (ids[1], "issue.partner_action_required"),
            (ids[2], "issue.escalated_to_microsoft"),
        ]
    )


def _classified(issue_id: uuid.UUID, partner_id: uuid.UUID, outcome: Outcome) -> Envelope:
    _, value, headers = encode(classified_event(issue_id, partner_id, outcome), service="test")
    return decode(value, headers)
