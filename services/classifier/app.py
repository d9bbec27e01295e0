"""The classifier process: issues in, decisions out; health incidents into the local store."""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AsyncExitStack

import httpx
from fastapi import FastAPI

from services.classifier.graph import GraphHealthProvider
from services.classifier.handler import IssueClassifier
from services.classifier.health import HealthProvider
from services.classifier.health_feed import store_incident
from services.classifier.rulebook import RuleBook
from services.runtime import Runtime
from services.settings import ServiceSettings
from services.worker_app import create_worker_app
from shared.events.models import HealthIncidentChanged, IssueReceived
from shared.kafka.consumer import ConsumerSpec
from shared.kafka.topics import CLASSIFIER

# Incidents change a few times an hour; storing one up to half a second after it is published
# changes no classification, while a 50 ms fetch wait on this quiet topic made the classifier
# and the broker answer twenty empty fetches a second.
HEALTH_FEED_FETCH_MAX_WAIT_MS = 500


def create_app(settings: ServiceSettings) -> FastAPI:
    """Loads and checks the rules first: an invalid rules file stops the service here."""
    config = settings.classifier
    rules = RuleBook.load(config.rules_file, config.partner_rules_dir)

    async def setup(runtime: Runtime, resources: AsyncExitStack) -> Sequence[ConsumerSpec]:
        remote: HealthProvider | None = None
        if settings.graph.enabled:
            client = await resources.enter_async_context(httpx.AsyncClient(timeout=10))
            remote = GraphHealthProvider(
                settings.graph,
                client,
                timeout_s=config.health_timeout_s,
                cache_ttl_s=config.health_cache_ttl_s,
            )
        classifier = IssueClassifier(rules, settings=config, remote_health=remote)
        return [
            ConsumerSpec(
                name=CLASSIFIER,
                topic=IssueReceived.TOPIC,
                handler=classifier.handle,
                prepare=classifier.prepare,
                preload=classifier.preload,
            ),
            ConsumerSpec(
                name="health-feed",
                topic=HealthIncidentChanged.TOPIC,
                handler=store_incident,
                fetch_max_wait_ms=HEALTH_FEED_FETCH_MAX_WAIT_MS,
            ),
        ]

    return create_worker_app(settings, service="classifier", setup=setup)
