"""Webhook delivery against real receivers on loopback: failures, throttling, rotation."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path
from typing import Any

import httpx
from standardwebhooks import Webhook

from tests.support.factories import SeededPartner, eventually, issue_body, seed_partner
from tests.support.receiver import Reply, WebhookReceiver
from tests.support.stack import Stack


async def subscribe(client: httpx.AsyncClient, url: str) -> dict[str, Any]:
    response = await client.post("/v1/webhooks", json={"url": url})
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


async def deliveries(client: httpx.AsyncClient, webhook_id: str) -> list[dict[str, Any]]:
    page = (await client.get(f"/v1/webhooks/{webhook_id}/deliveries")).json()
    items: list[dict[str, Any]] = page["items"]
    return items


async def settled(
    client: httpx.AsyncClient, webhook_id: str, status: str, stack: Stack
) -> dict[str, Any]:
    found: list[dict[str, Any]] = []

    async def done() -> bool:
        nonlocal found
        found = await deliveries(client, webhook_id)
        return bool(found) and found[0]["status"] == status

    await eventually(done, timeout=40, message=lambda: f"{found}\n{stack.logs()}")
    return found[0]


def api(stack: Stack, partner: SeededPartner) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=stack.intake_url, headers=partner.headers, timeout=30)


async def test_each_endpoint_gets_the_documented_treatment_for_its_answers(
    stack: Stack, database_url: str
) -> None:
    partner = await seed_partner(database_url)
    flaky = WebhookReceiver(script=[Reply(500), Reply(503)])
    throttled = WebhookReceiver(script=[Reply(429, {"Retry-After": "2"})])
    gone = WebhookReceiver(status_code=410)
    slow = WebhookReceiver(script=[Reply(204, delay_s=4)])
    rejecting = WebhookReceiver(script=[Reply(400)])
    receivers = {
        "flaky": flaky,
        "throttled": throttled,
        "gone": gone,
        "slow": slow,
        "rejecting": rejecting,
    }
    await stack.start()
    async with (
        flaky.running(),
        throttled.running(),
        gone.running(),
        slow.running(),
        rejecting.running(),
        api(stack, partner) as client,
    ):
        hooks = {name: await subscribe(client, r.url) for name, r in receivers.items()}
        assert (await client.post("/v1/issues", json=issue_body())).status_code == 202

        flaky_done = await settled(client, hooks["flaky"]["id"], "succeeded", stack)
        assert [a["status_code"] for a in flaky_done["attempt_log"]] == [500, 503, 204]
        assert [a["attempt"] for a in flaky_done["attempt_log"]] == [1, 2, 3]

        throttled_done = await settled(client, hooks["throttled"]["id"], "succeeded", stack)
        first, second = throttled.received[:2]
        assert second.at - first.at >= 1.9, "Retry-After: 2 was honoured"
        assert [a["status_code"] for a in throttled_done["attempt_log"]] == [429, 204]

        gone_done = await settled(client, hooks["gone"]["id"], "failed", stack)
        assert len(gone_done["attempt_log"]) == 1
        listed = {h["id"]: h for h in (await client.get("/v1/webhooks")).json()}
        assert listed[hooks["gone"]["id"]]["enabled"] is False
        assert "410" in listed[hooks["gone"]["id"]]["disabled_reason"]

        slow_done = await settled(client, hooks["slow"]["id"], "succeeded", stack)
        assert slow_done["attempt_log"][0]["status_code"] is None
        assert "Timeout" in slow_done["attempt_log"][0]["error"]
        assert len({r.headers["webhook-id"] for r in slow.received}) == 1, "same id on retry"

        rejected = await settled(client, hooks["rejecting"]["id"], "failed", stack)
        assert [a["status_code"] for a in rejected["attempt_log"]] == [400], "4xx: not retried"
        again = await client.post(
            f"/v1/webhooks/{hooks['rejecting']['id']}/deliveries/{rejected['id']}/redeliver"
        )
        assert again.status_code == 202
        await settled(client, hooks["rejecting"]["id"], "succeeded", stack)

        for name, receiver in receivers.items():
            for request in receiver.received:
                Webhook(hooks[name]["secret"]).verify(request.body, request.headers)


async def test_a_receiver_that_was_down_gets_every_delivery_once_it_is_back(
    stack: Stack, database_url: str
) -> None:
    partner = await seed_partner(database_url)
    receiver = WebhookReceiver()
    await stack.start()
    async with api(stack, partner) as client:
        hook = await subscribe(client, receiver.url)
        for _ in range(5):
            assert (await client.post("/v1/issues", json=issue_body())).status_code == 202

        async def all_failed_once() -> bool:
            items = await deliveries(client, hook["id"])
            return len(items) == 5 and all(i["attempts"] >= 1 for i in items)

        await eventually(all_failed_once, timeout=40, message=stack.logs)
        async with receiver.running():

            async def all_arrived() -> bool:
                return len(receiver.ids()) == 5

            await eventually(all_arrived, timeout=60, message=stack.logs)

            async def all_recorded() -> bool:
                # The notifier records a delivery's outcome after the receiver has answered.
                return {i["status"] for i in await deliveries(client, hook["id"])} == {"succeeded"}

            await eventually(all_recorded, timeout=30, message=stack.logs)
            items = await deliveries(client, hook["id"])
    assert {i["status"] for i in items} == {"succeeded"}
    assert receiver.ids() == {i["id"] for i in items}
    for item in items:
        log = item["attempt_log"]
        assert [a["attempt"] for a in log] == list(range(1, len(log) + 1))
        assert log[-1]["status_code"] == 204
        assert all(a["status_code"] is None for a in log[:-1])
    for request in receiver.received:
        Webhook(hook["secret"]).verify(request.body, request.headers)


async def test_during_rotation_receivers_holding_the_old_or_the_new_secret_both_verify(
    stack: Stack, database_url: str
) -> None:
    partner = await seed_partner(database_url)
    receiver = WebhookReceiver()
    await stack.start()
    async with receiver.running(), api(stack, partner) as client:
        hook = await subscribe(client, receiver.url)
        rotated = (await client.post(f"/v1/webhooks/{hook['id']}/rotate-secret")).json()
        assert rotated["secret"] != hook["secret"]
        assert (await client.post("/v1/issues", json=issue_body())).status_code == 202

        async def arrived() -> bool:
            return len(receiver.received) == 1

        await eventually(arrived, timeout=30, message=stack.logs)
    request = receiver.received[0]
    assert len(request.headers["webhook-signature"].split(" ")) == 2
    Webhook(hook["secret"]).verify(request.body, request.headers)
    Webhook(rotated["secret"]).verify(request.body, request.headers)


async def test_an_exhausted_delivery_is_kept_and_can_be_redelivered(
    stack: Stack, database_url: str
) -> None:
    partner = await seed_partner(database_url)
    receiver = WebhookReceiver(status_code=500)
    stack.extra_env["WEBHOOK_MAX_ATTEMPTS"] = "2"
    await stack.start()
    async with receiver.running(), api(stack, partner) as client:
        hook = await subscribe(client, receiver.url)
        assert (await client.post("/v1/issues", json=issue_body())).status_code == 202
        exhausted = await settled(client, hook["id"], "exhausted", stack)
        assert [a["status_code"] for a in exhausted["attempt_log"]] == [500, 500]
        receiver.status_code = 204
        answer = await client.post(
            f"/v1/webhooks/{hook['id']}/deliveries/{exhausted['id']}/redeliver"
        )
        assert answer.status_code == 202
        done = await settled(client, hook["id"], "succeeded", stack)
    assert done["attempt_log"][-1]["status_code"] == 204


async def test_an_endpoint_disabled_by_410_gets_what_it_missed_once_enabled_again(
    stack: Stack, database_url: str
) -> None:
    partner = await seed_partner(database_url)
    receiver = WebhookReceiver(status_code=410)
    await stack.start()
    async with receiver.running(), api(stack, partner) as client:
        hook = await subscribe(client, receiver.url)
        assert (await client.post("/v1/issues", json=issue_body())).status_code == 202
        gone = await settled(client, hook["id"], "failed", stack)
        assert [a["status_code"] for a in gone["attempt_log"]] == [410]
        receiver.status_code = 204
        answer = await client.post(f"/v1/webhooks/{hook['id']}/enable")
        assert answer.status_code == 200, answer.text
        assert answer.json()["requeued"] == 1
        done = await settled(client, hook["id"], "succeeded", stack)
        assert done["id"] == gone["id"], "the same message, under the same webhook-id"
        assert len(receiver.received) == 2
        assert receiver.received[-1].headers["webhook-id"] == gone["id"]
        Webhook(hook["secret"]).verify(receiver.received[-1].body, receiver.received[-1].headers)
        # Enabled again, it gets the next outcome as any endpoint does.
        assert (await client.post("/v1/issues", json=issue_body())).status_code == 202

        async def next_one() -> bool:
            return len(receiver.received) == 3

        await eventually(next_one, timeout=30, message=stack.logs)


async def test_after_a_long_receiver_outage_every_exhausted_delivery_is_sent_again_at_once(
    stack: Stack, database_url: str
) -> None:
    partner = await seed_partner(database_url)
    receiver = WebhookReceiver(status_code=503)
    stack.extra_env["WEBHOOK_MAX_ATTEMPTS"] = "1"
    await stack.start()
    async with receiver.running(), api(stack, partner) as client:
        hook = await subscribe(client, receiver.url)
        for _ in range(3):
            assert (await client.post("/v1/issues", json=issue_body())).status_code == 202

        async def all_exhausted() -> bool:
            found = await deliveries(client, hook["id"])
            return len(found) == 3 and {d["status"] for d in found} == {"exhausted"}

        await eventually(all_exhausted, timeout=40, message=stack.logs)
        receiver.status_code = 204
        url = f"/v1/webhooks/{hook['id']}/deliveries/redeliver"
        answer = await client.post(url, json={})
        assert answer.status_code == 202
        assert answer.json() == {"requeued": 3}

        async def all_delivered() -> bool:
            found = await deliveries(client, hook["id"])
            return {d["status"] for d in found} == {"succeeded"}

        await eventually(all_delivered, timeout=40, message=stack.logs)
    ids = [r.headers["webhook-id"] for r in receiver.received]
    assert len(ids) == 6
    assert sorted(ids[3:]) == sorted(ids[:3]), "each message again under its own webhook-id"


async def escalation(database_url: str, *args: str) -> str:
    """The ``escalation`` command, as an operator runs it beside the services."""
    command = Path(sys.executable).with_name("escalation")
    process = await asyncio.create_subprocess_exec(
        str(command),
        *args,
        env={**os.environ, "DATABASE_URL": database_url},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await process.communicate()
    assert process.returncode == 0, output.decode()
    return output.decode()


async def test_after_an_outage_on_our_side_an_operator_sends_every_partners_deliveries_again(
    stack: Stack, database_url: str
) -> None:
    partners = [await seed_partner(database_url) for _ in range(2)]
    receiver = WebhookReceiver(status_code=503)
    stack.extra_env["WEBHOOK_MAX_ATTEMPTS"] = "1"
    await stack.start()
    async with receiver.running():
        hooks = []
        for partner in partners:
            async with api(stack, partner) as client:
                hooks.append(await subscribe(client, receiver.url))
                assert (await client.post("/v1/issues", json=issue_body())).status_code == 202
                await settled(client, hooks[-1]["id"], "exhausted", stack)
        receiver.status_code = 204

        counted = await escalation(database_url, "webhooks", "redeliver", "--dry-run")
        assert "would requeue 2 exhausted deliveries in all" in counted
        listed = await escalation(database_url, "webhooks", "list")
        assert listed.count("exhausted 1  failed 0  oldest kept") == 2, listed
        assert all(hook["id"] in listed for hook in hooks)
        done = await escalation(database_url, "webhooks", "redeliver")
        assert "requeued 2 exhausted deliveries in all" in done

        for partner, hook in zip(partners, hooks, strict=True):
            async with api(stack, partner) as client:
                await settled(client, hook["id"], "succeeded", stack)
    ids = [r.headers["webhook-id"] for r in receiver.received]
    assert len(ids) == 4
    assert sorted(ids[2:]) == sorted(ids[:2]), "each message again under its own webhook-id"
