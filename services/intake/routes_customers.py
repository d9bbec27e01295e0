"""``/v1/customers``: the partner's customer tenants."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Query
from fastapi.responses import JSONResponse
from sqlalchemy import select

from services.intake.deps import Principal, RuntimeDep, UowDep, owned, require
from services.intake.idempotency import IdempotencyDep, StoredAnswer
from services.intake.pagination import keyset_page
from services.intake.problems import PROBLEM, Problem
from services.intake.schemas_partner import CustomerCreate, CustomerPage, CustomerView
from shared.db.models import Customer
from shared.db.uow import UnitOfWork
from shared.vocabulary import Role

router = APIRouter(prefix="/v1/customers", tags=["customers"])
Writer = Annotated[Principal, Depends(require(Role.HELPDESK_AGENT, Role.SALES_AGENT))]
AnyRole = Annotated[Principal, Depends(require(*Role))]


@router.post(
    "",
    status_code=201,
    response_model=CustomerView,
    summary="Add a customer tenant",
    description="A tenant id is unique per partner: adding it again answers 409 with the "
    "existing customer's id in `customer_id`.",
    responses={
        401: PROBLEM,
        403: PROBLEM,
        409: PROBLEM,
        413: PROBLEM,
        415: PROBLEM,
        422: PROBLEM,
        429: PROBLEM,
    },
)
async def create_customer(
    body: CustomerCreate, principal: Writer, runtime: RuntimeDep, idempotent: IdempotencyDep
) -> JSONResponse:
    async def produce(uow: UnitOfWork) -> StoredAnswer:
        existing = await uow.session.scalar(
            select(Customer.id).where(
                Customer.partner_id == principal.partner_id, Customer.tenant_id == body.tenant_id
            )
        )
        if existing is not None:
            raise Problem(
                409,
                f"Tenant {body.tenant_id} is already customer {existing}.",
                customer_id=str(existing),
            )
        customer = Customer(
            id=uuid.uuid4(),
            partner_id=principal.partner_id,
            tenant_id=body.tenant_id,
            name=body.name,
            region=body.region,
            locale=body.locale.value,
            contact=body.contact.model_dump(exclude_none=True) if body.contact else {},
        )
        uow.session.add(customer)
        await uow.session.flush()
        view = CustomerView.model_validate(customer, from_attributes=True)
        return StoredAnswer(201, view.model_dump(mode="json"), f"/v1/customers/{customer.id}")

    answer = await idempotent.run(
        runtime.uow_factory, principal.partner_id, body.model_dump(mode="json"), produce
    )
    return answer.response()


@router.get(
    "",
    response_model=CustomerPage,
    summary="The partner's customers, newest first",
    responses={401: PROBLEM, 422: PROBLEM, 429: PROBLEM},
)
async def list_customers(
    principal: AnyRole,
    uow: UowDep,
    tenant_id: uuid.UUID | None = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 50,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
) -> CustomerPage:
    async with uow:
        query = select(Customer).where(Customer.partner_id == principal.partner_id)
        if tenant_id is not None:
            query = query.where(Customer.tenant_id == tenant_id)
        page, next_cursor = await keyset_page(
            uow.session,
            query,
            Customer.created_at,
            Customer.id,
            limit=limit,
            cursor=cursor,
            id_type=uuid.UUID,
        )
        return CustomerPage(
            items=[CustomerView.model_validate(c, from_attributes=True) for c in page],
            next_cursor=next_cursor,
        )


@router.get(
    "/{customer_id}",
    response_model=CustomerView,
    summary="One customer",
    responses={401: PROBLEM, 404: PROBLEM, 429: PROBLEM},
)
async def get_customer(customer_id: uuid.UUID, principal: AnyRole, uow: UowDep) -> CustomerView:
    async with uow:
        customer = await owned(uow, principal, Customer, customer_id, "customer")
        return CustomerView.model_validate(customer, from_attributes=True)
