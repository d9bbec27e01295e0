"""The classifier process."""

from __future__ import annotations

from fastapi import FastAPI

from services.classifier.handler import handle_issue_received
from services.settings import ServiceSettings
from services.worker_app import create_worker_app
from shared.events.models import IssueReceived
from shared.kafka.consumer import ConsumerSpec

CONSUMER = ConsumerSpec(name="classifier", topic=IssueReceived.TOPIC, handler=handle_issue_received)


def create_app(settings: ServiceSettings) -> FastAPI:
    return create_worker_app(settings, service="classifier", consumers=[CONSUMER])
