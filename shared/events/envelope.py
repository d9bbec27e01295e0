"""CloudEvents 1.0 structured JSON on Kafka: read by the CloudEvents SDK, written as it writes."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
from cloudevents.core.base import BaseCloudEvent, EventFactory
from cloudevents.core.bindings.common import CONTENT_TYPE_HEADER
from cloudevents.core.bindings.kafka import KafkaMessage, from_structured, to_structured
from cloudevents.core.formats.json import JSONFormat
from cloudevents.core.spec import SPECVERSION_V1_0
from cloudevents.core.v1.event import CloudEvent
from pydantic import ValidationError

from shared.events.models import EVENT_TYPES, Event
from shared.ids import new_id

SOURCE = "/csp-escalation"


class _OrjsonFormat(JSONFormat):
    """The SDK's JSON format reading a CloudEvents 1.0 event with orjson, its ``time`` with the
    standard library's ISO 8601 parser (the SDK's JSON parsing and ``dateutil`` took half of a
    decoded event's cost). Anything else, including a record neither can read, is left to the
    SDK, so what it accepts and the reasons it gives are its own."""

    def read(self, event_factory: EventFactory | None, data: str | bytes) -> BaseCloudEvent:
        try:
            attributes = orjson.loads(data)
        except orjson.JSONDecodeError:
            return super().read(event_factory, data)
        if (
            not isinstance(attributes, dict)
            or attributes.get("specversion") != "1.0"
            or "data_base64" in attributes
        ):
            return super().read(event_factory, data)
        if "time" in attributes:
            try:
                attributes["time"] = datetime.fromisoformat(attributes["time"])
            except (TypeError, ValueError):
                return super().read(event_factory, data)
        return (event_factory or CloudEvent)(attributes, attributes.pop("data", None))


_FORMAT = _OrjsonFormat()
# A structured-mode record's one header.
_CONTENT_TYPE = (CONTENT_TYPE_HEADER, JSONFormat.CONTENT_TYPE.encode())


class InvalidMessage(Exception):
    """A record that can never be processed: it goes to the DLQ with this reason."""


@dataclass(frozen=True, slots=True)
class Envelope:
    """A decoded CloudEvent whose ``data`` passed its versioned model."""

    id: str
    type: str
    source: str
    time: datetime | None
    subject: str | None
    data: Event


def dataschema(cls: type[Event]) -> str:
    return f"urn:csp-escalation:schema:{cls.TYPE}:v{cls.VERSION}"


def encode(
    event: Event, *, service: str, event_id: str | None = None, time: datetime | None = None
) -> tuple[str, bytes, list[tuple[str, bytes]]]:
    """Return ``(event_id, value, headers)`` of the structured-mode Kafka record.

    It is what the SDK's ``to_structured`` writes for the CloudEvent (the tests hold the two
    equal, see :func:`sdk_encoded`), written without building one: the SDK checked, on every
    event, attributes made here of constants, a new id and the event's own key, and that was
    half the cost of an encoded event. ``time`` defaults to now, as the SDK's does. Reading
    (:func:`decode`) stays with the SDK, which checks what comes from outside.
    """
    eid = event_id or str(new_id())
    document = _attributes(event, service, eid)
    document["time"] = time or datetime.now(UTC)
    document["data"] = event.model_dump(mode="json")
    return eid, orjson.dumps(document, option=orjson.OPT_UTC_Z), [_CONTENT_TYPE]


def _attributes(event: Event, service: str, event_id: str) -> dict[str, Any]:
    return {
        "specversion": SPECVERSION_V1_0,
        "id": event_id,
        "source": f"{SOURCE}/{service}",
        "type": event.TYPE,
        "subject": event.key(),
        "datacontenttype": "application/json",
        "dataschema": dataschema(type(event)),
    }


def sdk_encoded(
    event: Event, *, service: str, event_id: str, time: datetime
) -> tuple[bytes, list[tuple[str, bytes]]]:
    """The record the SDK writes for the event that :func:`encode` makes: its value (with the
    SDK's own JSON format) and headers."""
    cloud_event = CloudEvent(
        _attributes(event, service, event_id) | {"time": time}, event.model_dump(mode="json")
    )
    message = to_structured(cloud_event, JSONFormat())
    return message.value, list(message.headers.items())


def decode(value: bytes | None, headers: list[tuple[str, bytes]] | None = None) -> Envelope:
    """Parse and validate a record; raise :class:`InvalidMessage` saying why it is not one."""
    if not value:
        raise InvalidMessage("empty record value")
    try:
        message = KafkaMessage(headers=dict(headers or []), key=None, value=value)
        cloud_event = from_structured(message, _FORMAT)
    except Exception as exc:
        raise InvalidMessage(f"not a CloudEvents JSON record: {exc}") from exc
    model = EVENT_TYPES.get(cloud_event.get_type())
    if model is None:
        raise InvalidMessage(f"unknown event type {cloud_event.get_type()!r}")
    data = cloud_event.get_data()
    if not isinstance(data, dict):
        raise InvalidMessage("event data must be a JSON object")
    try:
        payload = model.model_validate(data)
    except ValidationError as exc:
        raise InvalidMessage(f"invalid {model.TYPE} data: {exc.errors(include_url=False)}") from exc
    return Envelope(
        id=cloud_event.get_id(),
        type=cloud_event.get_type(),
        source=cloud_event.get_source(),
        time=cloud_event.get_time(),
        subject=cloud_event.get_subject(),
        data=payload,
    )
