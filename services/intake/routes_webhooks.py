"""``/v1/webhooks``: subscriptions to signed outcome notifications, and their deliveries."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Response
from fastapi.responses import JSONResponse
from sqlalchemy import or_, select

from services.intake.deps import Principal, RuntimeDep, UowDep, owned, require
from services.intake.idempotency import IdempotencyDep, StoredAnswer
from services.intake.pagination import keyset_page
from services.intake.problems import PROBLEM, Problem, invalid_field
from services.intake.schemas import (
    AttemptView,
    DeliveryDetail,
    DeliveryPage,
    RedeliverMany,
    Requeued,
    SecretRotated,
    WebhookCreate,
    WebhookCreated,
    WebhookEnabled,
    WebhookView,
)
from services.notifier.signing import new_secret
from services.notifier.targets import TargetRefused, check_target
from services.runtime import Runtime
from shared.db.base import utcnow
from shared.db.models import Partner, WebhookAttempt, WebhookDelivery, WebhookSubscription
from shared.db.uow import UnitOfWork
from shared.vocabulary import (
    PROVIDER_HANDOFF_EVENT,
    WEBHOOK_EVENT_TYPES,
    WEBHOOK_NOT_SENT,
    Audience,
    CspModel,
    Role,
)
from shared.webhook_queue import requeue

ROTATION_OVERLAP = timedelta(hours=24)
router = APIRouter(prefix="/v1/webhooks", tags=["webhooks"])
Admin = Annotated[Principal, Depends(require())]
Reader = Annotated[Principal, Depends(require(Role.READER))]


@router.post(
    "",
    status_code=201,
    response_model=WebhookCreated,
    summary="Subscribe an endpoint",
    responses={401: PROBLEM, 403: PROBLEM, 422: PROBLEM},
)
async def create_webhook(
    body: WebhookCreate, principal: Admin, runtime: RuntimeDep, idempotent: IdempotencyDep
) -> JSONResponse:
    allowed = (
        WEBHOOK_EVENT_TYPES if body.audience is Audience.PARTNER else (PROVIDER_HANDOFF_EVENT,)
    )
    unknown = sorted(set(body.event_types) - set(allowed))
    if unknown:
        raise invalid_field(
            "body.event_types",
            f"not event types of a {body.audience.value} endpoint: {unknown}; "
            f"expected some of {list(allowed)}",
            "enum",
        )
    try:
        await _check_target(runtime, str(body.url))
    except TargetRefused as exc:
        raise invalid_field("body.url", str(exc), "url_refused") from exc

    async def produce(uow: UnitOfWork) -> StoredAnswer:
        if body.audience is Audience.INDIRECT_PROVIDER:
            partner = await uow.session.get(Partner, principal.partner_id)
            if partner is None or partner.csp_model != CspModel.INDIRECT_RESELLER:
                raise invalid_field(
                    "body.audience",
                    "only an indirect reseller hands issues to an indirect provider",
                    "audience",
                )
        subscription = WebhookSubscription(
            id=uuid.uuid4(),
            partner_id=principal.partner_id,
            url=str(body.url),
            audience=body.audience.value,
            event_types=body.event_types,
            description=body.description,
            secret=new_secret(),
            enabled=True,
        )
        uow.session.add(subscription)
        await uow.session.flush()
        created = WebhookCreated.model_validate(subscription, from_attributes=True)
        return StoredAnswer(201, created.model_dump(mode="json"), f"/v1/webhooks/{created.id}")

    answer = await idempotent.run(
        runtime.uow_factory, principal.partner_id, body.model_dump(mode="json"), produce
    )
    return answer.response()


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
            .where(WebhookSubscription.deleted_at.is_(None))
            .order_by(WebhookSubscription.created_at)
        )
        return [WebhookView.model_validate(row, from_attributes=True) for row in rows]


async def _check_target(runtime: Runtime, url: str) -> None:
    """Raise :class:`TargetRefused` unless ``url`` may receive this deployment's webhooks."""
    await check_target(
        url,
        allow_private=runtime.settings.webhook.allow_private_targets,
        require_https=runtime.settings.app.environment == "production",
    )


def _require_enabled(subscription: WebhookSubscription) -> None:
    """409 while the endpoint is disabled: what is queued for it would not be sent."""
    if not subscription.enabled:
        raise Problem(409, f"The webhook is disabled ({subscription.disabled_reason}).")


