"""Bodies of the partner profile and customer endpoints."""

from __future__ import annotations

import uuid
from datetime import datetime, time
from decimal import Decimal
from typing import Annotated, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)

from services.intake.schemas import Contact, RequestBody
from shared.vocabulary import Category, CspModel, Locale, Vehicle


def _text(value: object) -> object:
    if isinstance(value, str):
        return value
    raise ValueError("expected text, e.g. 08:00")


TimeOfDay = Annotated[time, BeforeValidator(_text)]
PsaType = Annotated[str, Field(min_length=1, max_length=200)]
MAX_PSA_TYPES = 500
Day = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
SupportType = Literal["break_fix", "how_to", "billing", "onboarding", "advisory", "managed"]
ContactKind = Literal["phone", "email", "portal", "chat"]
PriceUnit = Literal["per_incident", "per_hour", "per_month", "per_user_month", "included"]


class Strict(RequestBody):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class SupportHours(Strict):
    timezone: str = Field(max_length=64, examples=["Europe/Berlin"], description="IANA zone.")
    days: list[Day] = Field(min_length=1, max_length=7, examples=[["mon", "tue", "wed"]])
    start: TimeOfDay = Field(examples=["08:00"])
    end: TimeOfDay = Field(examples=["18:00"])

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {value!r}; use an IANA name") from exc
        return value

    @model_validator(mode="after")
    def _ordered(self) -> SupportHours:
        if self.end <= self.start:
            raise ValueError("end must be after start")
        if len(set(self.days)) != len(self.days):
            raise ValueError("days must not repeat")
        return self


class ContactMethod(Strict):
    kind: ContactKind
    value: str = Field(min_length=1, max_length=300, examples=["+49 30 1234567"])


class Price(Strict):
    item: str = Field(min_length=1, max_length=200, examples=["Incident outside the contract"])
    amount: Decimal = Field(ge=0, le=1_000_000, decimal_places=2, examples=["95.00"])
    currency: str = Field(pattern=r"^[A-Z]{3}$", examples=["EUR"])
    unit: PriceUnit


class SupportOffer(Strict):
    """What the partner must tell its customers about its support."""

    support_types: list[SupportType] = Field(default_factory=list, max_length=6)
    hours: SupportHours | None = None
    contact_methods: list[ContactMethod] = Field(default_factory=list, max_length=10)
    prices: list[Price] = Field(default_factory=list, max_length=20)


class IndirectProvider(Strict):
    name: str = Field(min_length=1, max_length=200, examples=["Contoso Distribution"])
    partner_id: str | None = Field(
        default=None, max_length=64, description="The provider's Partner Center id (PartnerID)."
    )
    email: str | None = Field(default=None, max_length=254, pattern=r"^[^@\s]+@[^@\s]+$")
    phone: str | None = Field(default=None, max_length=40)


class CorrelationSettings(Strict):
    enabled: bool = Field(default=True, strict=True)
    min_tenants: int = Field(default=3, ge=2, le=1000, strict=True)
    window_min: float = Field(default=30.0, ge=1, le=1440, strict=True)


class ProfileFields(Strict):
    csp_model: CspModel
    indirect_provider: IndirectProvider | None = Field(
        default=None, description="Required for indirect_reseller; must be absent otherwise."
    )
    support_vehicles: list[Vehicle] = Field(default_factory=list, max_length=4)
    support_offer: SupportOffer = Field(default_factory=SupportOffer)
    locale: Locale = Locale.EN
    correlation: CorrelationSettings = Field(default_factory=CorrelationSettings)
    psa_types: dict[PsaType, Category] = Field(
        default_factory=dict,
        max_length=MAX_PSA_TYPES,
        description="The PSA's ticket types (as issues send them in `psa_type`, compared in any "
        "case) and the category each stands for: an issue sent without a `category` takes its "
        "type's instead of one inferred from its text.",
        examples=[{"Email / Mail flow": "configuration", "Billing > Invoice": "billing"}],
    )


class PartnerProfilePut(ProfileFields):
    """The whole profile; absent optional parts are cleared."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "csp_model": "direct_bill",
                    "support_vehicles": ["partner_cloud_support"],
                    "locale": "de",
                    "support_offer": {
                        "support_types": ["break_fix", "billing"],
                        "hours": {
                            "timezone": "Europe/Berlin",
                            "days": ["mon", "tue", "wed", "thu", "fri"],
                            "start": "08:00",
                            "end": "18:00",
                        },
                        "contact_methods": [{"kind": "phone", "value": "+49 30 1234567"}],
                        "prices": [
                            {
                                "item": "Incident",
                                "amount": "95.00",
                                "currency": "EUR",
                                "unit": "per_incident",
                            }
                        ],
                    },
                }
            ]
        },
    )

    @model_validator(mode="after")
    def _provider_matches_model(self) -> PartnerProfilePut:
        if self.csp_model is CspModel.INDIRECT_RESELLER and self.indirect_provider is None:
            raise ValueError("an indirect reseller needs its indirect_provider")
        if self.csp_model is CspModel.DIRECT_BILL and self.indirect_provider is not None:
            raise ValueError("a direct-bill partner has no indirect_provider")
        if len(set(self.support_vehicles)) != len(self.support_vehicles):
            raise ValueError("support_vehicles must not repeat")
        folded = [name.casefold() for name in self.psa_types]
        if len(set(folded)) != len(folded):
            raise ValueError("psa_types must not name one ticket type twice in another case")
        return self


class PartnerProfileView(ProfileFields):
    model_config = ConfigDict(extra="ignore")

    id: uuid.UUID
    name: str
    support_offer_text: str = Field(
        description="The support offer as customers read it, in the partner's locale "
        "(or `?locale=`)."
    )
    updated_at: datetime


class CustomerCreate(Strict):
    model_config = ConfigDict(
        extra="forbid",
        str_strip_whitespace=True,
        json_schema_extra={
            "examples": [
                {
                    "tenant_id": "3f2b6a8e-52a1-4c1e-9a53-0d6a1b2c3d4e",
                    "name": "Fabrikam GmbH",
                    "region": "germanywestcentral",
                    "locale": "de",
                }
            ]
        },
    )

    tenant_id: uuid.UUID = Field(description="The customer's Microsoft Entra tenant id (GUID).")
    name: str = Field(min_length=1, max_length=200)
    region: str | None = Field(default=None, max_length=64, pattern=r"^[A-Za-z0-9 _-]+$")
    locale: Locale = Locale.EN
    contact: Contact | None = None

    @field_validator("tenant_id")
    @classmethod
    def _not_nil(cls, value: uuid.UUID) -> uuid.UUID:
        if value.int == 0:
            raise ValueError("the nil GUID is not a tenant id")
        return value

    @field_validator("name")
    @classmethod
    def _no_nul(cls, value: str) -> str:
        if "\x00" in value:
            raise ValueError("name must not contain NUL characters")
        return value


class CustomerView(BaseModel):
    id: uuid.UUID
    tenant_id: uuid.UUID
    name: str
    region: str | None
    locale: str
    contact: dict[str, str]
    created_at: datetime


class CustomerPage(BaseModel):
    items: list[CustomerView]
    next_cursor: str | None
