"""Administrative use cases behind the CLI: partners, API keys, the demo seed."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select

from shared.db.base import utcnow
from shared.db.models import ApiKey, Partner
from shared.db.uow import UnitOfWorkFactory
from shared.security import generate_key
from shared.vocabulary import CspModel, Role, Vehicle


@dataclass(frozen=True)
class CreatedKey:
    partner_id: uuid.UUID
    role: Role
    plaintext: str


async def create_partner(
    uow_factory: UnitOfWorkFactory,
    *,
    name: str,
    csp_model: CspModel = CspModel.DIRECT_BILL,
    vehicles: list[Vehicle] | None = None,
    locale: str = "en",
    indirect_provider: dict[str, str] | None = None,
) -> uuid.UUID:
    async with uow_factory() as uow:
        partner = Partner(
            id=uuid.uuid4(),
            name=name,
            csp_model=csp_model,
            support_vehicles=[v.value for v in vehicles or []],
            locale=locale,
            indirect_provider=indirect_provider,
        )
        uow.session.add(partner)
        await uow.commit()
        return partner.id


async def find_partner(uow_factory: UnitOfWorkFactory, ref: str) -> uuid.UUID | None:
    """A partner by id, or by exact name."""
    async with uow_factory() as uow:
        try:
            by_id = await uow.session.get(Partner, uuid.UUID(ref))
        except ValueError:
            by_id = None
        if by_id is not None:
            return by_id.id
        return await uow.session.scalar(select(Partner.id).where(Partner.name == ref))


async def create_key(
    uow_factory: UnitOfWorkFactory,
    *,
    partner_id: uuid.UUID,
    role: Role,
    pepper: str,
    label: str | None = None,
) -> CreatedKey:
    key = generate_key(pepper=pepper)
    async with uow_factory() as uow:
        uow.session.add(
            ApiKey(
                partner_id=partner_id,
                role=role,
                prefix=key.prefix,
                key_hash=key.key_hash,
                label=label,
            )
        )
        await uow.commit()
    return CreatedKey(partner_id, role, key.plaintext)


@dataclass(frozen=True)
class KeyInfo:
    prefix: str
    role: str
    label: str | None
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None


async def list_keys(uow_factory: UnitOfWorkFactory, partner_id: uuid.UUID) -> list[KeyInfo]:
    async with uow_factory() as uow:
        keys = await uow.session.scalars(
            select(ApiKey).where(ApiKey.partner_id == partner_id).order_by(ApiKey.created_at)
        )
        return [
            KeyInfo(k.prefix, k.role, k.label, k.created_at, k.last_used_at, k.revoked_at)
            for k in keys
        ]


async def revoke_key(uow_factory: UnitOfWorkFactory, prefix: str) -> bool:
    """Revoke the key with this prefix (the part after ``csp_``); False if there is none.

    Revoking is immediate and final: the next request with the key answers 401."""
    async with uow_factory() as uow:
        key = await uow.session.scalar(select(ApiKey).where(ApiKey.prefix == prefix))
        if key is None:
            return False
        if key.revoked_at is None:
            key.revoked_at = utcnow()
            await uow.commit()
        return True
