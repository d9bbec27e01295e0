"""``/v1/partner/profile``: how the partner works with Microsoft and what it offers customers."""

from __future__ import annotations

from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, Depends
from pydantic import BaseModel, ValidationError

from services.intake.deps import Principal, UowDep, require
from services.intake.problems import PROBLEM, Problem
from services.intake.schemas_partner import (
    CorrelationSettings,
    IndirectProvider,
    PartnerProfilePut,
    PartnerProfileView,
    SupportOffer,
)
from services.intake.support_offer import describe
from shared.db.base import utcnow
from shared.db.models import Partner
from shared.db.uow import UnitOfWork
from shared.vocabulary import CspModel, Locale, Role, Vehicle, known_category

M = TypeVar("M", bound=BaseModel)
router = APIRouter(prefix="/v1/partner", tags=["partner"])
Admin = Annotated[Principal, Depends(require())]
AnyRole = Annotated[Principal, Depends(require(*Role))]


@router.get(
    "/profile",
    response_model=PartnerProfileView,
    summary="The partner's profile and support offer",
    responses={401: PROBLEM, 422: PROBLEM, 429: PROBLEM},
)
async def get_profile(
    principal: AnyRole, uow: UowDep, locale: Locale | None = None
) -> PartnerProfileView:
    async with uow:
        partner = await _partner(uow, principal)
        return _view(partner, locale)


@router.put(
    "/profile",
    response_model=PartnerProfileView,
    summary="Replace the partner's profile",
    description="The classifier reads it for the next issue: CSP model and indirect provider, "
    "support vehicles (entitlements), support hours, correlation settings, PSA ticket types.",
    responses={401: PROBLEM, 403: PROBLEM, 413: PROBLEM, 415: PROBLEM, 422: PROBLEM, 429: PROBLEM},
)
async def put_profile(body: PartnerProfilePut, principal: Admin, uow: UowDep) -> PartnerProfileView:
    async with uow:
        partner = await _partner(uow, principal)
        stored = body.model_dump(mode="json")
        partner.csp_model = stored["csp_model"]
        partner.indirect_provider = stored["indirect_provider"]
        partner.support_vehicles = stored["support_vehicles"]
        partner.support_offer = stored["support_offer"]
        partner.locale = stored["locale"]
        partner.correlation = stored["correlation"]
        partner.psa_types = stored["psa_types"]
        partner.updated_at = utcnow()
        await uow.session.flush()
        view = _view(partner, None)
        await uow.commit()
        return view


async def _partner(uow: UnitOfWork, principal: Principal) -> Partner:
    partner = await uow.session.get(Partner, principal.partner_id)
    if partner is None:
        raise Problem(404, "No such partner.")
    return partner


def _view(partner: Partner, locale: Locale | None) -> PartnerProfileView:
    offer = _lenient(SupportOffer, partner.support_offer) or SupportOffer()
    return PartnerProfileView(
        id=partner.id,
        name=partner.name,
        csp_model=CspModel(partner.csp_model),
        indirect_provider=_provider(partner.indirect_provider),
        support_vehicles=[Vehicle(v) for v in partner.support_vehicles if v in set(Vehicle)],
        support_offer=offer,
        locale=Locale(partner.locale) if partner.locale in set(Locale) else Locale.EN,
        correlation=_lenient(CorrelationSettings, partner.correlation) or CorrelationSettings(),
        psa_types={
            name: category
            for name, value in (partner.psa_types or {}).items()
            if (category := known_category(value)) is not None
        },
        support_offer_text=describe(offer, locale or partner.locale or "en"),
        updated_at=partner.updated_at,
    )


def _lenient(model: type[M], raw: dict[str, Any] | None) -> M | None:
    """A part stored before the API validated it reads as absent rather than failing."""
    try:
        return model.model_validate(raw or {})
    except ValidationError:
        return None


def _provider(raw: dict[str, Any] | None) -> IndirectProvider | None:
    if not raw:
        return None
    return _lenient(IndirectProvider, raw) or IndirectProvider(
        name=str(raw.get("name") or "unnamed provider")[:200]
    )
