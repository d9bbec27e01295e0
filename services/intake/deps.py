"""Request dependencies: the runtime, the authenticated principal and role checks."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Annotated, Any, NamedTuple, Protocol, TypeVar

import structlog
from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy import bindparam, select, update
from sqlalchemy.sql.expression import ClauseElement

from services.intake.problems import Problem
from services.intake.ratelimit import KeyRateLimiter
from services.runtime import Runtime
from shared.db.base import table_of, utcnow
from shared.db.models import ApiKey, Issue
from shared.db.uow import UnitOfWork
from shared.security import parse_prefix, verify_key
from shared.vocabulary import Category, Role

LAST_USED_RESOLUTION = timedelta(minutes=1)
# Partner Center's billing admin and sales agent work on their own kind of issue only.
ROLE_CATEGORIES: dict[Role, tuple[Category, ...]] = {
    Role.BILLING_ADMIN: (Category.BILLING,),
    Role.SALES_AGENT: (Category.SUBSCRIPTION,),
}


@dataclass(frozen=True, slots=True)
class Principal:
    partner_id: uuid.UUID
    role: Role
    key_id: uuid.UUID

    @property
    def categories(self) -> tuple[Category, ...] | None:
        """The issue categories this key may file, read and update; ``None``: all."""
        return ROLE_CATEGORIES.get(self.role)

    def may_handle(self, category: str | None) -> bool:
        allowed = self.categories
        return allowed is None or category in allowed


async def get_runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]


async def get_uow(runtime: RuntimeDep) -> UnitOfWork:
    return runtime.uow_factory()


UowDep = Annotated[UnitOfWork, Depends(get_uow)]

_UNAUTHORIZED = {"WWW-Authenticate": 'Bearer realm="csp-escalation"'}


_BEARER = HTTPBearer(
    auto_error=False,
    scheme_name="ApiKey",
    description="An API key from `escalation keys create`: `Authorization: Bearer csp_…`.",
)


async def authenticate(
    request: Request, credentials: HTTPAuthorizationCredentials | None
) -> Principal:
    """The key's partner and role; 401 for a missing, unknown or revoked key, 429 over its
    rate limit."""
    runtime: Runtime = request.app.state.runtime
    token = credentials.credentials if credentials else ""
    prefix = parse_prefix(token.strip())
    if prefix is None:
        raise Problem(
            401,
            "A valid 'Authorization: Bearer <api key>' header is required.",
            headers=_UNAUTHORIZED,
        )
    pepper = runtime.settings.app.api_key_pepper.get_secret_value()
    # Every request reads its key (a revoked key is refused at once), so on the driver.
    async with runtime.direct.statements() as statements:
        found = await statements.fetch(_key_by_prefix, {"prefix": prefix})
        key = _Key(*found[0]) if found else None
        if (
            key is None
            or key.revoked_at is not None
            or not verify_key(token.strip(), key.key_hash, pepper=pepper)
        ):
            raise Problem(401, "The API key is unknown or revoked.", headers=_UNAUTHORIZED)
        now = utcnow()
        if key.last_used_at is None or now - key.last_used_at > LAST_USED_RESOLUTION:
            # A lone bookkeeping write, not part of the request's unit of work.
            await statements.execute(_key_used, {"key_id": key.id, "used_at": now})
    principal = Principal(partner_id=key.partner_id, role=Role(key.role), key_id=key.id)
    structlog.contextvars.bind_contextvars(partner_id=str(principal.partner_id))
    limiter: KeyRateLimiter = request.app.state.rate_limiter
    wait = limiter.take(str(principal.key_id))
    if wait is not None:
        raise Problem(
            429,
            f"This API key is over its rate limit; retry in {wait} s.",
            headers={"Retry-After": str(wait)},
        )
    return principal


class _Key(NamedTuple):
    id: uuid.UUID
    partner_id: uuid.UUID
    role: str
    key_hash: str
    revoked_at: datetime | None
    last_used_at: datetime | None


def _key_by_prefix(dialect: str) -> ClauseElement:
    keys = table_of(ApiKey)
    return select(*(keys.c[name] for name in _Key._fields)).where(
        keys.c.prefix == bindparam("prefix")
    )


def _key_used(dialect: str) -> ClauseElement:
    keys = table_of(ApiKey)
    return (
        update(keys)
        .where(keys.c.id == bindparam("key_id"))
        .values(last_used_at=bindparam("used_at"))
    )


def require(*roles: Role) -> Callable[..., Coroutine[Any, Any, Principal]]:
    """A dependency that authenticates and admits only ``roles`` (``admin_agent`` always)."""
    allowed = {Role.ADMIN_AGENT, *roles}

    # One dependency, not one per step: FastAPI's cost is per dependency, on every request.
    async def dependency(
        request: Request,
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_BEARER)],
    ) -> Principal:
        principal = await authenticate(request, credentials)
        if principal.role not in allowed:
            raise Problem(403, f"The role {principal.role.value} may not do this.")
        return principal

    return dependency


class PartnerOwned(Protocol):
    partner_id: Any


Owned = TypeVar("Owned", bound=PartnerOwned)


async def owned(
    uow: UnitOfWork,
    principal: Principal,
    model: type[Owned],
    key: uuid.UUID,
    what: str,
    *,
    hidden: Callable[[Owned], bool] | None = None,
) -> Owned:
    """The partner's row; another partner's, or one ``hidden`` from this key, answers 404
    exactly like a row that does not exist."""
    row = await uow.session.get(model, key)
    if row is None or row.partner_id != principal.partner_id or (hidden and hidden(row)):
        raise Problem(404, f"No {what} {key}.")
    if isinstance(row, Issue):
        structlog.contextvars.bind_contextvars(issue_id=str(key))
    return row
