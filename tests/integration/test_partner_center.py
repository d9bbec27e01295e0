"""The Partner Center connector against a fake Partner Center over real HTTP and a real database."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from services.notifier.connector import PartnerCenterConnector, SubmissionPolicy
from services.notifier.partner_center import PartnerCenterClient
from shared.db.engine import create_session_factory
from shared.db.models import MicrosoftRequest, WebhookSubscription
from shared.db.uow import UnitOfWorkFactory
from shared.settings import PartnerCenterSettings
from tests.support.factories import rows, seed_partner
from tests.support.fake_partner_center import CLIENT_SECRET, REFRESH_TOKEN, FakePartnerCenter

PAYLOAD = {
    "Title": "[Exchange Online] Mailboxes unreachable",
    "Description": "Every mailbox of the tenant answers 500 since 09:00.",
    "Severity": "critical",
    "SupportTopicId": "32569836",
}


def pc_settings(fake: FakePartnerCenter, **overrides: Any) -> PartnerCenterSettings:
    values: dict[str, Any] = {
        "enabled": True,
        "base_url": fake.url,
        "authority_url": fake.url,
        "tenant_id": fake.tenant,
        "client_id": "app-id",
        "client_secret": CLIENT_SECRET,
        "refresh_token": REFRESH_TOKEN,
        "timeout_s": 2.0,
        "retry_base_s": 0.05,
        "retry_cap_s": 3.0,
        "poll_interval_s": 0.01,
    }
    values.update(overrides)
    return PartnerCenterSettings(**values)


@dataclass
class Harness:
    """The fake Partner Center, this test's database, and a partner subscribed to updates."""

    fake: FakePartnerCenter
    engine: AsyncEngine
    uows: UnitOfWorkFactory
    partner_id: uuid.UUID
    client: httpx.AsyncClient

    def connector(self, **overrides: Any) -> PartnerCenterConnector:
        settings = pc_settings(self.fake, **overrides)
        return PartnerCenterConnector(
            self.uows, settings, PartnerCenterClient(settings, self.client)
        )

    async def queue(self, **overrides: Any) -> uuid.UUID:
        request_id = uuid.uuid4()
        values: dict[str, Any] = {
            "id": request_id,
            "partner_id": self.partner_id,
            "dedupe_key": f"issue:{uuid.uuid4()}",
            "title": PAYLOAD["Title"],
            "description": PAYLOAD["Description"],
            "severity": "critical",
            "support_topic_id": "32569836",
            "vehicle": "partner_cloud_support",
            "agent_locale": "de-DE",
            "partner_center_payload": PAYLOAD,
            "submission": "queued",
        }
        values.update(overrides)
        async with self.uows() as uow:
            uow.session.add(MicrosoftRequest(**values))
            await uow.commit()
        return request_id

    async def record(self, request_id: uuid.UUID) -> Any:
        found = await rows(
            self.engine,
            "SELECT microsoft_id, status, submission, submission_attempts, submission_error, "
            "filed_at, first_response_due_at, first_response_at FROM microsoft_requests "
            "WHERE id = :id",
            id=str(request_id) if self.engine.dialect.name == "postgresql" else request_id.hex,
        )
        return found[0]

    async def updates(self) -> list[dict[str, Any]]:
        bodies = await rows(
            self.engine,
            "SELECT body FROM webhook_deliveries "
            "WHERE event_type = 'microsoft_request.updated' ORDER BY created_at",
        )
        return [json.loads(body)["data"] for (body,) in bodies]


@pytest.fixture
async def pc(database_url: str, engine: AsyncEngine) -> AsyncIterator[Harness]:
    uows = UnitOfWorkFactory(create_session_factory(engine))
    partner = await seed_partner(database_url)
    async with uows() as uow:
        uow.session.add(
            WebhookSubscription(
                partner_id=partner.id,
                url="https://hooks.example/pc",
                secret="whsec_x",
                event_types=["microsoft_request.updated"],
            )
        )
        await uow.commit()
    async with FakePartnerCenter().running() as fake, httpx.AsyncClient() as client:
        yield Harness(fake, engine, uows, partner.id, client)


