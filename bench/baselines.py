"""The two baselines the intake is measured against, each served like the services are.

A: FastAPI on the same uvicorn settings, validating the same body, answering 202 — no database,
no broker. B: the same, plus one hand-written transaction (raw asyncpg, or aiosqlite on SQLite)
inserting the issue and an outbox row — the least a durable accept can do.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import aiosqlite
import asyncpg
import orjson
import typer
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from sqlalchemy.engine import make_url

from services.intake.schemas import IssueCreate
from services.serve import run_services, serve_all

_ISSUE = (
    "INSERT INTO issues (id, partner_id, external_ref, title, description, service, category,"
    " severity, contact, status, created_at, updated_at)"
    " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 'received', $10, $10)"
)
_OUTBOX = (
    "INSERT INTO outbox (event_id, event_type, aggregate_id, topic, key, value, headers,"
    " created_at, attempts) VALUES ($1, 'issue.received', $2, 'issues.received', $2, $3, $4,"
    " $5, 0)"
)

_SQLITE_ISSUE = (
    "INSERT INTO issues (id, partner_id, external_ref, title, description, service, category,"
    " severity, contact, status, created_at, updated_at)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 'received', ?, ?)"
)
_SQLITE_OUTBOX = (
    "INSERT INTO outbox (event_id, event_type, aggregate_id, topic, key, value, headers,"
    " created_at, attempts) VALUES (?, 'issue.received', ?, 'issues.received', ?, ?, ?, ?, 0)"
)


def bare_app() -> FastAPI:
    app = FastAPI()

    @app.post("/v1/issues", status_code=202)
    async def accept(body: IssueCreate) -> JSONResponse:
        return JSONResponse({"id": str(uuid.uuid4()), "status": "received"}, status_code=202)

    return app


def durable_app(database_url: str, partner_id: uuid.UUID) -> FastAPI:
    url = make_url(database_url)
    sqlite = url.drivername.startswith("sqlite")

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if sqlite:
            connection = await aiosqlite.connect(url.database or "", isolation_level=None)
            await connection.execute("PRAGMA journal_mode=WAL")
            await connection.execute("PRAGMA synchronous=NORMAL")
            app.state.sqlite = connection
            app.state.lock = asyncio.Lock()
            yield
            await connection.close()
            return
        app.state.pool = await asyncpg.create_pool(
            host=url.host,
            port=url.port or 5432,
            user=url.username,
            database=url.database,
            min_size=10,
            max_size=20,
        )
        yield
        await app.state.pool.close()

    app = FastAPI(lifespan=lifespan)

    @app.post("/v1/issues", status_code=202)
    async def accept(body: IssueCreate, request: Request) -> JSONResponse:
        issue_id = uuid.uuid4()
        now = datetime.now(UTC)
        event = orjson.dumps({"id": str(uuid.uuid4()), "data": body.model_dump(mode="json")})
        row = (
            issue_id,
            partner_id,
            body.external_ref,
            body.title,
            body.description,
            body.service,
            body.category,
            body.severity or "moderate",
        )
        if sqlite:
            await _sqlite_accept(request.app, row, now, event)
        else:
            async with request.app.state.pool.acquire() as connection, connection.transaction():
                await connection.execute(_ISSUE, *row, "{}", now)
                await connection.execute(_OUTBOX, uuid.uuid4().hex, str(issue_id), event, "[]", now)
        return JSONResponse({"id": str(issue_id), "status": "received"}, status_code=202)

    return app


async def _sqlite_accept(app: FastAPI, row: tuple[Any, ...], now: datetime, event: bytes) -> None:
    # The models store UUIDs as 32 hex digits on SQLite.
    values = tuple(v.hex if isinstance(v, uuid.UUID) else v for v in row)
    stamp = now.isoformat()
    connection: aiosqlite.Connection = app.state.sqlite
    async with app.state.lock:
        await connection.execute("BEGIN IMMEDIATE")
        try:
            await connection.execute(_SQLITE_ISSUE, (*values, "{}", stamp, stamp))
            await connection.execute(
                _SQLITE_OUTBOX, (uuid.uuid4().hex, values[0], values[0], event, "[]", stamp)
            )
            await connection.execute("COMMIT")
        except BaseException:
            await connection.execute("ROLLBACK")
            raise


def main(
    which: str = typer.Argument(..., help="a (bare HTTP) or b (durable accept)"),
    port: int = typer.Option(...),
    database_url: str = typer.Option(""),
    partner_id: str = typer.Option(""),
) -> None:
    app = bare_app() if which == "a" else durable_app(database_url, uuid.UUID(partner_id))
    # The services' own loop (uvloop), as the same uvicorn settings include it.
    run_services(serve_all([(app, "127.0.0.1", port)], log_level="warning"))


if __name__ == "__main__":
    typer.run(main)
