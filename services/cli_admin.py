"""``escalation partners create`` and ``escalation keys create|list|revoke``."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Annotated, TypeVar

import typer

from services import admin
from shared.db.engine import create_engine, create_session_factory
from shared.db.uow import UnitOfWorkFactory
from shared.security import parse_prefix
from shared.settings import AppSettings, DatabaseSettings
from shared.vocabulary import CspModel, Role, Vehicle

T = TypeVar("T")
keys_app = typer.Typer(no_args_is_help=True, help="Partner API keys.")
partners_app = typer.Typer(no_args_is_help=True, help="Partners served by this deployment.")


@asynccontextmanager
async def _uows() -> AsyncIterator[UnitOfWorkFactory]:
    engine = create_engine(DatabaseSettings())
    try:
        yield UnitOfWorkFactory(create_session_factory(engine))
    finally:
        await engine.dispose()


def run_with_database(work: Callable[[UnitOfWorkFactory], Awaitable[T]]) -> T:
    """``work`` on the configured database (``DATABASE_URL``), in a loop of its own."""

    async def go() -> T:
        async with _uows() as uow_factory:
            return await work(uow_factory)

    return asyncio.run(go())


async def partner_named(uows: UnitOfWorkFactory, ref: str) -> uuid.UUID:
    """The partner ``ref`` names (an id or the exact name); exit 1 if there is none."""
    partner_id = await admin.find_partner(uows, ref)
    if partner_id is None:
        typer.echo(f"no partner {ref!r}", err=True)
        raise typer.Exit(1)
    return partner_id


@partners_app.command("create")
def partners_create(
    name: Annotated[str, typer.Option(help="Partner name.")],
    csp_model: Annotated[CspModel, typer.Option(help="CSP model.")] = CspModel.DIRECT_BILL,
    vehicle: Annotated[
        list[Vehicle] | None, typer.Option(help="Support entitlement (repeat).")
    ] = None,
    locale: Annotated[str, typer.Option(help="en, es, de or fr.")] = "en",
) -> None:
    """Create a partner and print its id."""
    partner_id = run_with_database(
        lambda uows: admin.create_partner(
            uows, name=name, csp_model=csp_model, vehicles=vehicle or [], locale=locale
        )
    )
    typer.echo(str(partner_id))


@keys_app.command("create")
def keys_create(
    partner: Annotated[str, typer.Option(help="Partner id or exact name.")],
    role: Annotated[Role, typer.Option(help="The key's role.")],
    label: Annotated[str | None, typer.Option(help="A note to recognise the key by.")] = None,
) -> None:
    """Create an API key and print it. It is shown only this once."""
    pepper = AppSettings().api_key_pepper.get_secret_value()

    async def work(uows: UnitOfWorkFactory) -> admin.CreatedKey:
        partner_id = await partner_named(uows, partner)
        return await admin.create_key(
            uows, partner_id=partner_id, role=role, label=label, pepper=pepper
        )

    typer.echo(run_with_database(work).plaintext)


@keys_app.command("list")
def keys_list(partner: Annotated[str, typer.Option(help="Partner id or exact name.")]) -> None:
    """The partner's keys: prefix, role, label, created, last used, revoked. Never the key."""

    async def work(uows: UnitOfWorkFactory) -> list[admin.KeyInfo]:
        return await admin.list_keys(uows, await partner_named(uows, partner))

    for key in run_with_database(work):
        state = f"REVOKED {when(key.revoked_at)}" if key.revoked_at else "active"
        typer.echo(
            f"csp_{key.prefix}_…  {key.role:<15} created {when(key.created_at)}  "
            f"last used {when(key.last_used_at)}  {state}  {key.label or ''}".rstrip()
        )


@keys_app.command("revoke")
def keys_revoke(
    prefix: Annotated[str, typer.Argument(help="The 12 characters after 'csp_', or the key.")],
) -> None:
    """Revoke a key at once; requests with it answer 401 from then on."""
    wanted = parse_prefix(prefix) or prefix
    if not run_with_database(lambda uows: admin.revoke_key(uows, wanted)):
        typer.echo(f"no key with prefix {wanted!r}", err=True)
        raise typer.Exit(1)
    typer.echo(f"revoked csp_{wanted}_…")


def when(moment: datetime | None) -> str:
    """A moment as the CLI's listings show it, in UTC (a time without a zone is one)."""
    if moment is None:
        return "never"
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC)
    return f"{moment:%Y-%m-%d %H:%M} UTC"
