"""Where an escalation leaves the building: Partner Center filing, and indirect-provider hand-off.

Real services, broker and database; the fake Partner Center and the webhook receivers are real
HTTP servers on loopback.
"""

from __future__ import annotations

import json
from typing import Any

import httpx
import orjson
from standardwebhooks import Webhook

from shared.vocabulary import CspModel, Vehicle
from tests.support.factories import SeededPartner, eventually, issue_body, seed_partner
from tests.support.fake_partner_center import CLIENT_SECRET, REFRESH_TOKEN, FakePartnerCenter
from tests.support.receiver import Reply, WebhookReceiver
from tests.support.stack import Stack

TEAMS_TOPIC = "32569836"


def connector_env(fake: FakePartnerCenter) -> dict[str, str]:
    return {
        "PARTNER_CENTER_ENABLED": "true",
        "PARTNER_CENTER_BASE_URL": fake.url,
        "PARTNER_CENTER_AUTHORITY_URL": fake.url,
        "PARTNER_CENTER_TENANT_ID": fake.tenant,
        "PARTNER_CENTER_CLIENT_ID": "app-id",
        "PARTNER_CENTER_CLIENT_SECRET": CLIENT_SECRET,
        "PARTNER_CENTER_REFRESH_TOKEN": REFRESH_TOKEN,
        "PARTNER_CENTER_SUBMIT_INTERVAL_S": "0.2",
        "PARTNER_CENTER_POLL_INTERVAL_S": "0.5",
        "PARTNER_CENTER_RETRY_BASE_S": "0.1",
        "MICROSOFT_SUPPORT_TOPICS": json.dumps({"Microsoft TEAMS": TEAMS_TOPIC}),
    }


async def subscribe(
    client: httpx.AsyncClient, partner: SeededPartner, url: str, **fields: Any
) -> str:
    response = await client.post(
        "/v1/webhooks", json={"url": url, **fields}, headers=partner.headers
    )
    assert response.status_code == 201, response.text
    secret: str = response.json()["secret"]
    return secret


def events(receiver: WebhookReceiver, secret: str, event_type: str) -> list[dict[str, Any]]:
    """Verified payloads of one type, one per ``webhook-id``."""
    seen: dict[str, dict[str, Any]] = {}
    for delivery in receiver.received:
        payload = Webhook(secret).verify(delivery.body, delivery.headers)
        if payload["type"] == event_type:
            seen[delivery.headers["webhook-id"]] = payload["data"]
    return list(seen.values())


async def test_an_escalation_is_filed_in_partner_center_with_its_support_topic_and_followed(
    stack: Stack, database_url: str
) -> None:
    partner = await seed_partner(database_url, vehicles=(Vehicle.PARTNER_CLOUD_SUPPORT,))
    async with (
        FakePartnerCenter().running() as fake,
        WebhookReceiver().running() as receiver,
    ):
        stack.extra_env.update(connector_env(fake))
        await stack.start()
        async with httpx.AsyncClient(base_url=stack.intake_url) as client:
            secret = await subscribe(client, partner, receiver.url)
            mapped = await client.post(
                "/v1/issues", json=issue_body(category="bug"), headers=partner.headers
            )
            unmapped = await client.post(
                "/v1/issues",
                json=issue_body(category="bug", service="SharePoint Online"),
                headers=partner.headers,
            )
            assert mapped.status_code == unmapped.status_code == 202

            records: dict[str, dict[str, Any]] = {}

            async def both_recorded() -> bool:
                page = await client.get("/v1/microsoft-requests", headers=partner.headers)
                for item in page.json()["items"]:
                    records[item["issue_ids"][0]] = item
                filed = records.get(mapped.json()["id"], {}).get("microsoft_id")
                return len(records) == 2 and filed is not None

            await eventually(both_recorded, timeout=30, message=stack.logs)
            teams = records[mapped.json()["id"]]
            sharepoint = records[unmapped.json()["id"]]

            assert teams["support_topic_id"] == TEAMS_TOPIC, "mapping matched in any case"
            assert teams["partner_center_payload"]["SupportTopicId"] == TEAMS_TOPIC
            assert (teams["submission"], teams["status"]) == ("submitted", "open")
            assert teams["microsoft_id"] in fake.requests
            assert fake.requests[teams["microsoft_id"]]["SupportTopicId"] == TEAMS_TOPIC
            assert fake.requests[teams["microsoft_id"]]["AgentLocale"] == "en-US"
            assert sharepoint["support_topic_id"] is None
            assert sharepoint["submission"] == "manual"
            assert "MICROSOFT_SUPPORT_TOPICS" in sharepoint["submission_error"]
            assert len(fake.requests) == 1, "only the mapped request went to Partner Center"

            fake.set_status(teams["microsoft_id"], "Attention_Needed")

            def updates() -> list[dict[str, Any]]:
                return [
                    u
                    for u in events(receiver, secret, "microsoft_request.updated")
                    if u["id"] == teams["id"]
                ]

            async def attention_announced() -> bool:
                return any(u["status"] == "attention_needed" for u in updates())

            await eventually(attention_announced, timeout=30, message=stack.logs)

        filed = [u for u in updates() if "microsoft_id" in u["changed"]]
        assert [u["microsoft_id"] for u in filed] == [teams["microsoft_id"]]
        escalated = {
            e["issue_id"]: e for e in events(receiver, secret, "issue.escalated_to_microsoft")
        }
        told = escalated[mapped.json()["id"]]
        assert told["microsoft_request"]["support_topic_id"] == TEAMS_TOPIC
        assert told["microsoft_request"]["submission"] == "queued"
        assert "Partner Center" in told["next_step"]
        assert escalated[unmapped.json()["id"]]["microsoft_request"]["submission"] == "manual"


