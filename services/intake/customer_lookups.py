"""The customers issues name, those of concurrent requests read together.

An issue may name its customer by id or by Entra tenant; the intake fills the tenant, region
and locale in from the customer's row. Read per request, that is a pooled connection and a
round trip for each accept. Here the requests that arrive while one read is out share the next
(:mod:`shared.batching`): one connection and one or two statements for the lot. Nothing is
kept between reads, so a customer registered a moment ago is found by the next request.
"""

from __future__ import annotations

import uuid
from typing import Any, NamedTuple

from sqlalchemy.sql.expression import ClauseElement

from shared.batching import Batcher
from shared.db.base import table_of
from shared.db.direct import Direct
from shared.db.listed import keyed, listed_ids, paired
from shared.db.models import Customer

FIELDS = ("id", "partner_id", "tenant_id", "region", "locale")


class Named(NamedTuple):
    """The customer a request names: by id when it gives one, else by its tenant."""

    partner_id: uuid.UUID
    customer_id: uuid.UUID | None
    tenant_id: uuid.UUID | None


class CustomerLookups:
    def __init__(self, direct: Direct, *, max_batch: int, linger_s: float = 0.0) -> None:
        self._direct = direct
        self._batcher: Batcher[Named, dict[str, Any] | None] = Batcher(
            self._find_all, name="customer_lookups", max_batch=max_batch, linger_s=linger_s
        )

    async def find(self, named: Named) -> dict[str, Any] | None:
        """The customer's ``FIELDS`` (by id: whichever partner it belongs to), or None."""
        return await self._batcher.submit(named)

    async def aclose(self) -> None:
        await self._batcher.aclose()

    async def _find_all(self, named: list[Named]) -> list[dict[str, Any] | None]:
        ids = [n.customer_id for n in named if n.customer_id is not None]
        tenants = sorted(
            {(n.partner_id, n.tenant_id) for n in named if n.customer_id is None and n.tenant_id}
        )
        rows: list[Any] = []
        async with self._direct.statements() as statements:
            dialect = statements.dialect
            if ids:
                rows += await statements.fetch(_by_id, {"keys": listed_ids(ids, dialect)})
            if tenants:
                rows += await statements.fetch(_by_tenant, _pairs(tenants, dialect))
        found = [dict(zip(FIELDS, row, strict=True)) for row in rows]
        by_id = {c["id"]: c for c in found}
        by_tenant = {(c["partner_id"], c["tenant_id"]): c for c in found}
        return [
            by_id.get(n.customer_id)
            if n.customer_id is not None
            else by_tenant.get((n.partner_id, n.tenant_id))
            for n in named
        ]


def _pairs(pairs: list[tuple[uuid.UUID, uuid.UUID]], dialect: str) -> dict[str, list[Any]]:
    """Parameters of :func:`_by_tenant`: two lists in step on PostgreSQL, two sets on SQLite."""
    partners, tenants = [p for p, _ in pairs], [t for _, t in pairs]
    if dialect == "postgresql":
        return {"partners": partners, "tenants": tenants}
    return {"partners": listed_ids(partners, dialect), "tenants": listed_ids(tenants, dialect)}


def _by_id(dialect: str) -> ClauseElement:
    return keyed(table_of(Customer), "id", dialect, columns=FIELDS)


def _by_tenant(dialect: str) -> ClauseElement:
    """The customers of parameter pairs ``partners`` and ``tenants`` (see :func:`paired`)."""
    customers = table_of(Customer)
    return paired(
        customers, ("partner_id", "tenant_id"), ("partners", "tenants"), dialect, chosen=FIELDS
    )