async def test_a_queued_request_is_filed_and_microsofts_number_is_kept_and_announced(
    pc: Harness,
) -> None:
    request_id = await pc.queue()

    assert await pc.connector().submit_once() == 1

    assert list(pc.fake.requests) == [(await pc.record(request_id)).microsoft_id]
    filed = pc.fake.requests[(await pc.record(request_id)).microsoft_id]
    assert filed["AgentLocale"] == "de-DE", "the agent locale is the URL segment"
    assert {k: filed[k] for k in PAYLOAD} == PAYLOAD, "the stored payload is sent as it is"
    row = await pc.record(request_id)
    assert (row.status, row.submission, row.submission_error) == ("open", "submitted", None)
    assert row.filed_at is not None, "filing starts Microsoft's first-response clock"
    assert row.first_response_due_at is not None
    (announced,) = await pc.updates()
    assert announced["microsoft_id"] == row.microsoft_id
    assert {"submission", "status", "microsoft_id", "filed_at"} <= set(announced["changed"])
    assert pc.fake.creates()[0].request_id == str(request_id), "MS-RequestId is the record id"
    assert await pc.connector().submit_once() == 0, "a filed request is not filed again"


async def test_throttling_and_server_errors_are_retried_honouring_retry_after(pc: Harness) -> None:
    request_id = await pc.queue()
    pc.fake.fail_next = [(429, "1"), (503, None)]

    await pc.connector().submit_once()

    creates = pc.fake.creates()
    assert [c.status for c in creates] == [429, 503, 201]
    assert creates[1].at - creates[0].at >= 0.95, "Retry-After: 1 was honoured"
    assert len({c.request_id for c in creates}) == 1, "one MS-RequestId for every retry"
    assert len({c.correlation_id for c in creates}) == 3, "a fresh MS-CorrelationId per call"
    assert len(pc.fake.requests) == 1
    assert (await pc.record(request_id)).submission == "submitted"


async def test_an_expired_token_is_renewed_once_and_the_call_goes_through(pc: Harness) -> None:
    connector = pc.connector()
    first = await pc.queue()
    await connector.submit_once()
    assert pc.fake.token_grants == 1
    pc.fake.expire_tokens()
    second = await pc.queue()

    await connector.submit_once()

    assert [c.status for c in pc.fake.creates()] == [201, 401, 201]
    assert pc.fake.token_grants == 2, "one new token, obtained with the rotated refresh token"
    assert (await pc.record(first)).submission == "submitted"
    assert (await pc.record(second)).submission == "submitted"


async def test_a_create_that_times_out_is_retried_without_filing_twice(pc: Harness) -> None:
    request_id = await pc.queue()
    pc.fake.hang_next, pc.fake.hang_s = 1, 1.5

    await pc.connector(timeout_s=0.5).submit_once()

    assert len(pc.fake.requests) == 1, "Partner Center saw the same MS-RequestId twice"
    assert (await pc.record(request_id)).microsoft_id in pc.fake.requests


async def test_partner_center_down_reschedules_then_gives_the_request_to_a_person(
    pc: Harness,
) -> None:
    request_id = await pc.queue()
    pc.fake.fail_next = [(503, "0")] * 4
    connector = pc.connector(call_attempts=2, max_submissions=2, retry_cap_s=0.1)

    await connector.submit_once()
    row = await pc.record(request_id)
    assert (row.submission, row.submission_attempts) == ("queued", 1)
    assert "503" in row.submission_error
    assert await connector.submit_once() == 0, "not before its next attempt time"

    async with pc.uows() as uow:
        queued = await uow.session.get(MicrosoftRequest, request_id)
        assert queued is not None
        queued.submission_next_at = None
        await uow.commit()
    await connector.submit_once()

    row = await pc.record(request_id)
    assert (row.submission, row.submission_attempts, row.microsoft_id) == ("failed", 2, None)
    (announced,) = await pc.updates()
    assert announced["submission"] == "failed"
    assert len(pc.fake.requests) == 0


