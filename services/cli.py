"""The ``escalation`` command line."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from fastapi import FastAPI

from services import admin
from services.cli_admin import keys_app, partners_app
from services.cli_ops import dlq_app, schema_app, topics_app
from services.cli_rules import rules_app
from services.cli_webhooks import webhooks_app
from services.settings import ServiceSettings
from shared.db.engine import create_engine, create_session_factory
from shared.db.uow import UnitOfWorkFactory
from shared.kafka.embedded import EmbeddedBroker
from shared.kafka.topics import ensure_topics
from shared.observability.logging import configure_logging
from shared.observability.tracing import configure_tracing, shutdown_tracing
from shared.ports import port_or_free
from shared.rules.loader import RulesError
from shared.settings import (
    DatabaseSettings,
    KafkaSettings,
    ReconcilerSettings,
)
from shared.vocabulary import Role, Vehicle

app = typer.Typer(no_args_is_help=True, help="csp-escalation: escalation service for CSP partners.")
db_app = typer.Typer(no_args_is_help=True, help="Database schema.")
app.add_typer(db_app, name="db")
app.add_typer(keys_app, name="keys")
app.add_typer(partners_app, name="partners")
app.add_typer(rules_app, name="rules")
app.add_typer(schema_app, name="schema")
app.add_typer(topics_app, name="topics")
app.add_typer(dlq_app, name="dlq")
app.add_typer(webhooks_app, name="webhooks")


class Which(StrEnum):
    INTAKE = "intake"
    CLASSIFIER = "classifier"
    NOTIFIER = "notifier"
    ALL = "all"


def _load(**overrides: object) -> ServiceSettings:
    try:
        settings = ServiceSettings(**overrides)  # type: ignore[arg-type]
    except ValueError as exc:
        typer.echo(f"configuration error: {exc}", err=True)
        raise typer.Exit(2) from exc
    configure_logging(level=settings.app.log_level, json=settings.app.log_json)
    return settings


def build_apps(settings: ServiceSettings, which: Which) -> list[tuple[FastAPI, str, int]]:
    from services.classifier.app import create_app as classifier_app
    from services.intake.app import create_app as intake_app
    from services.notifier.app import create_app as notifier_app

    http = settings.http
    table = {
        Which.INTAKE: (intake_app, http.intake_port),
        Which.CLASSIFIER: (classifier_app, http.classifier_port),
        Which.NOTIFIER: (notifier_app, http.notifier_port),
    }
    chosen = [w for w in table if which in (w, Which.ALL)]
    return [(table[w][0](settings), http.host, table[w][1]) for w in chosen]


@app.command()
def run(
    service: Annotated[Which, typer.Argument(help="Which service to run.")] = Which.ALL,
) -> None:
    """Run one service, or all three in this process."""
    from services.serve import run_services, serve_all

    settings = _load()
    configure_tracing(settings.tracing, service=service.value)
    try:
        apps = build_apps(settings, service)
    except RulesError as exc:
        for problem in exc.problems:
            typer.echo(f"rules error: {exc.source}: {problem}", err=True)
        raise typer.Exit(2) from exc
    try:
        run_services(serve_all(apps, log_level=settings.app.log_level))
    finally:
        shutdown_tracing()


@app.command()
def dev(
    data_dir: Annotated[Path, typer.Option(help="Where the SQLite file lives.")] = Path("var"),
    broker_port: Annotated[
        int, typer.Option(help="Embedded broker port (a free one if this is taken).")
    ] = 9092,
) -> None:
    """The embedded stack: Tansu broker, SQLite, the three services, a demo partner and key."""
    data_dir.mkdir(parents=True, exist_ok=True)
    database = DatabaseSettings(url=f"sqlite+aiosqlite:///{data_dir.resolve() / 'escalation.db'}")
    from services.serve import run_services

    run_services(_dev(database, data_dir, broker_port))


async def _dev(database: DatabaseSettings, data_dir: Path, broker_port: int) -> None:
    from services.serve import serve_all
    from shared.db import migrate

    settings = _load(
        database=database, reconciler=ReconcilerSettings(stuck_after_s=30, interval_s=5)
    )
    configure_tracing(settings.tracing, service="dev")
    broker = EmbeddedBroker(port=port_or_free(broker_port), log_path=data_dir / "broker.log")
    await broker.start()
    try:
        # Short group timings: a restarted service rejoins in seconds rather than half a minute.
        kafka = KafkaSettings(
            bootstrap_servers=broker.bootstrap_servers,
            session_timeout_ms=3000,
            heartbeat_interval_ms=300,
            rebalance_timeout_ms=3000,
        )
        settings = replace(settings, kafka=kafka)
        await ensure_topics(kafka)
        await asyncio.to_thread(migrate.upgrade, database.url)
        key = await _seed_demo(settings)
        url = f"http://{settings.http.host}:{settings.http.intake_port}"
        typer.echo(_banner(url, key, broker.bootstrap_servers, database.url))
        await serve_all(build_apps(settings, Which.ALL), log_level=settings.app.log_level)
    finally:
        broker.stop()


async def _seed_demo(settings: ServiceSettings) -> str:
    engine = create_engine(settings.database)
    try:
        uow_factory = UnitOfWorkFactory(create_session_factory(engine))
        partner_id = await admin.find_partner(uow_factory, "Demo Partner")
        if partner_id is None:
            partner_id = await admin.create_partner(
                uow_factory,
                name="Demo Partner",
                vehicles=[Vehicle.PARTNER_CLOUD_SUPPORT, Vehicle.ADVANCED_SUPPORT_FOR_PARTNERS],
            )
        key = await admin.create_key(
            uow_factory,
            partner_id=partner_id,
            role=Role.ADMIN_AGENT,
            pepper=settings.app.api_key_pepper.get_secret_value(),
            label="make run demo",
        )
        return key.plaintext
    finally:
        await engine.dispose()


def _banner(url: str, key: str, broker: str, database: str) -> str:
    return f"""
csp-escalation is starting (embedded broker {broker}, database {database})

  intake API   {url}   (OpenAPI: {url}/docs)
  demo API key {key}

  curl -s -X POST {url}/v1/issues \\
    -H 'Authorization: Bearer {key}' -H 'Content-Type: application/json' \\
    -d '{{"external_ref":"DEMO-1","title":"Exchange Online no disponible",
         "description":"Ningún usuario puede conectar desde las 9:00","service":"Exchange Online"}}'

  then: curl -s {url}/v1/issues/<id> -H 'Authorization: Bearer {key}'
"""


@db_app.command("upgrade")
def db_upgrade(revision: str = "head") -> None:
    """Apply migrations up to REVISION (default: head)."""
    from shared.db import migrate

    migrate.upgrade(_load().database.url, revision)
    typer.echo(f"database at {revision}")


@db_app.command("downgrade")
def db_downgrade(revision: str) -> None:
    """Revert migrations down to REVISION (``base`` for an empty schema)."""
    from shared.db import migrate

    migrate.downgrade(_load().database.url, revision)
    typer.echo(f"database at {revision}")
