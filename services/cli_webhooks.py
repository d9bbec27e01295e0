"""``escalation webhooks list|redeliver``: the partners' endpoints, and their kept deliveries
sent again (:mod:`services.admin_webhooks`)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

import typer

from services import admin_webhooks
from services.admin_webhooks import Endpoint, Kept
from services.cli_admin import partner_named, run_with_database, when
from shared.db.uow import UnitOfWorkFactory

webhooks_app = typer.Typer(
    no_args_is_help=True, help="Partners' webhook endpoints and their kept deliveries."
)

PartnerOption = Annotated[
    str | None, typer.Option(help="Partner id or exact name; every partner if left out.")
]
WebhookOption = Annotated[uuid.UUID | None, typer.Option(help="One endpoint, by its id.")]


@webhooks_app.command("list")
def webhooks_list(partner: PartnerOption = None) -> None:
    """Every endpoint not deleted: its partner, URL, state and deliveries by status."""

    async def work(uows: UnitOfWorkFactory) -> list[Endpoint]:
        return await admin_webhooks.endpoints(uows, partner_id=await _partner(uows, partner))

    found = run_with_database(work)
    for endpoint in found:
        counts = "  ".join(
            f"{status} {endpoint.deliveries.get(status, 0)}"
            for status in ("pending", "succeeded", *Kept)
        )
        oldest = f"  oldest kept {when(endpoint.oldest_kept)}" if endpoint.oldest_kept else ""
        typer.echo(f"{_endpoint(endpoint)}\n    {counts}{oldest}")
    if not found:
        typer.echo("no webhook endpoints")


@webhooks_app.command("redeliver")
def webhooks_redeliver(
    partner: PartnerOption = None,
    webhook: WebhookOption = None,
    status: Annotated[
        Kept, typer.Option(help="exhausted: every retry failed; failed: refused at once.")
    ] = Kept.EXHAUSTED,
    since: Annotated[
        str | None,
        typer.Option(help="Only deliveries created after this (ISO 8601 with an offset, or Z)."),
    ] = None,
    limit: Annotated[int | None, typer.Option(min=1, help="At most this many in all.")] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Count what would be sent again; change nothing.")
    ] = False,
) -> None:
    """Send kept deliveries again, after an outage on this side: every partner's at once.

    Oldest first, each from its first attempt and under its own webhook-id (receivers dedupe on
    it). Disabled endpoints are skipped; their partner enables them (POST
    /v1/webhooks/{id}/enable).
    """
    created_after = _moment(since)

    async def work(uows: UnitOfWorkFactory) -> list[admin_webhooks.Redelivered]:
        return await admin_webhooks.redeliver(
            uows,
            status=status,
            partner_id=await _partner(uows, partner),
            webhook_id=webhook,
            created_after=created_after,
            limit=limit,
            dry_run=dry_run,
        )

    done = run_with_database(work)
    verb = "would requeue" if dry_run else "requeued"
    for item in done:
        if item.endpoint.enabled:
            typer.echo(f"{verb} {item.requeued:>6}  {_endpoint(item.endpoint)}")
        else:
            kept = item.endpoint.deliveries.get(status.value, 0)
            typer.echo(f"skipped {kept:>6}  {_endpoint(item.endpoint)}")
    total = sum(item.requeued for item in done)
    typer.echo(f"{verb} {total} {status.value} deliveries in all")


async def _partner(uows: UnitOfWorkFactory, ref: str | None) -> uuid.UUID | None:
    return None if ref is None else await partner_named(uows, ref)


def _moment(text: str | None) -> datetime | None:
    if text is None:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError as exc:
        raise typer.BadParameter(f"not an ISO 8601 time: {text!r}", param_hint="--since") from exc
    if moment.tzinfo is None:
        raise typer.BadParameter("give an offset (Z for UTC)", param_hint="--since")
    return moment


def _endpoint(endpoint: Endpoint) -> str:
    state = "enabled" if endpoint.enabled else f"DISABLED ({endpoint.disabled_reason})"
    audience = "" if endpoint.audience == "partner" else f" [{endpoint.audience}]"
    return f"{endpoint.id}  {endpoint.partner}  {endpoint.url}{audience}  {state}"
