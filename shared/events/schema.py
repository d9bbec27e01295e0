"""The topics' public contract, generated from the event models: JSON Schemas and AsyncAPI 3.

Dashboards and other consumers read these documents instead of our code. They are committed
under ``docs/`` by ``escalation schema export`` and a test fails when they drift from the models.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml
from pydantic.json_schema import models_json_schema

from shared.events.envelope import SOURCE, dataschema
from shared.events.models import EVENT_TYPES, Event, HealthIncidentChanged
from shared.kafka.topics import DLQ_SUFFIX

JSON_SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"
ASYNCAPI_FILE = "asyncapi.yaml"
SCHEMA_DIR = "events"
KAFKA_BINDING_VERSION = "0.5.0"

# What a DLQ record adds to the headers of the record it parks (see shared.kafka.consumer).
DLQ_HEADERS = {
    "dlq.reason": "Why the record could not be processed.",
    "dlq.consumer": "The consumer group member that gave up on it.",
    "dlq.source": "topic/partition/offset of the original record.",
    "dlq.failed_at": "When it was parked (RFC 3339, UTC).",
}


def schema_filename(cls: type[Event]) -> str:
    return f"{cls.TYPE}.v{cls.VERSION}.schema.json"


def _envelope(cls: type[Event], data: dict[str, Any], *, key_format: str | None) -> dict[str, Any]:
    """A structured-mode CloudEvents 1.0 record whose ``data`` is ``data``."""
    subject: dict[str, Any] = {"type": "string", "description": "The Kafka key."}
    if key_format:
        subject["format"] = key_format
    return {
        "type": "object",
        "title": f"{cls.__name__} v{cls.VERSION}",
        "description": (cls.__doc__ or "").strip(),
        "required": ["specversion", "id", "source", "type", "subject", "datacontenttype", "data"],
        "properties": {
            "specversion": {"const": "1.0"},
            "id": {
                "type": "string",
                "description": "Event id; a re-sent event keeps its id, so deduplicate on it.",
            },
            "source": {
                "type": "string",
                "description": f"The publishing service, {SOURCE}/<service>.",
                "pattern": f"^{SOURCE}/",
            },
            "type": {"const": cls.TYPE},
            "time": {"type": "string", "format": "date-time"},
            "subject": subject,
            "datacontenttype": {"const": "application/json"},
            "dataschema": {"const": dataschema(cls)},
            "data": data,
        },
        "additionalProperties": True,
    }


def _key_format(cls: type[Event]) -> str | None:
    return None if cls is HealthIncidentChanged else "uuid"


def event_schemas() -> dict[str, dict[str, Any]]:
    """One standalone JSON Schema (2020-12) per event type, keyed by file name."""
    out: dict[str, dict[str, Any]] = {}
    for cls in EVENT_TYPES.values():
        data = cls.model_json_schema(mode="serialization")
        defs = data.pop("$defs", {})
        schema = {
            "$schema": JSON_SCHEMA_DIALECT,
            "$id": dataschema(cls),
            **_envelope(cls, data, key_format=_key_format(cls)),
        }
        if defs:
            schema["$defs"] = defs
        out[schema_filename(cls)] = schema
    return out


def asyncapi_document() -> dict[str, Any]:
    """The AsyncAPI 3.0 description of every topic and its DLQ, as a plain mapping."""
    types = list(EVENT_TYPES.values())
    _, shared_defs = models_json_schema(
        [(cls, "serialization") for cls in types], ref_template="#/components/schemas/{model}"
    )
    schemas: dict[str, Any] = dict(shared_defs.get("$defs", {}))
    messages: dict[str, Any] = {}
    channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    for cls in types:
        name = cls.__name__
        data_ref = {"$ref": f"#/components/schemas/{name}"}
        schemas[f"{name}Envelope"] = _envelope(cls, data_ref, key_format=_key_format(cls))
        messages[name] = _message(cls)
        channel = cls.TOPIC.replace(".", "_")
        channels[channel] = _channel(cls.TOPIC, (cls.__doc__ or "").strip(), name)
        channels[f"{channel}_dlq"] = _channel(
            f"{cls.TOPIC}{DLQ_SUFFIX}",
            f"Records from {cls.TOPIC} that could not be processed.",
            "DeadLetter",
        )
        operations[f"consume_{channel}"] = _receive(channel, name, cls)
        operations[f"consume_{channel}_dlq"] = _receive(f"{channel}_dlq", "DeadLetter", None)
    messages["DeadLetter"] = _dead_letter_message()
    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": "csp-escalation events",
            "version": "1",
            "description": (
                "Topics an ops dashboard or integration can read. Every record is a CloudEvents "
                "1.0 structured JSON event. Topic names take the deployment's KAFKA_TOPIC_PREFIX. "
                "Delivery is at least once: deduplicate on the CloudEvents id."
            ),
        },
        "defaultContentType": "application/cloudevents+json; charset=UTF-8",
        "servers": {
            "kafka": {
                "host": "kafka:9092",
                "protocol": "kafka",
                "description": "The deployment's brokers (KAFKA_BOOTSTRAP_SERVERS).",
            }
        },
        "channels": channels,
        "operations": operations,
        "components": {"messages": messages, "schemas": schemas},
    }


def _key_schema(cls: type[Event]) -> dict[str, Any]:
    what = "health incident id" if cls is HealthIncidentChanged else "issue id"
    key: dict[str, Any] = {"type": "string", "description": f"The {what}."}
    if fmt := _key_format(cls):
        key["format"] = fmt
    return key


def _message(cls: type[Event]) -> dict[str, Any]:
    return {
        "name": cls.TYPE,
        "title": cls.__name__,
        "summary": (cls.__doc__ or "").strip(),
        "contentType": "application/cloudevents+json; charset=UTF-8",
        "headers": {
            "type": "object",
            "properties": {
                "content-type": {"type": "string"},
                "traceparent": {
                    "type": "string",
                    "description": "W3C trace context of the work that produced the event.",
                },
            },
        },
        "payload": {"$ref": f"#/components/schemas/{cls.__name__}Envelope"},
        "bindings": {"kafka": {"key": _key_schema(cls), "bindingVersion": KAFKA_BINDING_VERSION}},
    }


def _dead_letter_message() -> dict[str, Any]:
    return {
        "name": "dead-letter",
        "title": "DeadLetter",
        "summary": "A record a consumer could not process, kept byte for byte with the reason.",
        "headers": {
            "type": "object",
            "required": sorted(DLQ_HEADERS),
            "properties": {
                name: {"type": "string", "description": text} for name, text in DLQ_HEADERS.items()
            },
        },
        "payload": {"description": "The original record value, unchanged (it may not be JSON)."},
    }


def _channel(topic: str, description: str, message: str) -> dict[str, Any]:
    return {
        "address": topic,
        "description": description,
        "messages": {message: {"$ref": f"#/components/messages/{message}"}},
        "bindings": {"kafka": {"topic": topic, "bindingVersion": KAFKA_BINDING_VERSION}},
    }


def _receive(channel: str, message: str, cls: type[Event] | None) -> dict[str, Any]:
    return {
        "action": "receive",
        "channel": {"$ref": f"#/channels/{channel}"},
        "summary": f"Read {cls.TOPIC}" if cls else "Inspect or re-drive parked records",
        "messages": [{"$ref": f"#/channels/{channel}/messages/{message}"}],
    }


def rendered() -> dict[str, str]:
    """Every document as the exact text committed under ``docs/``, keyed by relative path."""
    files = {
        f"{SCHEMA_DIR}/{name}": json.dumps(schema, indent=2, ensure_ascii=False) + "\n"
        for name, schema in event_schemas().items()
    }
    files[ASYNCAPI_FILE] = yaml.safe_dump(
        asyncapi_document(), sort_keys=False, allow_unicode=True, width=100
    )
    return files


def write(out: Path) -> list[Path]:
    """Write every document under ``out`` and return the paths written."""
    written = []
    for relative, text in rendered().items():
        path = out / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written


def drift(out: Path) -> list[str]:
    """Relative paths whose committed text differs from the models (missing and extra ones too)."""
    expected = rendered()
    stale = [
        relative
        for relative, text in expected.items()
        if not (out / relative).exists() or (out / relative).read_text(encoding="utf-8") != text
    ]
    committed = out / SCHEMA_DIR
    if committed.is_dir():
        stale += sorted(
            f"{SCHEMA_DIR}/{p.name}"
            for p in committed.glob("*.json")
            if f"{SCHEMA_DIR}/{p.name}" not in expected
        )
    return stale
