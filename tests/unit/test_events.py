"""The CloudEvents envelope: round trip, and clear reasons for what cannot be processed."""

from __future__ import annotations

import uuid
from datetime import datetime

import orjson
import pytest
from cloudevents.core.formats.json import JSONFormat

from shared.db.base import utcnow
from shared.events.envelope import _FORMAT, InvalidMessage, decode, encode, sdk_encoded
from shared.events.models import IssueReceived
from shared.vocabulary import Severity


def received() -> IssueReceived:
    return IssueReceived(
        issue_id=uuid.uuid4(),
        partner_id=uuid.uuid4(),
        external_ref="X-1",
        title="Teams down",
        description="",
        service="Microsoft Teams",
        severity=Severity.CRITICAL,
        received_at=utcnow(),
    )


def test_an_event_survives_the_round_trip_as_structured_cloudevents_json() -> None:
    event = received()
    event_id, value, headers = encode(event, service="intake")
    document = orjson.loads(value)
    assert document["specversion"] == "1.0"
    assert document["type"] == "csp.issue.received"
    assert document["subject"] == str(event.issue_id)
    assert document["dataschema"].endswith(":v1")
    envelope = decode(value, headers)
    assert envelope.id == event_id
    assert envelope.data == event


def test_the_record_is_the_json_the_cloudevents_sdk_itself_writes() -> None:
    """Events are written without the SDK; what they say must not differ from what its
    ``to_structured`` and its own JSON format write (non-ASCII text intact, the ``time``
    attribute in RFC 3339 with ``Z``, now when not given, as the SDK's)."""
    event = received().model_copy(update={"title": "Teams ne démarre pas ✓"})
    before = utcnow()
    event_id, value, headers = encode(event, service="intake")
    written = orjson.loads(value)
    assert written["time"].endswith("Z")
    at = datetime.fromisoformat(written["time"])
    assert before <= at <= utcnow()
    sdk_value, sdk_headers = sdk_encoded(event, service="intake", event_id=event_id, time=at)
    assert written == orjson.loads(sdk_value)
    assert headers == sdk_headers == [("content-type", b"application/cloudevents+json")]


_ATTRIBUTES = b'"specversion":"1.0","id":"e-1","source":"/x","type":"csp.issue.received"'


@pytest.mark.parametrize(
    "value",
    [
        b"{" + _ATTRIBUTES + b',"time":"2026-12-05T15:32:50.123456Z","data":{"a":"\\u00e9"}}',
        b"{" + _ATTRIBUTES + b',"time":"2026-12-05T17:32:50+02:00","subject":"s","data":[1]}',
        # More digits than a datetime holds: the standard library refuses, the SDK reads it.
        b"{" + _ATTRIBUTES + b',"time":"2026-12-05T15:32:50.123456789Z","data":null}',
        b"{" + _ATTRIBUTES + b',"data_base64":"aGk=","datacontenttype":"text/plain"}',
        b"{" + _ATTRIBUTES + b',"partnerext":"7"}',
        b'{"specversion":"0.3","id":"e-1","source":"/x","type":"t","data":"d"}',
    ],
)
def test_a_record_is_read_exactly_as_the_cloudevents_sdk_reads_it(value: bytes) -> None:
    """Records are read with orjson and the standard library's ISO 8601 parser where they
    can be; what comes out must not differ from the SDK's own reader."""
    ours, sdk = _FORMAT.read(None, value), JSONFormat().read(None, value)
    assert type(ours) is type(sdk)
    attributes, expected = ours.get_attributes(), sdk.get_attributes()
    if b'"time"' not in value:  # each reader stamps the moment it read the record
        assert type(attributes.pop("time")) is type(expected.pop("time"))
    assert attributes == expected
    assert ours.get_data() == sdk.get_data()


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (b"", "empty"),
        (b"{not json", "not a CloudEvents JSON record"),
        (b"{" + _ATTRIBUTES + b',"time":"yesterday","data":{}}', "not a CloudEvents JSON record"),
        (
            b'{"specversion":"1.0","id":"1","source":"/x","type":"nope","data":{}}',
            "unknown event type",
        ),
        (
            b'{"specversion":"1.0","id":"1","source":"/x","type":"csp.issue.received","data":{}}',
            "invalid csp.issue.received data",
        ),
        (
            b'{"specversion":"1.0","id":"1","source":"/x","type":"csp.issue.received","data":"s"}',
            "must be a JSON object",
        ),
    ],
)
def test_a_record_that_is_not_a_valid_event_is_rejected_with_its_reason(
    value: bytes, reason: str
) -> None:
    with pytest.raises(InvalidMessage, match=reason):
        decode(value)
