"""``/v1/issues``: thin HTTP over the issue use cases."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse
from starlette.datastructures import State

from services.intake import idempotency, issue_queries, issue_updates, issues_service, psa
from services.intake.accepts import Accepts
from services.intake.customer_lookups import CustomerLookups
from services.intake.deps import Principal, UowDep, require
from services.intake.idempotency import IdempotentRequest
from services.intake.problems import PROBLEM, Problem, invalid_field
from services.intake.schemas import (
    IssueAccepted,
    IssueCreate,
    IssuePage,
    IssuePatch,
    IssueView,
    Timestamp,
)
from services.runtime import Runtime
from shared.vocabulary import IssueStatus, Outcome, Role

router = APIRouter(prefix="/v1/issues", tags=["issues"])

# Who may file an issue: the route's dependency, and what the fast path calls for it.
filer = require(Role.HELPDESK_AGENT, Role.BILLING_ADMIN, Role.SALES_AGENT)
Filer = Annotated[Principal, Depends(filer)]
AnyRole = Annotated[Principal, Depends(require(*Role))]


@router.post(
    "",
    status_code=202,
    response_model=IssueAccepted,
    summary="Accept a customer issue",
    description="`billing_admin` keys file `billing` issues and `sales_agent` keys "
    "`subscription` issues (the category is set for them when absent); other categories "
    "answer 403.",
    responses={
        200: {"model": IssueAccepted, "description": "This PSA ticket was accepted before."},
        401: PROBLEM,
        403: PROBLEM,
        409: PROBLEM,
        413: PROBLEM,
        415: PROBLEM,
        422: PROBLEM,
        429: PROBLEM,
    },
)
async def create_issue(
    body: IssueCreate,
    principal: Filer,
    request: Request,
    idempotency_key: idempotency.IdempotencyKey = None,
) -> JSONResponse:
    # The key read here, not by a dependency of its own: FastAPI's cost is per dependency.
    idempotent = idempotency.of_request(request, idempotency_key)
    return await file_issue(request.app.state, principal, body, idempotent)


async def file_issue(
    state: State, principal: Principal, body: IssueCreate, idempotent: IdempotentRequest
) -> JSONResponse:
    """The accept of ``body`` by an authenticated ``principal``: this route's, and
    :mod:`services.intake.fast_accept`'s for the requests it takes."""
    # The app's state passed in: a dependency for each costs on every accept.
    runtime: Runtime = state.runtime
    accepts: Accepts = state.accepts
    customers: CustomerLookups = state.customers
    body = _within_role(principal, body)
    try:
        severity = psa.resolve(
            severity=body.severity,
            priority=body.priority,
            impact=body.impact,
            urgency=body.urgency,
            settings=runtime.settings.psa,
        )
    except psa.UnknownPriority as exc:
        raise invalid_field(f"body.{exc.field}", str(exc), "psa_priority") from exc
    answer = await issues_service.accept_issue(
        runtime.direct,
        accepts,
        customers,
        principal,
        body,
        idempotent,
        severity,
        recorded_keys=state.recorded_keys,
    )
    return answer.response()


def _within_role(principal: Principal, body: IssueCreate) -> IssueCreate:
    allowed = principal.categories
    if allowed is None:
        return body
    if body.category is None:
        return body.model_copy(update={"category": allowed[0]})
    if body.category not in allowed:
        raise Problem(
            403,
            f"A {principal.role.value} key files {', '.join(c.value for c in allowed)} issues "
            f"only, not {body.category.value}.",
        )
    return body


@router.get(
    "",
    response_model=IssuePage,
    summary="The partner's issues, newest first",
    responses={401: PROBLEM, 422: PROBLEM, 429: PROBLEM},
)
async def list_issues(
    principal: AnyRole,
    uow: UowDep,
    status: IssueStatus | None = None,
    outcome: Outcome | None = None,
    customer_id: uuid.UUID | None = None,
    service: Annotated[str | None, Query(max_length=128)] = None,
    created_after: Annotated[
        Timestamp | None, Query(description="RFC 3339 with an offset.")
    ] = None,
    updated_after: Annotated[
        Timestamp | None,
        Query(
            description="Issues whose status moved or that got a note since (RFC 3339 with an "
            "offset): what a PSA polls for to catch up, e.g. after a webhook outage."
        ),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 50,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
) -> IssuePage:
    async with uow:
        return await issue_queries.list_issues(
            uow,
            principal,
            status=status,
            outcome=outcome,
            customer_id=customer_id,
            service=service,
            created_after=created_after,
            updated_after=updated_after,
            limit=limit,
            cursor=cursor,
        )


@router.get(
    "/{issue_id}",
    response_model=IssueView,
    summary="An issue with its decision and routing",
    responses={401: PROBLEM, 404: PROBLEM, 429: PROBLEM},
)
async def get_issue(issue_id: uuid.UUID, principal: AnyRole, uow: UowDep) -> IssueView:
    async with uow:
        return await issue_queries.issue_view(uow, principal, issue_id)


@router.patch(
    "/{issue_id}",
    response_model=IssueView,
    summary="Resolve or close an issue, answer needs_information, or add a note",
    description="Every change is a timeline step and an `issues.updated` event. Setting the "
    "status it already has changes nothing. `category`, `description` or `psa_type` has an "
    "issue routed without a Microsoft request or provider hand-off (`needs_information`, "
    "`partner_resolves`, `linked_to_incident`) classified and routed again: it goes back to "
    "`received` (its earlier decision stays in the timeline).",
    responses={
        401: PROBLEM,
        403: PROBLEM,
        404: PROBLEM,
        409: PROBLEM,
        413: PROBLEM,
        415: PROBLEM,
        422: PROBLEM,
        429: PROBLEM,
    },
)
async def update_issue(
    issue_id: uuid.UUID, body: IssuePatch, principal: Filer, uow: UowDep
) -> IssueView:
    return await issue_updates.update_issue(uow, principal, issue_id, body)
