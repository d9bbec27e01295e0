"""Microsoft request lifecycle: status changes, first-response targets, the update webhook."""

from __future__ import annotations

import uuid
from collections.abc import Collection
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from shared.db.models import MicrosoftRequest, MicrosoftRequestIssue
from shared.webhook_queue import queue_deliveries

STATUSES = ("none", "open", "closed", "attention_needed")
# Microsoft's first-response targets for partner service requests, by severity.
FIRST_RESPONSE_TARGET = {
    "critical": timedelta(hours=2),
    "moderate": timedelta(hours=4),
    "minimal": timedelta(hours=8),
}
UPDATED = "microsoft_request.updated"


def parse_status(value: str) -> str:
    """Partner Center's status, in whatever case it arrives; ValueError when unknown."""
    status = value.strip().casefold()
    if status not in STATUSES:
        raise ValueError(f"unknown status {value!r}; expected one of {', '.join(STATUSES)}")
    return status


def apply_update(
    request: MicrosoftRequest,
    *,
    now: datetime,
    status: str | None = None,
    microsoft_id: str | None = None,
    note: str | None = None,
    author: str = "partner",
    responded: bool = False,
) -> list[str]:
    """Change the record; return the names of what changed. Filing it (status ``open`` or a
    Microsoft request number) starts the first-response clock."""
    changed = []
    if status is not None and status != request.status:
        request.status = status
        changed.append("status")
    if microsoft_id is not None and microsoft_id != request.microsoft_id:
        request.microsoft_id = microsoft_id
        changed.append("microsoft_id")
    if note:
        request.notes = [*request.notes, {"at": now.isoformat(), "author": author, "text": note}]
        changed.append("notes")
    if request.filed_at is None and (request.status == "open" or request.microsoft_id):
        request.filed_at = now
        request.first_response_due_at = now + FIRST_RESPONSE_TARGET.get(
            request.severity, FIRST_RESPONSE_TARGET["moderate"]
        )
        changed.append("filed_at")
    if responded and request.first_response_at is None:
        request.first_response_at = now
        changed.append("first_response_at")
    if changed:
        request.updated_at = now
    return changed


def is_overdue(request: MicrosoftRequest, now: datetime) -> bool:
    return (
        request.first_response_due_at is not None
        and request.first_response_at is None
        and request.status != "closed"
        and now > request.first_response_due_at
    )


async def issue_ids_of(
    session: AsyncSession, request_ids: Collection[uuid.UUID]
) -> dict[uuid.UUID, list[str]]:
    """The issues each of the requests is for, sorted, in one query."""
    found: dict[uuid.UUID, list[str]] = {request_id: [] for request_id in request_ids}
    if found:
        rows = await session.execute(
            select(MicrosoftRequestIssue.request_id, MicrosoftRequestIssue.issue_id).where(
                MicrosoftRequestIssue.request_id.in_(found)
            )
        )
        for request_id, issue_id in rows:
            found[request_id].append(str(issue_id))
    for issue_ids in found.values():
        issue_ids.sort()
    return found


def view(request: MicrosoftRequest, now: datetime, issue_ids: list[str]) -> dict[str, Any]:
    return {
        "id": str(request.id),
        "microsoft_id": request.microsoft_id,
        "status": request.status,
        "severity": request.severity,
        "vehicle": request.vehicle,
        "title": request.title,
        "issue_ids": issue_ids,
        "cluster_id": request.cluster_id,
        "filed_at": request.filed_at.isoformat() if request.filed_at else None,
        "first_response_due_at": (
            request.first_response_due_at.isoformat() if request.first_response_due_at else None
        ),
        "first_response_at": (
            request.first_response_at.isoformat() if request.first_response_at else None
        ),
        "overdue": is_overdue(request, now),
        "submission": request.submission,
        "submission_error": request.submission_error,
    }


async def announce(
    session: AsyncSession, request: MicrosoftRequest, *, now: datetime, changed: list[str]
) -> list[str]:
    """Queue ``microsoft_request.updated`` for the partner's subscriptions."""
    event_id = f"mr-{request.id}-{uuid.uuid4().hex[:12]}"
    issue_ids = (await issue_ids_of(session, [request.id]))[request.id]
    data = {**view(request, now, issue_ids), "changed": changed}
    return await queue_deliveries(
        session, partner_id=request.partner_id, webhook_type=UPDATED, data=data, event_id=event_id
    )
