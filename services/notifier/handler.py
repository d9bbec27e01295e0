"""Route one classified issue: open the Microsoft request or hand-off, queue webhooks, announce."""

from __future__ import annotations

import logging
import uuid

from services.notifier.connector import SubmissionPolicy
from services.notifier.decisions import preload_decisions, superseded
from services.notifier.handoff import hand_off
from services.notifier.requests import open_microsoft_request, preload_requests
from services.notifier.webhooks import schedule_deliveries
from shared.db.base import utcnow
from shared.db.models import MicrosoftRequest, ProviderHandoff
from shared.db.uow import UnitOfWork
from shared.events.envelope import Envelope, InvalidMessage
from shared.events.models import IssueClassified, IssueRouted
from shared.issue_state import advance, issue_awaiting, preload_issues
from shared.vocabulary import IssueStatus, Outcome
from shared.webhook_queue import preload_subscriptions

SERVICE = "notifier"

log = logging.getLogger(__name__)


class IssueRouter:
    """Consumes ``IssueClassified``; the support-topic mapping and the Partner Center
    submission policy are fixed at start-up."""

    def __init__(self, support_topics: dict[str, str], policy: SubmissionPolicy) -> None:
        self._topics = {service.casefold(): topic for service, topic in support_topics.items()}
        self._policy = policy

    async def handle(self, uow: UnitOfWork, envelope: Envelope, _prepared: object) -> None:
        await handle_issue_classified(uow, envelope, topics=self._topics, policy=self._policy)


async def handle_issue_classified(
    uow: UnitOfWork, envelope: Envelope, *, topics: dict[str, str], policy: SubmissionPolicy
) -> None:
    event = envelope.data
    if not isinstance(event, IssueClassified):
        raise InvalidMessage(f"notifier does not handle {envelope.type}")
    session = uow.session
    found = await issue_awaiting(session, event, IssueStatus.CLASSIFIED)
    if found is None:
        return
    issue, partner = found
    if superseded(session, event):
        log.info("issue %s: skipped a decision it no longer stands on", issue.id)
        return

    request: MicrosoftRequest | None = None
    handoff: ProviderHandoff | None = None
    if event.outcome is Outcome.ESCALATED_TO_MICROSOFT and event.vehicle is not None:
        request = await open_microsoft_request(
            uow,
            issue=issue,
            partner=partner,
            event=event,
            support_topic_id=topics.get(issue.service.casefold()),
            policy=policy,
        )
    elif event.outcome is Outcome.ROUTED_TO_INDIRECT_PROVIDER:
        handoff = await hand_off(
            uow, issue=issue, partner=partner, event=event, event_id=envelope.id
        )
    request_id = request.id if request else None

    deliveries = await schedule_deliveries(
        uow,
        partner=partner,
        issue=issue,
        event=event,
        event_id=envelope.id,
        request=request,
        handoff=handoff,
    )
    now = utcnow()
    advance(
        session,
        issue,
        IssueStatus.ROUTED,
        detail=_timeline_detail(event, request_id, len(deliveries)),
        at=now,
        service=SERVICE,
        changes={"microsoft_request_id": request_id} if request_id else None,
        event=IssueRouted(
            issue_id=issue.id,
            partner_id=partner.id,
            external_ref=issue.external_ref,
            outcome=event.outcome,
            vehicle=event.vehicle,
            microsoft_request_id=request_id,
            provider_handoff_id=handoff.id if handoff else None,
            webhook_delivery_ids=deliveries,
            routed_at=now,
        ),
    )


async def preload_batch(uow: UnitOfWork, envelopes: list[Envelope]) -> object:
    """A batch's issues, partners, decisions, webhook subscriptions, cluster signals and own
    Microsoft requests in six queries."""
    events = [e.data for e in envelopes if isinstance(e.data, IssueClassified)]
    # First: it takes the signals' correlation keys, which go before the issues' locks.
    requests = await preload_requests(uow.session, events) if events else ()
    issues = await preload_issues(uow, envelopes)
    if not events:
        return issues
    await preload_decisions(uow.session, events)
    await preload_subscriptions(uow.session, {e.partner_id for e in events})
    return issues, requests


def _timeline_detail(event: IssueClassified, request_id: uuid.UUID | None, deliveries: int) -> str:
    parts = [event.outcome.value]
    if request_id is not None:
        parts.append(f"Microsoft request {request_id}")
    parts.append(f"{deliveries} webhook deliveries queued")
    return "; ".join(parts)
