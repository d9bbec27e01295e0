"""The notifier's handler over one consumer batch, on a real database."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from sqlalchemy import event, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from services.notifier.connector import SubmissionPolicy
from services.notifier.handler import IssueRouter, preload_batch
from shared.db.base import utcnow
from shared.db.engine import create_session_factory
from shared.db.models import (
    Classification,
    ClusterSignal,
    Issue,
    MicrosoftRequest,
    WebhookDelivery,
    WebhookSubscription,
)
from shared.db.uow import UnitOfWorkFactory
from shared.events.envelope import Envelope, decode, encode
from shared.events.models import IssueClassified
from shared.microsoft_requests import issue_ids_of
from shared.vocabulary import IssueStatus, Outcome
from tests.support.factories import accepted_issues, classified_event, open_cluster, seed_partner


async def test_a_batch_routes_each_issue_with_its_request_and_webhooks(
    engine: AsyncEngine, database_url: str
) -> None:
    """Escalated issues point at their own Microsoft request, the other does not; each
    outcome is queued once to the subscription that wants it and not to the one that does
    not, and every issue is routed."""
    partner = await seed_partner(database_url)
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
        await uow.commit()
    ids = await _classified_issues(engine, uows, partner.id, ["route-0", "route-1", "route-2"])
    escalated, partner_resolves = Outcome.ESCALATED_TO_MICROSOFT, Outcome.PARTNER_RESOLVES
    outcomes = [escalated, partner_resolves, escalated]
    await _route(uows, [_classified(i, partner.id, o) for i, o in zip(ids, outcomes, strict=True)])

    async with uows() as uow:
        session = uow.session
        issues = dict(
            (await session.execute(select(Issue.id, Issue.status).where(Issue.id.in_(ids)))).all()
        )
        queued = (
            await session.execute(select(WebhookDelivery.issue_id, WebhookDelivery.event_type))
        ).all()
    pointed = {i: listed for i, listed in (await _requests_of(uows)).items() if i in ids}
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
    return _enveloped(classified_event(issue_id, partner_id, outcome))


def _enveloped(event: IssueClassified) -> Envelope:
    _, value, headers = encode(event, service="test")
    return decode(value, headers)


async def test_a_new_request_is_written_before_the_issue_pointing_at_it(
    engine: AsyncEngine, database_url: str
) -> None:
    """Requests new to the batch are written with its other rows, at commit: first, whatever
    the order of the batch's events (the issue's row refers to its request)."""
    partner = await seed_partner(database_url)
    uows = UnitOfWorkFactory(create_session_factory(engine))
    first, second = await _classified_issues(engine, uows, partner.id, ["order-0", "order-1"])
    await _route(
        uows,
        [
            _classified(first, partner.id, Outcome.PARTNER_RESOLVES),
            _classified(second, partner.id, Outcome.ESCALATED_TO_MICROSOFT),
        ],
    )

    assert await _requests_of(uows) == {second: [str(second)]}


async def test_a_request_that_exists_is_reused_by_a_batch(
    engine: AsyncEngine, database_url: str
) -> None:
    """An issue classified again after its request was opened (a reopened ticket) points at
    the request it has; no second one is written."""
    partner = await seed_partner(database_url)
    uows = UnitOfWorkFactory(create_session_factory(engine))
    [issue_id] = await _classified_issues(engine, uows, partner.id, ["again-0"])
    escalated = Outcome.ESCALATED_TO_MICROSOFT
    await _route(uows, [_classified(issue_id, partner.id, escalated)])
    [opened] = (await _requests_of(uows)).values()
    async with uows() as uow:
        issue = await uow.session.get(Issue, issue_id)
        assert issue is not None
        issue.status, issue.microsoft_request_id = IssueStatus.CLASSIFIED, None
        await uow.commit()

    await _route(uows, [_classified(issue_id, partner.id, escalated)])

    assert await _requests_of(uows) == {issue_id: opened}
    async with uows() as uow:
        assert await uow.session.scalar(select(func.count()).select_from(MicrosoftRequest)) == 1


async def test_a_decision_the_issue_no_longer_stands_on_is_not_carried_out(
    engine: AsyncEngine, database_url: str
) -> None:
    """An issue classified again waits in ``classified`` for its new decision; the earlier
    decision's event, replayed meanwhile, routes nothing (no Microsoft request, no webhook),
    and the new one then routes it. A decision whose reasons and cluster a cluster link
    rewrote since it was announced is still the one the issue stands on."""
    partner = await seed_partner(database_url)
    uows = UnitOfWorkFactory(create_session_factory(engine))
    async with uows() as uow:
        uow.session.add(
            WebhookSubscription(
                partner_id=partner.id, url="https://hooks.example/x", secret="whsec_x"
            )
        )
        await uow.commit()
    [issue_id] = await _classified_issues(engine, uows, partner.id, ["again-1"])
    earlier = classified_event(issue_id, partner.id, Outcome.ESCALATED_TO_MICROSOFT)
    now = classified_event(issue_id, partner.id, Outcome.PARTNER_RESOLVES)
    await _decided(uows, now, reasons=["r", "joined outage cluster c-1"], cluster_id="c-1")

    await _route(uows, [_enveloped(earlier)])

    async with uows() as uow:
        status = await uow.session.scalar(select(Issue.status).where(Issue.id == issue_id))
        assert status == IssueStatus.CLASSIFIED
        assert await uow.session.scalar(select(func.count()).select_from(WebhookDelivery)) == 0
    assert await _requests_of(uows) == {}

    await _route(uows, [_enveloped(now)])

    async with uows() as uow:
        status = await uow.session.scalar(select(Issue.status).where(Issue.id == issue_id))
        queued = (await uow.session.scalars(select(WebhookDelivery.event_type))).all()
    assert status == IssueStatus.ROUTED
    assert queued == ["issue.partner_action_required"]
    assert await _requests_of(uows) == {}


@pytest.mark.usefixtures("postgresql_only")
async def test_a_request_written_meanwhile_fails_the_batch(
    engine: AsyncEngine, database_url: str
) -> None:
    """Read as missing with the batch, written by someone else before the batch commits: the
    request's unique key fails the batch (which is then handled one event at a time)."""
    partner = await seed_partner(database_url)
    uows = UnitOfWorkFactory(create_session_factory(engine))
    [issue_id] = await _classified_issues(engine, uows, partner.id, ["meanwhile-0"])
    envelope = _classified(issue_id, partner.id, Outcome.ESCALATED_TO_MICROSOFT)
    router = IssueRouter({}, SubmissionPolicy(False, frozenset(), frozenset()))
    async with uows() as uow:
        _held = await preload_batch(uow, [envelope])
        async with uows() as other:
            other.session.add(
                MicrosoftRequest(
                    partner_id=partner.id,
                    dedupe_key=f"issue:{issue_id}",
                    title="t",
                    description="d",
                    severity="critical",
                    vehicle="partner_cloud_support",
                )
            )
            await other.commit()
        await router.handle(uow, envelope, None)
        with pytest.raises(IntegrityError):
            await uow.commit()
    async with uows() as uow:
        issue = await uow.session.get(Issue, issue_id)
        assert issue is not None
        assert issue.status == IssueStatus.CLASSIFIED, "nothing of the batch was kept"


