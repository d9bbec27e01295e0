"""The intake API in-process on a real database: auth, roles, isolation, idempotency, errors."""

from __future__ import annotations

import asyncio
import dataclasses
import logging

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from services.intake.app import create_app
from shared.settings import DatabaseSettings
from shared.vocabulary import Role
from tests.integration.conftest import intake_settings, serving_in_process
from tests.support.factories import issue_body, scalar, seed_partner


async def test_requests_without_a_valid_key_get_401_problem_json(api: httpx.AsyncClient) -> None:
    for headers in (
        {},
        {"Authorization": "Bearer nope"},
        {"Authorization": "Bearer csp_000000000000_wrong"},
    ):
        response = await api.post("/v1/issues", json=issue_body(), headers=headers)
        assert response.status_code == 401
        assert response.headers["content-type"] == "application/problem+json"
        assert response.headers["www-authenticate"].startswith("Bearer")
        assert response.json()["status"] == 401


async def test_a_reader_may_read_but_not_file_issues(
    api: httpx.AsyncClient, database_url: str
) -> None:
    reader = await seed_partner(database_url, role=Role.READER)
    response = await api.post("/v1/issues", json=issue_body(), headers=reader.headers)
    assert response.status_code == 403
    assert response.json()["detail"] == "The role reader may not do this."


async def test_another_partners_issue_is_indistinguishable_from_a_missing_one(
    api: httpx.AsyncClient, database_url: str
) -> None:
    mine, theirs = await seed_partner(database_url), await seed_partner(database_url)
    created = await api.post("/v1/issues", json=issue_body(), headers=mine.headers)
    issue_id = created.json()["id"]
    assert (await api.get(f"/v1/issues/{issue_id}", headers=mine.headers)).status_code == 200
    foreign = await api.get(f"/v1/issues/{issue_id}", headers=theirs.headers)
    absent = await api.get(
        "/v1/issues/00000000-0000-0000-0000-000000000000", headers=theirs.headers
    )
    assert foreign.status_code == absent.status_code == 404


async def test_an_accepted_issue_and_its_event_are_written_together(
    api: httpx.AsyncClient, database_url: str, engine: AsyncEngine
) -> None:
    partner = await seed_partner(database_url)
    response = await api.post("/v1/issues", json=issue_body(), headers=partner.headers)
    assert response.status_code == 202
    assert response.json()["status"] == "received"
    assert await scalar(engine, "SELECT count(*) FROM issues") == 1
    assert (
        await scalar(engine, "SELECT count(*) FROM outbox WHERE event_type = 'csp.issue.received'")
        == 1
    )


async def test_idempotency_key_replays_the_answer_and_refuses_a_different_body(
    api: httpx.AsyncClient, database_url: str, engine: AsyncEngine
) -> None:
    partner = await seed_partner(database_url)
    body = issue_body()
    headers = {**partner.headers, "Idempotency-Key": "k-1"}
    first, again = [await api.post("/v1/issues", json=body, headers=headers) for _ in range(2)]
    assert first.status_code == again.status_code == 202
    assert first.json() == again.json()
    other = await api.post("/v1/issues", json=issue_body(), headers=headers)
    assert other.status_code == 409
    assert await scalar(engine, "SELECT count(*) FROM issues") == 1


async def test_concurrent_identical_posts_with_one_key_create_one_issue(
    api: httpx.AsyncClient, database_url: str, engine: AsyncEngine
) -> None:
    partner = await seed_partner(database_url)
    body = issue_body()
    headers = {**partner.headers, "Idempotency-Key": "race"}
    answers = await asyncio.gather(
        *(api.post("/v1/issues", json=body, headers=headers) for _ in range(8))
    )
    assert {a.json()["id"] for a in answers} == {answers[0].json()["id"]}
    assert all(a.status_code in (200, 202) for a in answers)
    assert await scalar(engine, "SELECT count(*) FROM issues") == 1
    assert await scalar(engine, "SELECT count(*) FROM outbox") == 1


async def test_concurrent_posts_each_with_its_own_key_are_each_recorded_with_their_answer(
    api: httpx.AsyncClient, database_url: str, engine: AsyncEngine
) -> None:
    """Keyed accepts arriving together (written together, each key with its own issue): every
    one is a 202, and each key then replays its own answer; a ticket sent again under a new
    key answers 200 with the issue it already is, and that key replays the 200."""
    partner = await seed_partner(database_url)
    bodies = [issue_body(external_ref=f"K-{n}") for n in range(12)]
    keyed = [{**partner.headers, "Idempotency-Key": f"key-{n}"} for n in range(12)]
    answers = await asyncio.gather(
        *(api.post("/v1/issues", json=b, headers=h) for b, h in zip(bodies, keyed, strict=True))
    )
    assert {a.status_code for a in answers} == {202}
    replays = await asyncio.gather(
        *(api.post("/v1/issues", json=b, headers=h) for b, h in zip(bodies, keyed, strict=True))
    )
    assert [r.json() for r in replays] == [a.json() for a in answers]
    assert {r.headers["idempotent-replayed"] for r in replays} == {"true"}
    assert await scalar(engine, "SELECT count(*) FROM issues") == 12
    assert await scalar(engine, "SELECT count(*) FROM idempotency_keys") == 12

    again = {**partner.headers, "Idempotency-Key": "key-again"}
    resent = [await api.post("/v1/issues", json=bodies[0], headers=again) for _ in range(2)]
    assert [r.status_code for r in resent] == [200, 200]
    assert resent[0].json() == {**answers[0].json(), "duplicate": True}
    assert resent[1].headers["idempotent-replayed"] == "true"
    assert await scalar(engine, "SELECT count(*) FROM issues") == 12


