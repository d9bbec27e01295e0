"""``/v1/microsoft-requests``: the records to file with Microsoft, and what happened to them."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Query
from sqlalchemy import select

from services.intake.deps import Principal, UowDep, owned, require
from services.intake.pagination import keyset_page
from services.intake.problems import PROBLEM, invalid_field
from services.intake.schemas import (
    MicrosoftRequestPage,
    MicrosoftRequestPatch,
    MicrosoftRequestView,
)
from shared import microsoft_requests as lifecycle
from shared.db.base import utcnow
from shared.db.models import MicrosoftRequest
from shared.db.uow import UnitOfWork
from shared.vocabulary import Role

router = APIRouter(prefix="/v1/microsoft-requests", tags=["Microsoft requests"])
Readers = Annotated[Principal, Depends(require(Role.HELPDESK_AGENT, Role.READER))]
Admin = Annotated[Principal, Depends(require())]


_OWN_FIELDS = tuple(
    name for name in MicrosoftRequestView.model_fields if name not in {"overdue", "issue_ids"}
)


def _view(request: MicrosoftRequest, issue_ids: list[str]) -> MicrosoftRequestView:
    fields = {name: getattr(request, name) for name in _OWN_FIELDS}
    return MicrosoftRequestView(
        **fields, issue_ids=issue_ids, overdue=lifecycle.is_overdue(request, utcnow())
    )


async def _viewed(uow: UnitOfWork, request: MicrosoftRequest) -> MicrosoftRequestView:
    issue_ids = await lifecycle.issue_ids_of(uow.session, [request.id])
    return _view(request, issue_ids[request.id])


async def _owned(
    uow: UnitOfWork, principal: Principal, request_id: uuid.UUID, *, lock: bool = False
) -> MicrosoftRequest:
    return await owned(uow, principal, MicrosoftRequest, request_id, "Microsoft request", lock=lock)


@router.get(
    "",
    response_model=MicrosoftRequestPage,
    summary="Requests, newest first",
    responses={401: PROBLEM, 403: PROBLEM, 422: PROBLEM},
)
async def list_requests(
    principal: Readers,
    uow: UowDep,
    status: Annotated[
        str | None, Query(pattern="(?i)^(none|open|closed|attention_needed)$")
    ] = None,
    active: Annotated[bool, Query(description="Leave out requests merged into another.")] = True,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
) -> MicrosoftRequestPage:
    async with uow:
        query = select(MicrosoftRequest).where(MicrosoftRequest.partner_id == principal.partner_id)
        if status:
            query = query.where(MicrosoftRequest.status == status.casefold())
        if active:
            query = query.where(MicrosoftRequest.superseded_by_id.is_(None))
        page: list[MicrosoftRequest]
        page, next_cursor = await keyset_page(
            uow.session,
            query,
            MicrosoftRequest.created_at,
            MicrosoftRequest.id,
            limit=limit,
            cursor=cursor,
            id_type=uuid.UUID,
        )
        issue_ids = await lifecycle.issue_ids_of(uow.session, [r.id for r in page])
        items = [_view(r, issue_ids[r.id]) for r in page]
        return MicrosoftRequestPage(items=items, next_cursor=next_cursor)


@router.get(
    "/{request_id}",
    response_model=MicrosoftRequestView,
    summary="One request",
    responses={401: PROBLEM, 403: PROBLEM, 404: PROBLEM},
)
async def get_request(
    request_id: uuid.UUID, principal: Readers, uow: UowDep
) -> MicrosoftRequestView:
    async with uow:
        return await _viewed(uow, await _owned(uow, principal, request_id))


@router.patch(
    "/{request_id}",
    response_model=MicrosoftRequestView,
    summary="Record Microsoft's request number, status or a note",
    responses={401: PROBLEM, 403: PROBLEM, 404: PROBLEM, 422: PROBLEM},
)
async def patch_request(
    request_id: uuid.UUID, body: MicrosoftRequestPatch, principal: Admin, uow: UowDep
) -> MicrosoftRequestView:
    try:
        status = lifecycle.parse_status(body.status) if body.status is not None else None
    except ValueError as exc:
        raise invalid_field("body.status", str(exc), "enum") from exc
    async with uow:
        # Locked: the notes are rewritten whole, and the notifier and the Partner Center
        # connector append to them too.
        request = await _owned(uow, principal, request_id, lock=True)
        now = utcnow()
        changed = lifecycle.apply_update(
            request,
            now=now,
            status=status,
            microsoft_id=body.microsoft_id,
            note=body.note,
            responded=body.responded,
        )
        if changed:
            await lifecycle.announce(uow.session, request, now=now, changed=changed)
        view = await _viewed(uow, request)
        await uow.commit()
        return view