async def _classified_issues(
    engine: AsyncEngine, uows: UnitOfWorkFactory, partner_id: uuid.UUID, refs: list[str]
) -> list[uuid.UUID]:
    received = await accepted_issues(engine, partner_id, refs)
    async with uows() as uow:
        for e in received:
            issue = await uow.session.get(Issue, e.issue_id)
            assert issue is not None
            issue.status = IssueStatus.CLASSIFIED
        await uow.commit()
    return [e.issue_id for e in received]


async def _decided(
    uows: UnitOfWorkFactory, event: IssueClassified, *, reasons: list[str], cluster_id: str
) -> None:
    """``event``'s decision stored as the issue's, with other reasons and a cluster."""
    fields = event.model_dump(include={"category", "category_source", "outcome", "vehicle"})
    async with uows() as uow:
        uow.session.add(
            Classification(
                issue_id=event.issue_id,
                partner_role=event.partner_role,
                rule_id=event.rule_id,
                reasons=reasons,
                cluster_id=cluster_id,
                **fields,
            )
        )
        await uow.commit()


async def _route(uows: UnitOfWorkFactory, envelopes: list[Envelope]) -> None:
    """``envelopes`` handled as one consumer batch is."""
    router = IssueRouter({}, SubmissionPolicy(False, frozenset(), frozenset()))
    async with uows() as uow:
        _held = await preload_batch(uow, envelopes)
        for envelope in envelopes:
            await router.handle(uow, envelope, None)
        await uow.commit()


async def _requests_of(uows: UnitOfWorkFactory) -> dict[uuid.UUID, list[str]]:
    """Each issue pointing at a request: the issues that request lists."""
    async with uows() as uow:
        rows = await uow.session.execute(
            select(Issue.id, Issue.microsoft_request_id).where(
                Issue.microsoft_request_id.is_not(None)
            )
        )
        pointing = {issue_id: request_id for issue_id, request_id in rows if request_id}
        listed = await issue_ids_of(uow.session, set(pointing.values()))
        return {issue_id: listed[request_id] for issue_id, request_id in pointing.items()}


async def test_a_batch_looks_at_a_clusters_members_once_and_files_one_request_for_them(
    engine: AsyncEngine, database_url: str
) -> None:
    partner = await seed_partner(database_url)
    uows = UnitOfWorkFactory(create_session_factory(engine))
    refs = [f"member-{n}" for n in range(4)]
    members = await _classified_issues(engine, uows, partner.id, refs)
    async with uows() as uow:
        key = (partner.id, "exchange online", "westeurope")
        uow.session.add(open_cluster("cl_batch", key))
        await uow.session.flush()
        uow.session.add_all(
            ClusterSignal(
                issue_id=member,
                partner_id=partner.id,
                tenant_key=f"tenant-{n}",
                service_key="exchange online",
                region_key="westeurope",
                observed_at=utcnow(),
                cluster_id="cl_batch",
            )
            for n, member in enumerate(members)
        )
        await uow.commit()
    escalated = [
        _enveloped(
            classified_event(m, partner.id, Outcome.ESCALATED_TO_MICROSOFT).model_copy(
                update={"cluster_id": "cl_batch"}
            )
        )
        for m in members
    ]
    looked: list[str] = []

    def absorbs(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if "absorbed" in statement and statement.lstrip().upper().startswith("SELECT"):
            looked.append(statement)

    event.listen(engine.sync_engine, "before_cursor_execute", absorbs)
    try:
        await _route(uows, escalated)
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", absorbs)

    assert len(looked) == 1, "the cluster's members looked at once in the batch"
    requests = await _requests_of(uows)
    assert set(requests) == set(members)
    assert all(listed == sorted(str(m) for m in members) for listed in requests.values())
    async with uows() as uow:
        unabsorbed = await uow.session.scalar(
            select(func.count()).where(ClusterSignal.absorbed.is_(False))
        )
    assert unabsorbed == 0
