"""Accepting an issue: stored with its outbox event in one transaction, idempotently.

The accept is the intake's hot path, so it runs on the driver connection
(:mod:`shared.db.direct`): the same rows as through the ORM, a quarter of the CPU; its writes
are :mod:`services.intake.accept_writes`. The accepts of concurrent requests are written
together (:mod:`services.intake.accepts`), an ``Idempotency-Key``'s record with its own
accept. The customer an issue names, and a key's record, are read with those of concurrent
requests (:mod:`services.intake.customer_lookups`, :mod:`services.intake.recorded_keys`)
before the accept's transaction: customers are never changed or removed, and a key recorded
in between fails the record's primary key.
"""

from __future__ import annotations

import uuid
from typing import Any

import structlog
from sqlalchemy import bindparam, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.sql.expression import ClauseElement

from services.intake.accept_writes import accept_rows, store
from services.intake.accepts import Accepts
from services.intake.customer_lookups import CustomerLookups, Named
from services.intake.deps import Principal
from services.intake.idempotency import IdempotentRequest, StoredAnswer
from services.intake.problems import invalid_field
from services.intake.psa import Resolved
from services.intake.recorded_keys import RecordedKeys
from services.intake.schemas import IssueAccepted, IssueCreate
from shared.db.base import table_of, utcnow
from shared.db.direct import Direct, DirectStatements
from shared.db.models import Issue
from shared.events.models import IssueReceived
from shared.ids import new_id
from shared.vocabulary import IssueStatus

SERVICE = "intake"


async def accept_issue(
    direct: Direct,
    accepts: Accepts,
    customers: CustomerLookups,
    principal: Principal,
    body: IssueCreate,
    request: IdempotentRequest,
    severity: Resolved,
    *,
    recorded_keys: RecordedKeys | None = None,
) -> StoredAnswer:
    """Store the issue and its ``IssueReceived`` event in one transaction; a PSA ticket sent
    again answers 200 with the issue it already is.

    A request with an ``Idempotency-Key`` the intake has not seen is written with the others
    (:class:`Accepts`), its key's record in the same transaction; one whose key is known
    (``recorded_keys``, read with the keys of concurrent requests) replays its answer without
    writing. What that cannot settle (its ticket already an issue, the key recorded meanwhile
    by a concurrent request, or an expired record in the way) is settled in a transaction of
    its own, which reads the key again."""
    detail = f"accepted from PSA; severity {severity.severity.value} ({severity.source})"
    found = None
    if body.customer_id is not None or body.tenant_id is not None:
        found = await customers.find(Named(principal.partner_id, body.customer_id, body.tenant_id))
    if request.key is None:
        event = _received(principal, body, severity, _owned(found, principal, body))
        if await accepts.store(accept_rows(event, service=SERVICE, detail=detail)):
            return _accepted(event)
        async with direct.statements() as statements:
            return await _already_accepted(statements, principal, body.external_ref)

    data = body.model_dump(mode="json")
    if recorded_keys is not None:
        recorded = await recorded_keys.find(principal.partner_id, request.key)
        if (replayed := request.replay(recorded, data)) is not None:
            return replayed
    event = _received(principal, body, severity, _owned(found, principal, body))
    answer = _answer(event)
    record = request.record(principal.partner_id, data, answer)
    try:
        if await accepts.store(accept_rows(event, service=SERVICE, detail=detail, record=record)):
            return _accepted(event)
    except IntegrityError:
        pass  # the key was recorded meanwhile: the transaction below replays its answer

    async def produce(work: DirectStatements) -> StoredAnswer:
        event = _received(principal, body, severity, _owned(found, principal, body))
        if not await store(work, accept_rows(event, service=SERVICE, detail=detail)):
            return await _already_accepted(work, principal, body.external_ref)
        return _accepted(event)

    return await request.run_direct(direct, principal.partner_id, data, produce)


def _accepted(event: IssueReceived) -> StoredAnswer:
    structlog.contextvars.bind_contextvars(issue_id=str(event.issue_id))
    return _answer(event)


def _answer(event: IssueReceived) -> StoredAnswer:
    accepted = IssueAccepted(
        id=event.issue_id, status=IssueStatus.RECEIVED, external_ref=event.external_ref
    )
    return StoredAnswer(202, accepted.model_dump(mode="json"), _location(event.issue_id))


def _location(issue_id: uuid.UUID) -> str:
    return f"/v1/issues/{issue_id}"


async def _already_accepted(
    work: DirectStatements, principal: Principal, external_ref: str
) -> StoredAnswer:
    [(issue_id, status)] = await work.fetch(
        _select_issue, {"partner_id": principal.partner_id, "external_ref": external_ref}
    )
    duplicate = IssueAccepted(
        id=issue_id, status=IssueStatus(status), external_ref=external_ref, duplicate=True
    )
    return StoredAnswer(200, duplicate.model_dump(mode="json"), _location(issue_id))


def _received(
    principal: Principal,
    body: IssueCreate,
    severity: Resolved,
    customer: dict[str, Any] | None,
) -> IssueReceived:
    """The event announcing the issue, filled in from its customer when it names one."""
    return IssueReceived(
        issue_id=new_id(),
        partner_id=principal.partner_id,
        customer_id=customer["id"] if customer else None,
        tenant_id=body.tenant_id or (customer["tenant_id"] if customer else None),
        external_ref=body.external_ref,
        title=body.title,
        description=body.description,
        service=body.service,
        region=body.region or (customer["region"] if customer else None),
        category=body.category,
        psa_type=body.psa_type,
        severity=severity.severity,
        locale=body.locale or (customer["locale"] if customer else None),
        contact=body.contact.model_dump(exclude_none=True) if body.contact else {},
        received_at=utcnow(),
    )


def _owned(
    customer: dict[str, Any] | None, principal: Principal, body: IssueCreate
) -> dict[str, Any] | None:
    """``customer``, unless the body names one by id that is not the partner's."""
    if body.customer_id is not None and (
        customer is None or customer["partner_id"] != principal.partner_id
    ):
        raise invalid_field("body.customer_id", "no such customer", "not_found")
    return customer


def _select_issue(dialect: str) -> ClauseElement:
    issues = table_of(Issue)
    return select(issues.c.id, issues.c.status).where(
        issues.c.partner_id == bindparam("partner_id"),
        issues.c.external_ref == bindparam("external_ref"),
    )
