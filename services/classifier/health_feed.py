"""``health.incidents`` into the local store, so feeds other than the API can publish incidents."""

from __future__ import annotations

from typing import Any

from shared.db.models import HealthIncident
from shared.db.models.health import GLOBAL_SCOPE
from shared.db.uow import UnitOfWork
from shared.events.envelope import Envelope, InvalidMessage
from shared.events.models import HealthIncidentChanged


async def store_incident(uow: UnitOfWork, envelope: Envelope, _prepared: Any) -> None:
    event = envelope.data
    if not isinstance(event, HealthIncidentChanged):
        raise InvalidMessage(f"the health feed does not handle {envelope.type}")
    scope = str(event.partner_id) if event.partner_id else GLOBAL_SCOPE
    incident = await uow.session.get(HealthIncident, (scope, event.incident_id))
    if incident is None:
        incident = HealthIncident(scope=scope, id=event.incident_id, partner_id=event.partner_id)
        uow.session.add(incident)
    fields = event.model_dump(exclude={"incident_id", "partner_id"})
    fields["classification"] = event.classification.casefold()
    fields["tenant_ids"] = [str(t) for t in event.tenant_ids]
    for name, value in fields.items():
        setattr(incident, name, value)
