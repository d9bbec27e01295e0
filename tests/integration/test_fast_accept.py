"""The intake's fast path for plain accepts (services.intake.fast_accept): it answers what the
route would, and it is the one answering them."""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from services.intake.app import create_app
from services.intake.fast_accept import FastAccept
from shared.settings import ApiSettings
from shared.vocabulary import Role
from tests.integration.conftest import intake_settings, serving_in_process
from tests.support.factories import SeededPartner, issue_body, seed_partner

pytestmark = pytest.mark.integration

_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_ANSWER_HEADERS = ("content-type", "www-authenticate", "retry-after", "idempotent-replayed")


def _app(settings: Any, *, fast: bool) -> FastAPI:
    app = create_app(settings)
    if not fast:
        kept = [m for m in app.user_middleware if getattr(m, "cls", None) is not FastAccept]
        app.user_middleware = kept
    return app


@asynccontextmanager
async def _both(settings: Any) -> AsyncIterator[tuple[httpx.AsyncClient, httpx.AsyncClient]]:
    """The intake with its fast path and without it, on one database."""
    async with (
        serving_in_process(_app(settings, fast=True)) as fast,
        serving_in_process(_app(settings, fast=False)) as routed,
    ):
        yield fast, routed


@pytest.fixture
async def both(
    database_url: str, bootstrap_servers: str, topic_prefix: str
) -> AsyncIterator[tuple[httpx.AsyncClient, httpx.AsyncClient]]:
    async with _both(intake_settings(database_url, bootstrap_servers, topic_prefix)) as apps:
        yield apps


@pytest.fixture
async def limited(
    database_url: str, bootstrap_servers: str, topic_prefix: str
) -> AsyncIterator[tuple[httpx.AsyncClient, httpx.AsyncClient]]:
    """Both, where each key may send three requests a minute, so the fourth is refused."""
    limit = ApiSettings(rate_limit_per_minute=3, rate_limit_burst=3)
    settings = intake_settings(database_url, bootstrap_servers, topic_prefix, api=limit)
    async with _both(settings) as apps:
        yield apps


def _answer(response: httpx.Response, ref: str = "") -> tuple[Any, ...]:
    """What a PSA sees of an answer, with the ids, times and ticket ``ref`` that differ from one
    issue to the next masked."""
    headers = {name: response.headers.get(name) for name in _ANSWER_HEADERS}
    location = response.headers.get("location")
    text = response.text.replace(ref, "<ref>") if ref else response.text
    text = re.sub(r"\d{4}-\d\d-\d\dT[\d:.]+(Z|[+-]\d\d:\d\d)?", "<time>", text)
    wait = headers["retry-after"]
    if wait is not None:
        # The wait counts down while the requests go: the two apps' answers, sent one after the
        # other, can be a second apart. That it is the limit's wait is checked on its own.
        assert f"retry in {wait} s." in text, text
        text = text.replace(f"retry in {wait} s.", "retry in <s> s.")
        headers["retry-after"] = "<s>"
    return (
        response.status_code,
        headers,
        _UUID.sub("<id>", location) if location else None,
        _UUID.sub("<id>", text),
    )


def _requests(
    partner: SeededPartner, billing: SeededPartner, reader: SeededPartner
) -> dict[str, Callable[[str], tuple[dict[str, Any], Any]]]:
    """Each case: the headers and the JSON (or raw bytes) sent, for a ticket ref."""
    return {
        "accepted": lambda ref: (partner.headers, issue_body(external_ref=ref)),
        "no key": lambda ref: ({}, issue_body(external_ref=ref)),
        "unknown key": lambda ref: (
            {"Authorization": "Bearer csp_000000000000_wrong"},
            issue_body(external_ref=ref),
        ),
        "reader": lambda ref: (reader.headers, issue_body(external_ref=ref)),
        "billing key, bug": lambda ref: (billing.headers, issue_body(external_ref=ref)),
        "billing key, no category": lambda ref: (
            billing.headers,
            issue_body(external_ref=ref, category=None),
        ),
        "unknown priority": lambda ref: (
            partner.headers,
            issue_body(external_ref=ref, severity=None, priority="P9"),
        ),
        "foreign customer": lambda ref: (
            partner.headers,
            issue_body(external_ref=ref, customer_id=str(uuid.uuid4())),
        ),
        "invalid field": lambda ref: (partner.headers, issue_body(external_ref=ref, severity=7)),
        "not an object": lambda ref: (partner.headers, [issue_body(external_ref=ref)]),
        "not JSON": lambda ref: (partner.headers, b"{not json"),
        "keyed": lambda ref: (
            {**partner.headers, "Idempotency-Key": f"key-{ref}"},
            issue_body(external_ref=ref),
        ),
    }


