"""``/v1/health/incidents``: service-health incidents pushed by the partner or a feed."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path
from sqlalchemy import or_, select

from services.intake.deps import Principal, UowDep, require
from services.intake.problems import PROBLEM
from services.intake.schemas import HealthIncidentPut, HealthIncidentView
from shared.db.models import HealthIncident
from shared.events.models import HealthIncidentChanged
from shared.kafka.outbox import enqueue
from shared.vocabulary import Role

router = APIRouter(prefix="/v1/health/incidents", tags=["service health"])
IncidentId = Annotated[str, Path(pattern=r"^[A-Za-z0-9_.-]{1,64}$", examples=["EX123456"])]


@router.put(
    "/{incident_id}",
    response_model=HealthIncidentView,
    summary="Create or update",
    responses={401: PROBLEM, 403: PROBLEM, 404: PROBLEM, 422: PROBLEM},
)
async def put_incident(
    incident_id: IncidentId,
    body: HealthIncidentPut,
    principal: Annotated[Principal, Depends(require(Role.HELPDESK_AGENT))],
    uow: UowDep,
) -> HealthIncidentView:
    async with uow:
        scope = str(principal.partner_id)
        incident = await uow.session.get(HealthIncident, (scope, incident_id))
        if incident is None:
            incident = HealthIncident(scope=scope, id=incident_id, partner_id=principal.partner_id)
            uow.session.add(incident)
        fields = body.model_dump()
        fields["classification"] = fields["classification"].lower()
        fields["tenant_ids"] = [str(t) for t in body.tenant_ids]
        for name, value in fields.items():
            setattr(incident, name, value)
        await uow.session.flush()
        enqueue(
            uow.session,
            HealthIncidentChanged(
                incident_id=incident_id,
                partner_id=principal.partner_id,
                **body.model_dump(exclude={"classification"}),
                classification=fields["classification"],
            ),
            service="intake",
        )
        view = HealthIncidentView.model_validate(incident, from_attributes=True)
        await uow.commit()
        return view


@router.get(
    "", response_model=list[HealthIncidentView], summary="Known incidents", responses={401: PROBLEM}
)
async def list_incidents(
    principal: Annotated[Principal, Depends(require(*Role))], uow: UowDep, active_only: bool = True
) -> list[HealthIncidentView]:
    async with uow:
        query = select(HealthIncident).where(
            or_(
                HealthIncident.partner_id.is_(None),
                HealthIncident.partner_id == principal.partner_id,
            )
        )
        if active_only:
            query = query.where(HealthIncident.is_resolved.is_(False))
        rows = await uow.session.scalars(
            query.order_by(HealthIncident.updated_at.desc()).limit(500)
        )
        return [HealthIncidentView.model_validate(r, from_attributes=True) for r in rows]
