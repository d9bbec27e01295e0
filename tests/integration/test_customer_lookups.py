"""The customers concurrent accepts name, read together, on both databases."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from services.intake.customer_lookups import CustomerLookups, Named
from shared.db.direct import Direct
from shared.db.engine import create_session_factory
from shared.db.models import Customer
from shared.db.uow import UnitOfWorkFactory
from tests.support.factories import seed_partner


async def test_each_request_gets_the_customer_it_named(
    engine: AsyncEngine, database_url: str
) -> None:
    """By id or by tenant, known or not; one tenant registered by two partners is each
    partner's own customer; requests that wait together share reads and still get their own."""
    ours, theirs = (await seed_partner(database_url)).id, (await seed_partner(database_url)).id
    shared_tenant, our_tenant, third = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    customers = await _registered(
        engine,
        [
            (ours, shared_tenant, "westeurope"),
            (theirs, shared_tenant, "eastus"),
            (ours, our_tenant, None),
            (ours, third, "northeurope"),
        ],
    )
    lookups = CustomerLookups(Direct(engine), max_batch=64)
    asked = [
        Named(ours, None, shared_tenant),
        Named(theirs, None, shared_tenant),
        Named(ours, customers[2]["id"], None),
        Named(ours, customers[1]["id"], None),  # another partner's: found, refused by the caller
        Named(theirs, None, our_tenant),  # our tenant is not theirs
        Named(ours, uuid.uuid4(), None),
        Named(ours, None, uuid.uuid4()),
        Named(ours, customers[2]["id"], our_tenant),  # by id when both are given
        Named(ours, None, third),
        Named(ours, None, our_tenant),
    ]
    try:
        for _ in range(2):  # all at once (shared reads), then one at a time
            together = await asyncio.gather(*(lookups.find(n) for n in asked))
            alone = [await lookups.find(n) for n in asked]
            assert (
                together
                == alone
                == [
                    customers[0],
                    customers[1],
                    customers[2],
                    customers[1],
                    None,
                    None,
                    None,
                    customers[2],
                    customers[3],
                    customers[2],
                ]
            )
    finally:
        await lookups.aclose()


async def _registered(
    engine: AsyncEngine, rows: list[tuple[uuid.UUID, uuid.UUID, str | None]]
) -> list[dict[str, Any]]:
    """Customers ``(partner, tenant, region)`` registered; each as a look-up answers it."""
    uows = UnitOfWorkFactory(create_session_factory(engine))
    made = [
        Customer(id=uuid.uuid4(), partner_id=p, tenant_id=t, name="Fabrikam", region=r, locale="de")
        for p, t, r in rows
    ]
    async with uows() as uow:
        uow.session.add_all(made)
        await uow.commit()
    return [
        {
            "id": c.id,
            "partner_id": c.partner_id,
            "tenant_id": c.tenant_id,
            "region": c.region,
            "locale": "de",
        }
        for c in made
    ]