async def _post(client: httpx.AsyncClient, headers: dict[str, Any], body: Any) -> httpx.Response:
    if isinstance(body, bytes):
        headers = {**headers, "Content-Type": "application/json"}
        return await client.post("/v1/issues", content=body, headers=headers)
    return await client.post("/v1/issues", json=body, headers=headers)


async def test_every_answer_of_the_fast_path_is_the_routes(
    both: tuple[httpx.AsyncClient, httpx.AsyncClient], database_url: str
) -> None:
    fast, routed = both
    for name, case in _requests(
        await seed_partner(database_url),
        await seed_partner(database_url, role=Role.BILLING_ADMIN),
        await seed_partner(database_url, role=Role.READER),
    ).items():
        ref = f"PSA-{uuid.uuid4().hex[:10]}"
        # A ticket sent again is answered 200 with its issue: each app's second send.
        answers = []
        for client, which in ((fast, "fast"), (routed, "routed")):
            headers, body = case(f"{ref}-{which}")
            sent = [await _post(client, headers, body) for _ in range(2)]
            answers.append([_answer(response, f"{ref}-{which}") for response in sent])
        assert answers[0] == answers[1], name
        # Within the key's limit: the answers compared are the cases', not the limit's.
        assert all(status != 429 for status, *_ in answers[0]), name


async def test_a_key_over_its_rate_limit_is_refused_alike(
    limited: tuple[httpx.AsyncClient, httpx.AsyncClient], database_url: str
) -> None:
    answers, waits = [], []
    for client in limited:
        partner = await seed_partner(database_url)
        refs = [f"PSA-{uuid.uuid4().hex[:10]}" for _ in range(4)]
        sent = [
            await client.post(
                "/v1/issues", json=issue_body(external_ref=r), headers=partner.headers
            )
            for r in refs
        ]
        answers.append([_answer(response, r) for response, r in zip(sent, refs, strict=True)])
        waits.append(sent[-1].headers["retry-after"])
    assert [answer[0] for answer in answers[0]] == [202, 202, 202, 429]
    assert answers[0] == answers[1]
    # Three tokens a minute, all spent within the test: the next comes within 20 s.
    assert all(1 <= int(wait) <= 20 for wait in waits), waits


async def test_plain_accepts_are_answered_without_the_route(
    api: httpx.AsyncClient, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """FastAPI solves a route's dependencies on every request it routes; a plain accept has
    none solved, a keyed one or an invalid body is routed."""
    import fastapi.routing

    solved: list[object] = []
    real = fastapi.routing.solve_dependencies  # type: ignore[attr-defined]

    async def counting(*args: Any, **kwargs: Any) -> Any:
        solved.append(kwargs.get("request"))
        return await real(*args, **kwargs)

    monkeypatch.setattr(fastapi.routing, "solve_dependencies", counting)
    partner = await seed_partner(database_url)
    plain = await api.post("/v1/issues", json=issue_body(), headers=partner.headers)
    assert plain.status_code == 202
    assert solved == []
    keyed = {**partner.headers, "Idempotency-Key": "k-1"}
    assert (await api.post("/v1/issues", json=issue_body(), headers=keyed)).status_code == 202
    invalid = issue_body(severity="dire")
    assert (await api.post("/v1/issues", json=invalid, headers=partner.headers)).status_code == 422
    assert len(solved) == 2