async def test_a_resent_psa_ticket_is_not_a_new_issue(
    api: httpx.AsyncClient, database_url: str, engine: AsyncEngine
) -> None:
    partner = await seed_partner(database_url)
    body = issue_body(external_ref="CW-1")
    first = await api.post("/v1/issues", json=body, headers=partner.headers)
    resent = await api.post("/v1/issues", json={**body, "title": "edited"}, headers=partner.headers)
    assert resent.status_code == 200
    assert resent.json() == {**first.json(), "duplicate": True}
    assert await scalar(engine, "SELECT count(*) FROM issues") == 1


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"title": "x"}, "body.external_ref"),
        (issue_body(severity="urgent"), "body.severity"),
        (issue_body(category="complaint"), "body.category"),
        (issue_body(title="a\x00b"), "body"),
        (issue_body(tenant_id="not-a-guid"), "body.tenant_id"),
        (issue_body(unknown_field=1), "body.unknown_field"),
    ],
)
async def test_invalid_issues_get_422_with_the_offending_field(
    api: httpx.AsyncClient,
    database_url: str,
    engine: AsyncEngine,
    body: dict[str, object],
    field: str,
) -> None:
    partner = await seed_partner(database_url)
    response = await api.post("/v1/issues", json=body, headers=partner.headers)
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    assert any(error["field"].startswith(field) for error in response.json()["errors"])
    assert await scalar(engine, "SELECT count(*) FROM issues") == 0


async def test_operations_endpoints_answer(api: httpx.AsyncClient) -> None:
    assert (await api.get("/healthz")).json() == {"status": "ok"}
    ready = await api.get("/readyz")
    assert ready.status_code == 200, ready.text
    assert ready.json()["checks"] == {"database": "ok", "broker": "ok"}
    assert "escalation_http_requests_total" in (await api.get("/metrics")).text


async def test_the_intake_stays_ready_without_the_broker_because_the_outbox_keeps_accepting(
    database_url: str, topic_prefix: str
) -> None:
    app = create_app(intake_settings(database_url, "127.0.0.1:1", topic_prefix))
    async with serving_in_process(app) as api:
        ready = await api.get("/readyz")
    assert ready.status_code == 200, ready.text
    assert ready.json()["checks"]["database"] == "ok"
    assert ready.json()["checks"]["broker"].startswith("unavailable")


async def test_a_webhook_to_a_loopback_address_is_refused_unless_allowed(
    api: httpx.AsyncClient, database_url: str
) -> None:
    partner = await seed_partner(database_url)
    response = await api.post(
        "/v1/webhooks", json={"url": "http://127.0.0.1:9/hook"}, headers=partner.headers
    )
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "body.url"


async def test_an_issue_filed_while_every_database_connection_is_busy_gets_503_to_retry(
    database_url: str,
    bootstrap_servers: str,
    topic_prefix: str,
    engine: AsyncEngine,
    caplog: pytest.LogCaptureFixture,
) -> None:
    partner = await seed_partner(database_url)
    settings = intake_settings(database_url, bootstrap_servers, topic_prefix)
    busy = DatabaseSettings(url=database_url, pool_size=1, pool_timeout_s=0.2)
    app = create_app(dataclasses.replace(settings, database=busy))
    # Answered inside the app, not raised on to the server (which would log it as a crash).
    async with serving_in_process(app) as api:
        async with app.state.runtime.engine.connect():  # the pool's only connection
            response = await api.post("/v1/issues", json=issue_body(), headers=partner.headers)
        assert response.status_code == 503
        assert response.headers["content-type"] == "application/problem+json"
        assert int(response.headers["Retry-After"]) > 0
        assert "nothing was stored" in response.json()["detail"]
        # Retried as a PSA does: again after Retry-After while the answer is 503. The intake's
        # own workers (relay, purge) share the one connection, so a retry may meet one of them.
        retried = await api.post("/v1/issues", json=issue_body(), headers=partner.headers)
        for _ in range(3):
            if retried.status_code != 503:
                break
            assert "nothing was stored" in retried.json()["detail"]
            await asyncio.sleep(int(retried.headers["Retry-After"]))
            retried = await api.post("/v1/issues", json=issue_body(), headers=partner.headers)
    assert retried.status_code == 202
    assert await scalar(engine, "SELECT count(*) FROM issues") == 1
    # A busy pool is an outage to the intake's workers too, not a fault to report as one.
    assert not [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
