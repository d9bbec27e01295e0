"""The classifier's handler over one consumer batch, on a real database."""

from __future__ import annotations

import uuid
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from services.classifier.handler import IssueClassifier
from services.classifier.rulebook import RuleBook
from shared.db.base import utcnow
from shared.db.engine import create_session_factory
from shared.db.models import Classification, Issue, IssueEvent, OutboxMessage
from shared.db.uow import UnitOfWorkFactory
from shared.events.envelope import Envelope, decode, encode
from shared.events.models import IssueReceived
from shared.settings import ClassifierSettings
from shared.vocabulary import Category, IssueStatus, Severity
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
    await _store(uows, events)
    classifier = IssueClassifier(
        RuleBook.load(None, None), settings=ClassifierSettings(correlation_min_tenants=3)
    )
    await _classify(uows, classifier, events)

    async with uows() as uow:
        stored = await uow.session.execute(
            select(Classification.issue_id, Classification.cluster_id)
        )
        clusters = {issue_id: cluster_id for issue_id, cluster_id in stored}
    assert set(clusters) == {e.issue_id for e in events}
    assert None not in clusters.values()
    assert len(set(clusters.values())) == 1


RAISING_RULES = """
version: 1
name: raise-then-resolve
rules:
  - id: raise-mailboxes
    when: {text_any: [mailbox]}
    then: {severity: critical}
    continue: true
  - id: partner-fixes
    then: {outcome: partner_resolves, partner_role: admin_agent}
"""


async def test_a_batch_writes_each_issue_its_classification_status_severity_and_events(
    engine: AsyncEngine, database_url: str, tmp_path: Path
) -> None:
    """Everything the classifier writes for a batch, read back as stored: the issue moved on
    (with a severity a rule raised, and only there), one classification, one timeline step
    and its two events each."""
    partner = await seed_partner(database_url)
    uows = UnitOfWorkFactory(create_session_factory(engine))
    texts = ["Nobody can open a mailbox.", "Teams calls drop.", "The mailbox is full."]
    events = [
        IssueReceived(
            issue_id=uuid.uuid4(),
            partner_id=partner.id,
            tenant_id=uuid.uuid4(),
            external_ref=f"raise-{n}",
            title="Help",
            description=text,
            service="Exchange Online",
            severity=Severity.MINIMAL,
            received_at=utcnow(),
        )
        for n, text in enumerate(texts)
    ]
    await _store(uows, events)
    rules = tmp_path / "rules.yaml"
    rules.write_text(RAISING_RULES)
    classifier = IssueClassifier(RuleBook.load(rules, None), settings=ClassifierSettings())
    await _classify(uows, classifier, events)

    ids = [e.issue_id for e in events]
    async with uows() as uow:
        session = uow.session
        rows = await session.execute(
            select(Issue.id, Issue.status, Issue.severity).where(Issue.id.in_(ids))
        )
        issues = {issue_id: (status, severity) for issue_id, status, severity in rows}
        outcomes = dict(
            (await session.execute(select(Classification.issue_id, Classification.outcome))).all()
        )
        steps = (await session.execute(select(IssueEvent.issue_id, IssueEvent.status))).all()
        queued = (
            await session.execute(
                select(
                    OutboxMessage.aggregate_id,
                    OutboxMessage.event_type,
                    OutboxMessage.event_id,
                    OutboxMessage.companion_topic,
                    OutboxMessage.companion_value,
                    OutboxMessage.companion_headers,
                ).where(OutboxMessage.aggregate_id.in_([str(i) for i in ids]))
            )
        ).all()
    assert [issues[i] for i in ids] == [
        (IssueStatus.CLASSIFIED, "critical"),
        (IssueStatus.CLASSIFIED, "minimal"),
        (IssueStatus.CLASSIFIED, "critical"),
    ]
    assert outcomes == dict.fromkeys(ids, "partner_resolves")
    assert sorted(steps) == sorted((i, IssueStatus.CLASSIFIED.value) for i in ids)
    # One row per issue: its issues.classified, and the status change's issues.updated with it.
    assert sorted((row.aggregate_id, row.event_type) for row in queued) == sorted(
        (str(i), "csp.issue.classified") for i in ids
    )
    for key, _, event_id, topic, value, headers in queued:
        assert topic == "issues.updated"
        updated = decode(value, [(name, text.encode()) for name, text in headers])
        assert updated.type == "csp.issue.updated"
        assert updated.subject == key
        assert updated.data.status is IssueStatus.CLASSIFIED  # type: ignore[attr-defined]
        assert updated.id != event_id


async def test_an_earlier_announcement_of_text_the_psa_has_replaced_classifies_nothing(
    engine: AsyncEngine, database_url: str
) -> None:
    """A re-driven or replayed first ``issues.received`` of an issue the PSA has given new
    text and a category since: the issue waits for the announcement of what it says now."""
    partner = await seed_partner(database_url)
    uows = UnitOfWorkFactory(create_session_factory(engine))
    first = IssueReceived(
        issue_id=uuid.uuid4(),
        partner_id=partner.id,
        external_ref="answered-1",
        title="Help",
        description="It does not work.",
        service="Exchange Online",
        severity=Severity.MODERATE,
        received_at=utcnow(),
    )
    again = first.model_copy(
        update={
            "description": "How do I set up a shared mailbox?",
            "category": Category.HOW_TO,
            "received_at": utcnow(),
        }
    )
    await _store(uows, [again])
    classifier = IssueClassifier(RuleBook.load(None, None), settings=ClassifierSettings())

    decided = select(Classification.category).where(Classification.issue_id == first.issue_id)
    await _classify(uows, classifier, [first])
    async with uows() as uow:
        assert await uow.session.scalar(decided) is None
        assert (
            await uow.session.scalar(select(Issue.status).where(Issue.id == first.issue_id))
            == IssueStatus.RECEIVED
        )

    await _classify(uows, classifier, [again])
    async with uows() as uow:
        assert await uow.session.scalar(decided) == Category.HOW_TO


async def _store(uows: UnitOfWorkFactory, events: list[IssueReceived]) -> None:
    """The issues as the intake stored them, without their timeline or events."""
    async with uows() as uow:
        for e in events:
            uow.session.add(
                Issue(
                    id=e.issue_id,
                    partner_id=e.partner_id,
                    tenant_id=e.tenant_id,
                    external_ref=e.external_ref,
                    title=e.title,
                    description=e.description,
                    service=e.service,
                    region=e.region,
                    category=e.category,
                    severity=e.severity,
                )
            )
        await uow.commit()


async def _classify(
    uows: UnitOfWorkFactory, classifier: IssueClassifier, events: list[IssueReceived]
) -> None:
    """The events as one consumer batch: preloaded, handled, committed together."""
    envelopes = [_envelope(e) for e in events]
    async with uows() as uow:
        _held = await classifier.preload(uow, envelopes)
        for envelope in envelopes:
            await classifier.handle(uow, envelope, None)
        await uow.commit()


def _envelope(event: IssueReceived) -> Envelope:
    _, value, headers = encode(event, service="test")
    return decode(value, headers)
