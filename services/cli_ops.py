"""``escalation schema``, ``escalation topics`` and ``escalation dlq``: the topics from outside."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from pathlib import Path
from typing import Annotated, Any

import typer

from shared.events import schema
from shared.kafka import inspect
from shared.kafka.topics import ensure_topics
from shared.settings import KafkaSettings

schema_app = typer.Typer(no_args_is_help=True, help="The topics' JSON Schemas and AsyncAPI.")
topics_app = typer.Typer(no_args_is_help=True, help="Create and read the topics.")
dlq_app = typer.Typer(no_args_is_help=True, help="Inspect and re-drive dead-lettered records.")

TopicArg = Annotated[str, typer.Argument(help="A topic, e.g. issues.routed (prefix optional).")]


def _kafka() -> KafkaSettings:
    try:
        return KafkaSettings()
    except ValueError as exc:
        typer.echo(f"configuration error: {exc}", err=True)
        raise typer.Exit(2) from exc


@schema_app.command("export")
def schema_export(
    out: Annotated[Path, typer.Option(help="Where the documents go.")] = Path("docs"),
    check: Annotated[
        bool, typer.Option("--check", help="Only report drift; exit 1 if the files differ.")
    ] = False,
) -> None:
    """Write docs/asyncapi.yaml and docs/events/*.schema.json from the event models."""
    if check:
        stale = schema.drift(out)
        for relative in stale:
            typer.echo(f"out of date: {out / relative}", err=True)
        raise typer.Exit(1 if stale else 0)
    for path in schema.write(out):
        typer.echo(str(path))


@topics_app.command("create")
def topics_create() -> None:
    """Create every topic and DLQ that is missing."""
    asyncio.run(ensure_topics(_kafka()))


@topics_app.command("tail")
def topics_tail(
    topic: TopicArg,
    from_beginning: Annotated[
        bool, typer.Option("--from-beginning", help="Start at the oldest record.")
    ] = False,
    filter_: Annotated[
        list[str] | None,
        typer.Option(
            "--filter",
            help="NAME=VALUE on a data field (dotted), a CloudEvents attribute or a header; "
            "repeat to require several.",
        ),
    ] = None,
    limit: Annotated[int | None, typer.Option(min=1, help="Stop after this many.")] = None,
    idle_timeout: Annotated[
        float | None, typer.Option(min=0.1, help="Stop after this many seconds with no record.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per line.")] = False,
) -> None:
    """Print a topic's events as they arrive (Ctrl-C stops)."""
    try:
        filters = inspect.parse_filters(filter_ or [])
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--filter") from exc

    async def follow() -> None:
        async for record in inspect.tail(
            _kafka(),
            topic,
            from_beginning=from_beginning,
            filters=filters,
            limit=limit,
            idle_timeout_s=idle_timeout,
            positioned=lambda name: typer.echo(
                f"reading {name} from the {'beginning' if from_beginning else 'end'}", err=True
            ),
        ):
            typer.echo(record.as_json() if as_json else record.pretty())

    _run_inspection(follow())


@dlq_app.command("list")
def dlq_list(
    topic: TopicArg,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per line.")] = False,
) -> None:
    """Show every record parked in TOPIC's DLQ with why it was parked."""

    async def show() -> None:
        letters = await inspect.list_dead_letters(_kafka(), topic)
        for letter in letters:
            typer.echo(
                letter.record.as_json(replayed=letter.replayed) if as_json else _describe(letter)
            )
        if not as_json:
            parked = sum(not letter.replayed for letter in letters)
            typer.echo(f"{len(letters)} record(s), {parked} not replayed")

    _run_inspection(show())


def _describe(letter: inspect.DeadLetter) -> str:
    record, headers = letter.record, letter.record.headers
    event = record.event or {}
    state = "replayed" if letter.replayed else "parked"
    return (
        f"offset {record.offset}  {state}  {headers.get('dlq.failed_at', '-')}"
        f"  {headers.get('dlq.consumer', '-')}  from {headers.get('dlq.source', '-')}\n"
        f"  event {event.get('type', '-')} {event.get('id', '-')}\n"
        f"  reason: {letter.reason}"
    )


@dlq_app.command("replay")
def dlq_replay(
    topic: TopicArg,
    offset: Annotated[
        list[int] | None,
        typer.Option(help="Replay only the record at this DLQ offset (repeatable)."),
    ] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Show, do not publish.")] = False,
) -> None:
    """Re-publish TOPIC's dead-lettered records to TOPIC (each once, unless --offset is given)."""

    async def replay() -> None:
        result = await inspect.replay_dead_letters(
            _kafka(), topic, offsets=offset or (), dry_run=dry_run
        )
        verb = "would replay" if dry_run else "replayed"
        for record in result.replayed:
            typer.echo(f"{verb} offset {record.offset} → {result.target}")
        typer.echo(f"{verb} {len(result.replayed)} record(s) to {result.target}")

    _run_inspection(replay())


def _run_inspection(work: Coroutine[Any, Any, None]) -> None:
    try:
        asyncio.run(work)
    except inspect.UnknownTopic as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(2) from exc
    except KeyboardInterrupt:
        raise typer.Exit(0) from None
