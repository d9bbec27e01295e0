"""The classifier process."""

from __future__ import annotations

from fastapi import FastAPI

from services.classifier.handler import IssueClassifier
from services.classifier.rulebook import RuleBook
from services.settings import ServiceSettings
from services.worker_app import create_worker_app
from shared.events.models import IssueReceived
from shared.kafka.consumer import ConsumerSpec


def create_app(settings: ServiceSettings) -> FastAPI:
    """Loads and checks the rules first: an invalid rules file stops the service here."""
    config = settings.classifier
    classifier = IssueClassifier(RuleBook.load(config.rules_file, config.partner_rules_dir))
    consumer = ConsumerSpec(
        name="classifier",
        topic=IssueReceived.TOPIC,
        handler=classifier.handle,
        prepare=classifier.prepare,
    )
    return create_worker_app(settings, service="classifier", consumers=[consumer])
