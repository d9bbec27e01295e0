"""``/v1/issues``: thin HTTP over the issue use cases."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Header
from fastapi.responses import JSONResponse

from services.intake import issues_service
from services.intake.deps import Principal, RuntimeDep, UowDep, require
from services.intake.problems import PROBLEM
from services.intake.schemas import IssueAccepted, IssueCreate, IssueView
from shared.vocabulary import Role

router = APIRouter(prefix="/v1/issues", tags=["issues"])

Filer = Annotated[
    Principal, Depends(require(Role.HELPDESK_AGENT, Role.BILLING_ADMIN, Role.SALES_AGENT))
]
AnyRole = Annotated[Principal, Depends(require(*Role))]


@router.post(
    "",
    status_code=202,
    response_model=IssueAccepted,
    summary="Accept a customer issue",
    responses={
        200: {"model": IssueAccepted, "description": "This PSA ticket was accepted before."},
        401: PROBLEM,
        403: PROBLEM,
        409: PROBLEM,
        422: PROBLEM,
    },
)
async def create_issue(
    body: IssueCreate,
    principal: Filer,
    runtime: RuntimeDep,
    idempotency_key: Annotated[str | None, Header(max_length=255)] = None,
) -> JSONResponse:
    answer = await issues_service.accept_issue(
        runtime.uow_factory, principal, body, idempotency_key=idempotency_key
    )
    location = f"/v1/issues/{answer.body['id']}"
    return JSONResponse(answer.body, status_code=answer.status_code, headers={"Location": location})


@router.get(
    "/{issue_id}",
    response_model=IssueView,
    summary="An issue with its decision and routing",
    responses={401: PROBLEM, 404: PROBLEM},
)
async def get_issue(issue_id: uuid.UUID, principal: AnyRole, uow: UowDep) -> IssueView:
    async with uow:
        return await issues_service.issue_view(uow, principal, issue_id)