async def _owned(
    uow: UnitOfWork, principal: Principal, webhook_id: uuid.UUID, *, lock: bool = False
) -> WebhookSubscription:
    return await owned(
        uow,
        principal,
        WebhookSubscription,
        webhook_id,
        "webhook",
        hidden=lambda subscription: subscription.deleted_at is not None,
        lock=lock,
    )


@router.delete(
    "/{webhook_id}",
    status_code=204,
    summary="Unsubscribe; nothing more is sent",
    responses={401: PROBLEM, 403: PROBLEM, 404: PROBLEM},
)
async def delete_webhook(webhook_id: uuid.UUID, principal: Admin, uow: UowDep) -> Response:
    async with uow:
        subscription = await _owned(uow, principal, webhook_id)
        subscription.deleted_at = utcnow()
        subscription.enabled = False
        subscription.disabled_reason = "deleted"
        await uow.commit()
    return Response(status_code=204)


@router.post(
    "/{webhook_id}/enable",
    response_model=WebhookEnabled,
    summary="Send to a disabled endpoint again, from what the disabling stopped",
    responses={401: PROBLEM, 403: PROBLEM, 404: PROBLEM, 409: PROBLEM},
)
async def enable_webhook(
    webhook_id: uuid.UUID,
    principal: Admin,
    runtime: RuntimeDep,
    uow: UowDep,
    idempotent: IdempotencyDep,
) -> JSONResponse:
    """An endpoint that answered ``410 Gone`` is disabled. Once it is back, this enables it
    and puts the deliveries that disabling stopped back in the queue: the one answered 410 and
    those that were due to it since. Events routed while it was disabled were not queued for it.
    """
    async with uow:
        found = await _owned(uow, principal, webhook_id)
        url, enabled_already = found.url, found.enabled
    if not enabled_already:
        try:  # before the transaction: a name is resolved
            await _check_target(runtime, url)
        except TargetRefused as exc:
            raise Problem(409, f"The endpoint cannot be enabled: {exc}.") from exc

    async def produce(uow: UnitOfWork) -> StoredAnswer:
        subscription = await _owned(uow, principal, webhook_id)
        requeued = 0
        if not subscription.enabled:
            subscription.enabled = True
            subscription.disabled_reason = None
            requeued = await requeue(
                uow.session,
                WebhookDelivery.subscription_id == subscription.id,
                WebhookDelivery.status == "failed",
                or_(
                    WebhookDelivery.last_status_code == 410,
                    WebhookDelivery.last_error.startswith(WEBHOOK_NOT_SENT),
                ),
            )
        view = WebhookView.model_validate(subscription, from_attributes=True)
        enabled = WebhookEnabled(**view.model_dump(), requeued=requeued)
        return StoredAnswer(200, enabled.model_dump(mode="json"))

    answer = await idempotent.run(runtime.uow_factory, principal.partner_id, None, produce)
    return answer.response()


@router.post(
    "/{webhook_id}/rotate-secret",
    response_model=SecretRotated,
    summary="New signing secret; the old one keeps signing for 24 hours",
    responses={401: PROBLEM, 403: PROBLEM, 404: PROBLEM},
)
async def rotate_secret(
    webhook_id: uuid.UUID, principal: Admin, runtime: RuntimeDep, idempotent: IdempotencyDep
) -> JSONResponse:
    async def produce(uow: UnitOfWork) -> StoredAnswer:
        # Locked: a rotation running at the same time keeps what this one hands out as its
        # previous secret, instead of both keeping the one before.
        subscription = await _owned(uow, principal, webhook_id, lock=True)
        expires = utcnow() + ROTATION_OVERLAP
        subscription.previous_secret = subscription.secret
        subscription.previous_secret_expires_at = expires
        subscription.secret = new_secret()
        rotated = SecretRotated(
            id=subscription.id, secret=subscription.secret, previous_secret_expires_at=expires
        )
        return StoredAnswer(200, rotated.model_dump(mode="json"))

    answer = await idempotent.run(runtime.uow_factory, principal.partner_id, None, produce)
    return answer.response()