async def test_an_indirect_reseller_hands_off_to_its_provider_and_is_told_what_was_sent(
    stack: Stack, database_url: str
) -> None:
    reseller = await seed_partner(database_url, csp_model=CspModel.INDIRECT_RESELLER, locale="fr")
    direct = await seed_partner(database_url)
    await stack.start()
    async with (
        WebhookReceiver().running() as own,
        WebhookReceiver(script=[Reply(503)]).running() as provider,
        httpx.AsyncClient(base_url=stack.intake_url) as client,
    ):
        own_secret = await subscribe(client, reseller, own.url)
        before = await client.post(
            "/v1/issues", json=issue_body(category="bug"), headers=reseller.headers
        )

        async def told_once() -> bool:
            return len(events(own, own_secret, "issue.routed_to_provider")) == 1

        await eventually(told_once, timeout=30, message=stack.logs)
        (unsent,) = events(own, own_secret, "issue.routed_to_provider")
        assert unsent["issue_id"] == before.json()["id"]
        assert unsent["handoff"]["provider_notified"] is False
        assert "vous-même" in unsent["next_step"], "no provider endpoint: forward it yourself"

        provider_secret = await subscribe(
            client, reseller, provider.url, audience="indirect_provider"
        )
        assert provider_secret != own_secret
        issue = issue_body(
            category="bug",
            service="Exchange Online",
            tenant_id="0b1f6a7e-4f2c-4d0a-9d7e-2c1d3e4f5a6b",
        )
        sent = await client.post("/v1/issues", json=issue, headers=reseller.headers)
        assert sent.status_code == 202, sent.text

        async def provider_has_it() -> bool:
            """Answered 503 first, then accepted on the retry."""
            return len(provider.received) >= 2

        await eventually(provider_has_it, timeout=30, message=stack.logs)
        await eventually(
            lambda: _count(own, own_secret, "issue.routed_to_provider", 2),
            timeout=30,
            message=stack.logs,
        )

        (handed,) = events(provider, provider_secret, "provider_handoff.created")
        assert handed["issue"]["external_ref"] == issue["external_ref"]
        assert handed["issue"]["customer_tenant_id"] == issue["tenant_id"]
        assert handed["reseller"]["partner_id"] == str(reseller.id)
        assert handed["provider"] == {"name": "Contoso Distribution"}
        assert len(provider.received) == 2
        assert len({r.headers["webhook-id"] for r in provider.received}) == 1, (
            "the 503 was retried with the same webhook-id"
        )
        with_provider = next(
            e
            for e in events(own, own_secret, "issue.routed_to_provider")
            if e["issue_id"] == sent.json()["id"]
        )
        assert with_provider["handoff"]["provider_notified"] is True
        assert with_provider["handoff"]["sent"] == handed["issue"], "told exactly what was sent"
        assert with_provider["handoff"]["provider_delivery_ids"] == [
            provider.received[0].headers["webhook-id"]
        ]
        assert with_provider["handoff"]["id"] == handed["handoff_id"]
        assert all(
            orjson.loads(r.body)["type"] == "provider_handoff.created" for r in provider.received
        ), "the provider's endpoint gets hand-offs and nothing else"

        view = (
            await client.get(f"/v1/issues/{sent.json()['id']}", headers=reseller.headers)
        ).json()
        assert view["routing"]["handoff_id"] == handed["handoff_id"]

        refused = await client.post(
            "/v1/webhooks",
            json={"url": provider.url, "audience": "indirect_provider"},
            headers=direct.headers,
        )
        assert refused.status_code == 422
        assert refused.json()["errors"][0]["field"] == "body.audience"
        wrong_type = await client.post(
            "/v1/webhooks",
            json={
                "url": provider.url,
                "audience": "indirect_provider",
                "event_types": ["issue.escalated_to_microsoft"],
            },
            headers=reseller.headers,
        )
        assert wrong_type.status_code == 422
        listed = (await client.get("/v1/webhooks", headers=reseller.headers)).json()
        assert sorted(w["audience"] for w in listed) == ["indirect_provider", "partner"]


async def _count(receiver: WebhookReceiver, secret: str, event_type: str, n: int) -> bool:
    return len(events(receiver, secret, event_type)) >= n
