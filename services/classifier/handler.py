"""Classify one received issue: gather facts, correlate, apply the partner's rules, announce."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.sql.expression import ClauseElement

from services.classifier.correlation import (
    FAILURE_CATEGORIES,
    Correlated,
    Report,
    correlate,
    policy_for,
)
from services.classifier.correlation_memory import preload_reports
from services.classifier.engine import Facts, evaluate, gather, with_cluster
from services.classifier.facts import Decision, HealthView, IssueFacts
from services.classifier.health import (
    HealthProvider,
    local_incidents,
    merge,
    preload_incidents,
)
from services.classifier.partner_facts import partner_facts
from services.classifier.rulebook import RuleBook
from shared.correlation_lock import correlation_key, lock_correlation_keys
from shared.db.base import table_of, utcnow
from shared.db.columnar import inserted
from shared.db.models import Classification, Issue, Partner
from shared.db.staged import stage
from shared.db.uow import UnitOfWork
from shared.events.envelope import Envelope, InvalidMessage
from shared.events.models import IssueClassified, IssueReceived
from shared.issue_state import add_note, advance, issue_awaiting, preload_issues
from shared.settings import ClassifierSettings
from shared.vocabulary import IssueStatus, Severity

SERVICE = "classifier"

log = logging.getLogger(__name__)


class IssueClassifier:
    """Consumes ``IssueReceived``; rules, settings and health providers are fixed at start-up."""

    def __init__(
        self,
        rules: RuleBook,
        *,
        settings: ClassifierSettings,
        remote_health: HealthProvider | None = None,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self._rules = rules
        self._settings = settings
        self._remote = remote_health
        self._clock = clock

    async def prepare(self, envelope: Envelope) -> HealthView | None:
        """Remote health look-up, before any transaction opens."""
        event = _received(envelope)
        if self._remote is None:
            return None
        return await self._remote.lookup(
            partner_id=event.partner_id, tenant_id=event.tenant_id, service=event.service
        )

    async def preload(self, uow: UnitOfWork, envelopes: list[Envelope]) -> object:
        """A batch's issues, partners and local incidents in three queries; before them, the
        correlation keys any of its reports may take (see :mod:`shared.correlation_lock`) and
        what it knows of their correlation (see :mod:`services.classifier.correlation_memory`)."""
        received = [e.data for e in envelopes if isinstance(e.data, IssueReceived)]
        reports = [
            (e.issue_id, (e.partner_id, *correlation_key(e.service, e.region)), str(e.tenant_id))
            for e in received
            if e.tenant_id is not None and e.region
        ]
        await lock_correlation_keys(uow.session, (key for _, key, _ in reports))
        await preload_reports(uow.session, reports)
        loaded = await preload_issues(uow, envelopes)
        partners = {event.partner_id for event in received}
        if partners:
            await preload_incidents(uow.session, partners)
        return loaded

    async def handle(self, uow: UnitOfWork, envelope: Envelope, remote: Any) -> None:
        event = _received(envelope)
        loaded = await issue_awaiting(uow.session, event, IssueStatus.RECEIVED)
        if loaded is None:
            return
        issue, partner = loaded
        if _superseded(event, issue):
            log.info("issue %s: skipped an announcement of text it no longer has", issue.id)
            return
        health = await local_incidents(uow.session, partner_id=partner.id)
        if isinstance(remote, HealthView):
            health = merge(health, remote)
        now = self._clock()
        facts = gather(
            _issue_facts(event), partner_facts(partner), health=health, cluster=None, now=now
        )
        correlated = await self._correlate(uow, event, partner, facts)
        if correlated is not None:
            facts = with_cluster(facts, correlated.cluster)
        decision = evaluate(self._rules.for_partner(partner.id), facts)
        _record(uow, issue, event, decision, now)
        if correlated is not None and correlated.newly_linked:
            await uow.flush()  # the members' classifications, if this batch staged them
            for member in correlated.newly_linked:
                await _link_member(uow, member, correlated, now)

    async def _correlate(
        self, uow: UnitOfWork, event: IssueReceived, partner: Partner, facts: Facts
    ) -> Correlated | None:
        """Only failures nobody has explained yet, from a known tenant and region, count."""
        policy = policy_for(partner, self._settings)
        eligible = (
            policy.enabled
            and facts.category in FAILURE_CATEGORIES
            and facts.incident is None
            and event.tenant_id is not None
            and event.region
        )
        if not eligible or event.tenant_id is None or event.region is None:
            return None
        report = Report(
            issue_id=event.issue_id,
            partner_id=partner.id,
            tenant=str(event.tenant_id),
            service=event.service,
            region=event.region,
            observed_at=event.received_at,
        )
        return await correlate(uow.session, report, policy)


def _superseded(event: IssueReceived, issue: Issue) -> bool:
    """Whether ``event`` announced text, a category or a ticket type the PSA has since replaced
    (an earlier announcement re-driven or replayed while the issue waits to be classified
    again): the latest one classifies it."""
    return (event.description, event.category, event.psa_type) != (
        issue.description,
        issue.category,
        issue.psa_type,
    )


def _received(envelope: Envelope) -> IssueReceived:
    if not isinstance(envelope.data, IssueReceived):
        raise InvalidMessage(f"classifier does not handle {envelope.type}")
    return envelope.data


def _issue_facts(event: IssueReceived) -> IssueFacts:
    return IssueFacts(
        title=event.title,
        description=event.description,
        service=event.service,
        severity=Severity(event.severity),
        category=event.category,
        region=event.region,
        tenant_id=event.tenant_id,
        locale=event.locale,
        psa_type=event.psa_type,
    )


def _record(
    uow: UnitOfWork, issue: Issue, event: IssueReceived, decision: Decision, now: datetime
) -> None:
    session = uow.session
    stage(session, _insert_classification, {"issue_id": issue.id, **_decision_fields(decision)})
    advance(
        session,
        issue,
        IssueStatus.CLASSIFIED,
        detail=f"{decision.outcome.value} ({decision.rule_id})",
        at=now,
        service=SERVICE,
        changes={"severity": decision.severity} if decision.severity is not None else None,
        event=IssueClassified(
            issue_id=event.issue_id,
            partner_id=event.partner_id,
            external_ref=event.external_ref,
            severity=decision.severity or event.severity,
            service=event.service,
            region=event.region,
            classified_at=now,
            tags=list(decision.tags),
            **_decision_fields(decision),
        ),
    )


async def _link_member(
    uow: UnitOfWork, issue_id: uuid.UUID, correlated: Correlated, now: datetime
) -> None:
    """An issue classified before its cluster formed: record the link and announce it."""
    cluster = correlated.cluster
    session = uow.session
    classification = await session.scalar(
        select(Classification).where(Classification.issue_id == issue_id)
    )
    member = await session.get(Issue, issue_id)
    if classification is None or member is None:
        return
    note = f"joined outage cluster {cluster.id} ({cluster.size} tenants)"
    classification.cluster_id = cluster.id
    classification.reasons = [*classification.reasons, note]
    add_note(session, member, note, at=now, service=SERVICE)


def _insert_classification(dialect: str) -> ClauseElement:
    return inserted(table_of(Classification), "issue_id", *DECISION_FIELDS)


DECISION_FIELDS = (
    "category",
    "category_source",
    "outcome",
    "vehicle",
    "partner_role",
    "reasons",
    "rule_id",
    "health_incident_id",
    "cluster_id",
    "language",
    "confidence",
)


def _decision_fields(decision: Decision) -> dict[str, Any]:
    """What is both stored as the classification and announced in ``IssueClassified``."""
    fields = {name: getattr(decision, name) for name in DECISION_FIELDS}
    fields["reasons"] = list(decision.reasons)
    return fields
