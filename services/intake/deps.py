"""Request dependencies: the runtime, the authenticated principal and role checks."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Annotated, Any, Protocol, TypeVar

import structlog
from fastapi import Depends, Request

from services.intake.key_checks import KeyChecks
from services.intake.problems import Problem
from services.intake.ratelimit import KeyRateLimiter
from services.runtime import Runtime
from shared.db.models import Issue
from shared.db.uow import UnitOfWork
from shared.security import parse_prefix
from shared.vocabulary import Category, Role

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


async def authenticate(request: Request) -> Principal:
    """The key's partner and role; 401 for a missing, unknown or revoked key, 429 over its
    rate limit."""
    token = bearer_token(request.headers.get("authorization", ""))
    prefix = parse_prefix(token)
    if prefix is None:
        raise Problem(
            401,
            "A valid 'Authorization: Bearer <api key>' header is required.",
            headers=_UNAUTHORIZED,
        )
    # Every request reads its key (a revoked key is refused at once), with the others waiting.
    checks: KeyChecks = request.app.state.key_checks
    key = await checks.check(prefix, token)
    if key is None:
        raise Problem(401, "The API key is unknown or revoked.", headers=_UNAUTHORIZED)
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


def bearer_token(authorization: str) -> str:
    """The credentials of an ``Authorization: Bearer …`` header (the scheme in any case);
    empty for another scheme or none."""
    scheme, _, credentials = authorization.partition(" ")
    return credentials.strip() if scheme.lower() == "bearer" else ""


def require(*roles: Role) -> Callable[..., Coroutine[Any, Any, Principal]]:
    """A dependency that authenticates and admits only ``roles`` (``admin_agent`` always).

    One dependency with no others under it: FastAPI's cost is per dependency, on every request.
    It reads the ``Authorization`` header itself; the OpenAPI document names the scheme
    (:mod:`services.intake.openapi`)."""
    allowed = {Role.ADMIN_AGENT, *roles}

    async def dependency(request: Request) -> Principal:
        principal = await authenticate(request)
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
    lock: bool = False,
) -> Owned:
    """The partner's row; another partner's, or one ``hidden`` from this key, answers 404
    exactly like a row that does not exist. ``lock``: held until the transaction ends, for a
    change computed from what is read (PostgreSQL; on SQLite the write gate serializes)."""
    row = await uow.session.get(model, key, with_for_update=lock or None)
    if row is None or row.partner_id != principal.partner_id or (hidden and hidden(row)):
        raise Problem(404, f"No {what} {key}.")
    if isinstance(row, Issue):
        structlog.contextvars.bind_contextvars(issue_id=str(key))
    return row