@router.get(
    "/{webhook_id}/deliveries",
    response_model=DeliveryPage,
    summary="Deliveries to this endpoint with every attempt, newest first",
    responses={401: PROBLEM, 404: PROBLEM, 422: PROBLEM},
)
async def list_deliveries(
    webhook_id: uuid.UUID,
    principal: Reader,
    uow: UowDep,
    status: Annotated[str | None, Query(pattern="^(pending|succeeded|failed|exhausted)$")] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
) -> DeliveryPage:
    async with uow:
        await _owned(uow, principal, webhook_id)
        query = select(WebhookDelivery).where(WebhookDelivery.subscription_id == webhook_id)
        if status:
            query = query.where(WebhookDelivery.status == status)
        page: list[WebhookDelivery]
        page, next_cursor = await keyset_page(
            uow.session,
            query,
            WebhookDelivery.created_at,
            WebhookDelivery.id,
            limit=limit,
            cursor=cursor,
        )
        attempts = await _attempts(uow, [d.id for d in page])
        items = [
            DeliveryDetail.model_validate({**_fields(d), "attempt_log": attempts.get(d.id, [])})
            for d in page
        ]
        return DeliveryPage(items=items, next_cursor=next_cursor)


@router.post(
    "/{webhook_id}/deliveries/redeliver",
    status_code=202,
    response_model=Requeued,
    summary="Send kept deliveries again, oldest first (after a receiver outage)",
    responses={401: PROBLEM, 403: PROBLEM, 404: PROBLEM, 409: PROBLEM, 422: PROBLEM},
)
async def redeliver_many(
    webhook_id: uuid.UUID,
    body: RedeliverMany,
    principal: Admin,
    runtime: RuntimeDep,
    idempotent: IdempotencyDep,
) -> JSONResponse:
    """Every ``exhausted`` (or ``failed``) delivery to this endpoint, up to ``limit``, is
    pending again from its first attempt. Call again until ``requeued`` is under ``limit``."""

    async def produce(uow: UnitOfWork) -> StoredAnswer:
        subscription = await _owned(uow, principal, webhook_id)
        _require_enabled(subscription)
        chosen = (
            select(WebhookDelivery.id)
            .where(
                WebhookDelivery.subscription_id == subscription.id,
                WebhookDelivery.status == body.status,
            )
            .order_by(WebhookDelivery.created_at, WebhookDelivery.id)
            .limit(body.limit)
        )
        if body.created_after is not None:
            chosen = chosen.where(WebhookDelivery.created_at > body.created_after)
        requeued = Requeued(
            requeued=await requeue(uow.session, WebhookDelivery.id.in_(chosen.scalar_subquery()))
        )
        return StoredAnswer(202, requeued.model_dump(mode="json"))

    answer = await idempotent.run(
        runtime.uow_factory, principal.partner_id, body.model_dump(mode="json"), produce
    )
    return answer.response()


@router.post(
    "/{webhook_id}/deliveries/{delivery_id}/redeliver",
    status_code=202,
    response_model=DeliveryDetail,
    summary="Send a delivery again from its first attempt",
    responses={401: PROBLEM, 403: PROBLEM, 404: PROBLEM, 409: PROBLEM},
)
async def redeliver(
    webhook_id: uuid.UUID,
    delivery_id: Annotated[str, Path(max_length=64)],
    principal: Admin,
    runtime: RuntimeDep,
    idempotent: IdempotencyDep,
) -> JSONResponse:
    async def produce(uow: UnitOfWork) -> StoredAnswer:
        subscription = await _owned(uow, principal, webhook_id)
        delivery = await uow.session.get(WebhookDelivery, delivery_id)
        if delivery is None or delivery.subscription_id != webhook_id:
            raise Problem(404, f"No delivery {delivery_id}.")
        _require_enabled(subscription)
        if delivery.status == "pending":
            raise Problem(409, "The delivery is still pending.")
        await requeue(uow.session, WebhookDelivery.id == delivery.id)
        await uow.session.refresh(delivery)
        attempts = await _attempts(uow, [delivery.id])
        detail = DeliveryDetail.model_validate(
            {**_fields(delivery), "attempt_log": attempts.get(delivery.id, [])}
        )
        return StoredAnswer(202, detail.model_dump(mode="json"))

    answer = await idempotent.run(runtime.uow_factory, principal.partner_id, None, produce)
    return answer.response()


async def _attempts(uow: UnitOfWork, ids: list[str]) -> dict[str, list[AttemptView]]:
    found: dict[str, list[AttemptView]] = {}
    if not ids:
        return found
    rows = await uow.session.scalars(
        select(WebhookAttempt)
        .where(WebhookAttempt.delivery_id.in_(ids))
        .order_by(WebhookAttempt.id)
    )
    for row in rows:
        found.setdefault(row.delivery_id, []).append(
            AttemptView.model_validate(row, from_attributes=True)
        )
    return found


def _fields(delivery: WebhookDelivery) -> dict[str, object]:
    return {
        name: getattr(delivery, name)
        for name in DeliveryDetail.model_fields
        if name != "attempt_log"
    }
