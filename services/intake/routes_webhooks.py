"""``/v1/webhooks``: subscriptions to signed outcome notifications."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends
from sqlalchemy import select

from services.intake.deps import Principal, RuntimeDep, UowDep, require
from services.intake.problems import PROBLEM, Problem
from services.intake.schemas import WebhookCreate, WebhookCreated, WebhookView
from services.notifier.signing import new_secret
from services.notifier.targets import TargetRefused, check_target
from shared.db.models import WebhookSubscription
from shared.vocabulary import WEBHOOK_EVENT_TYPES, Role

router = APIRouter(prefix="/v1/webhooks", tags=["webhooks"])
Admin = Annotated[Principal, Depends(require())]


@router.post(
    "",
    status_code=201,
    response_model=WebhookCreated,
    summary="Subscribe an endpoint",
    responses={401: PROBLEM, 403: PROBLEM, 422: PROBLEM},
)
async def create_webhook(
    body: WebhookCreate, principal: Admin, uow: UowDep, runtime: RuntimeDep
) -> WebhookCreated:
    unknown = sorted(set(body.event_types) - set(WEBHOOK_EVENT_TYPES))
    if unknown:
        raise Problem(
            422,
            "The request has invalid fields.",
            errors=[
                {
                    "field": "body.event_types",
                    "message": f"unknown event types: {unknown}",
                    "type": "enum",
                }
            ],
        )
    settings = runtime.settings
    try:
        await check_target(
            str(body.url),
            allow_private=settings.webhook.allow_private_targets,
            require_https=settings.app.environment == "production",
        )
    except TargetRefused as exc:
        raise Problem(
            422,
            "The request has invalid fields.",
            errors=[{"field": "body.url", "message": str(exc), "type": "url_refused"}],
        ) from exc
    async with uow:
        subscription = WebhookSubscription(
            id=uuid.uuid4(),
            partner_id=principal.partner_id,
            url=str(body.url),
            event_types=body.event_types,
            description=body.description,
            secret=new_secret(),
            enabled=True,
        )
        uow.session.add(subscription)
        await uow.session.flush()
        created = WebhookCreated.model_validate(subscription, from_attributes=True)
        await uow.commit()
        return created


@router.get(
    "",
    response_model=list[WebhookView],
    summary="The partner's subscriptions",
    responses={401: PROBLEM, 403: PROBLEM},
)
async def list_webhooks(
    principal: Annotated[Principal, Depends(require(Role.READER))], uow: UowDep
) -> list[WebhookView]:
    async with uow:
        rows = await uow.session.scalars(
            select(WebhookSubscription)
            .where(WebhookSubscription.partner_id == principal.partner_id)
            .order_by(WebhookSubscription.created_at)
        )
        return [WebhookView.model_validate(row, from_attributes=True) for row in rows]