async def test_a_refused_request_or_sign_in_is_not_retried(pc: Harness) -> None:
    rejected = await pc.queue(partner_center_payload={**PAYLOAD, "Severity": "urgent"})
    await pc.connector().submit_once()
    row = await pc.record(rejected)
    assert row.submission == "failed"
    assert "400" in row.submission_error
    assert len(pc.fake.creates()) == 1

    pc.fake.refuse_refresh = True
    refused = await pc.queue()
    await pc.connector().submit_once()
    row = await pc.record(refused)
    assert row.submission == "failed"
    assert "invalid_grant" in row.submission_error


async def test_status_changes_at_microsoft_are_read_case_insensitively_and_announced(
    pc: Harness,
) -> None:
    connector = pc.connector()
    request_id = await pc.queue()
    await connector.submit_once()
    microsoft_id = (await pc.record(request_id)).microsoft_id
    await asyncio.sleep(0.05)  # past the 10 ms poll interval

    assert await connector.poll_once() == 1
    assert len(await pc.updates()) == 1, "no change, nothing announced"

    pc.fake.set_status(microsoft_id, "ATTENTION_NEEDED")
    await asyncio.sleep(0.05)
    await connector.poll_once()
    row = await pc.record(request_id)
    assert row.status == "attention_needed"
    assert row.first_response_at is not None, "Microsoft asking for something is its response"

    pc.fake.set_status(microsoft_id, "Closed")
    await asyncio.sleep(0.05)
    await connector.poll_once()
    assert (await pc.record(request_id)).status == "closed"
    assert await connector.poll_once() == 0, "closed requests are no longer read"

    changes = [u["changed"] for u in await pc.updates()]
    assert changes[1] == ["status", "first_response_at"]
    assert changes[2] == ["status"]
    assert [u["status"] for u in await pc.updates()] == ["open", "attention_needed", "closed"]


async def test_a_number_recorded_by_hand_is_followed_too(pc: Harness) -> None:
    connector = pc.connector()
    filed = await pc.queue()
    await connector.submit_once()
    microsoft_id = (await pc.record(filed)).microsoft_id
    by_hand = await pc.queue(submission="manual", microsoft_id=microsoft_id, status="open")
    premier = await pc.queue(
        submission="manual",
        microsoft_id="SH-1",
        status="open",
        vehicle="premier_support_for_partners",
    )
    pc.fake.set_status(microsoft_id, "closed")
    await asyncio.sleep(0.05)

    await connector.poll_once()

    assert (await pc.record(by_hand)).status == "closed"
    assert (await pc.record(premier)).status == "open", "Premier is not in Partner Center"
    assert all(c.path != "/v1/servicerequests/SH-1" for c in pc.fake.calls)


def test_the_policy_queues_only_what_partner_center_can_take() -> None:
    partner = uuid.uuid4()
    policy = SubmissionPolicy.from_settings(
        PartnerCenterSettings(
            enabled=True,
            tenant_id="t",
            client_id="c",
            client_secret="s",
            refresh_token="r",
            partner_ids=[str(partner)],
        )
    )
    assert policy.initial(
        partner_id=partner, vehicle="partner_cloud_support", support_topic_id="1"
    ) == ("queued", None)
    state, reason = policy.initial(
        partner_id=partner, vehicle="premier_support_for_partners", support_topic_id="1"
    )
    assert state == "manual"
    assert reason is not None
    state, reason = policy.initial(
        partner_id=partner, vehicle="commercial_support", support_topic_id=None
    )
    assert state == "manual"
    assert reason is not None
    assert "MICROSOFT_SUPPORT_TOPICS" in reason
    assert policy.initial(
        partner_id=uuid.uuid4(), vehicle="commercial_support", support_topic_id="1"
    ) == ("manual", None), "another partner's account"
    off = SubmissionPolicy.from_settings(PartnerCenterSettings())
    assert off.initial(partner_id=partner, vehicle="commercial_support", support_topic_id="1") == (
        "manual",
        None,
    )
    with pytest.raises(ValueError, match="PARTNER_CENTER_REFRESH_TOKEN"):
        PartnerCenterSettings(enabled=True, tenant_id="t", client_id="c", client_secret="s")
