"""The committed topic contract (docs/) is what the models say, and real events satisfy it."""

from __future__ import annotations

import json
import shutil
import subprocess
import uuid
from pathlib import Path
from typing import Any

import jsonschema
import orjson
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shared.db.base import utcnow
from shared.events import schema
from shared.events.envelope import encode, sdk_encoded
from shared.events.models import (
    EVENT_TYPES,
    Event,
    HealthIncidentChanged,
    IssueClassified,
    IssueReceived,
    IssueRouted,
)
from shared.vocabulary import Category, Outcome, Severity, Vehicle

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
PARSER = ROOT / ".venv" / "node" / "node_modules" / "@asyncapi" / "parser"


def committed_schema(cls: type[Event]) -> dict[str, Any]:
    path = DOCS / schema.SCHEMA_DIR / schema.schema_filename(cls)
    loaded: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return loaded


def validate(event: Event) -> None:
    _, value, _ = encode(event, service="intake", time=utcnow())
    jsonschema.validate(
        orjson.loads(value),
        committed_schema(type(event)),
        format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER,
    )


def test_the_committed_documents_are_what_the_models_generate() -> None:
    stale = schema.drift(DOCS)
    assert stale == [], f"run `escalation schema export`; out of date: {stale}"


def test_drift_is_reported_for_a_changed_a_missing_and_an_extra_document(tmp_path: Path) -> None:
    schema.write(tmp_path)
    assert schema.drift(tmp_path) == []
    routed = tmp_path / schema.SCHEMA_DIR / schema.schema_filename(IssueRouted)
    routed.write_text(routed.read_text().replace('"outcome"', '"result"'))
    (tmp_path / schema.ASYNCAPI_FILE).unlink()
    (tmp_path / schema.SCHEMA_DIR / "csp.issue.gone.v1.schema.json").write_text("{}")
    assert set(schema.drift(tmp_path)) == {
        f"{schema.SCHEMA_DIR}/{routed.name}",
        schema.ASYNCAPI_FILE,
        f"{schema.SCHEMA_DIR}/csp.issue.gone.v1.schema.json",
    }


def test_every_committed_schema_is_a_valid_json_schema() -> None:
    for cls in EVENT_TYPES.values():
        jsonschema.Draft202012Validator.check_schema(committed_schema(cls))


def full_events() -> list[Event]:
    issue, partner, now = uuid.uuid4(), uuid.uuid4(), utcnow()
    return [
        IssueReceived(
            issue_id=issue,
            partner_id=partner,
            customer_id=uuid.uuid4(),
            tenant_id=uuid.uuid4(),
            external_ref="CW-1",
            title="Teams ne démarre pas",
            description="Depuis 9 h",
            service="Microsoft Teams",
            region="EU",
            category=Category.SERVICE_UNAVAILABLE,
            severity=Severity.CRITICAL,
            locale="fr-FR",
            contact={"email": "a@example.com"},
            received_at=now,
        ),
        IssueClassified(
            issue_id=issue,
            partner_id=partner,
            external_ref="CW-1",
            category=Category.SERVICE_UNAVAILABLE,
            category_source="stated",
            outcome=Outcome.ESCALATED_TO_MICROSOFT,
            vehicle=Vehicle.ADVANCED_SUPPORT_FOR_PARTNERS,
            reasons=["no incident covers it"],
            rule_id="microsoft.technical",
            cluster_id="c-1",
            language="fr",
            confidence=0.9,
            tags=["technical"],
            severity=Severity.CRITICAL,
            service="Microsoft Teams",
            region="EU",
            classified_at=now,
        ),
        IssueRouted(
            issue_id=issue,
            partner_id=partner,
            external_ref="CW-1",
            outcome=Outcome.ESCALATED_TO_MICROSOFT,
            vehicle=Vehicle.ADVANCED_SUPPORT_FOR_PARTNERS,
            microsoft_request_id=uuid.uuid4(),
            webhook_delivery_ids=["msg_1"],
            routed_at=now,
        ),
        HealthIncidentChanged(
            incident_id="TM123456",
            title="Users can't join meetings",
            service="Microsoft Teams",
            classification="incident",
            status="serviceDegradation",
            is_resolved=False,
            start_at=now,
            regions=["EU"],
            tenant_ids=[uuid.uuid4()],
        ),
    ]


@pytest.mark.parametrize("event", full_events(), ids=lambda e: type(e).__name__)
def test_an_encoded_event_with_every_field_satisfies_its_committed_schema(event: Event) -> None:
    validate(event)


@settings(max_examples=25, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(event=st.one_of(*(st.builds(cls) for cls in EVENT_TYPES.values())))
def test_any_encodable_event_satisfies_its_committed_schema(event: Event) -> None:
    validate(event)


def written_as_the_sdk_writes(event: Event) -> None:
    """``encode`` writes records without the SDK (see its docstring): the same event by the
    SDK's ``to_structured`` and its own JSON format must say the same, headers included."""
    at = utcnow()
    _, value, headers = encode(event, service="classifier", event_id="e-1", time=at)
    sdk_value, sdk_headers = sdk_encoded(event, service="classifier", event_id="e-1", time=at)
    assert orjson.loads(value) == json.loads(sdk_value)
    assert headers == sdk_headers


@pytest.mark.parametrize("event", full_events(), ids=lambda e: type(e).__name__)
def test_an_event_with_every_field_is_written_as_the_cloudevents_sdk_writes_it(
    event: Event,
) -> None:
    written_as_the_sdk_writes(event)


@settings(max_examples=25, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(event=st.one_of(*(st.builds(cls) for cls in EVENT_TYPES.values())))
def test_any_encodable_event_is_written_as_the_cloudevents_sdk_writes_it(event: Event) -> None:
    written_as_the_sdk_writes(event)


def test_the_committed_schema_refuses_a_record_the_consumers_would_dead_letter() -> None:
    _, value, _ = encode(full_events()[2], service="notifier")
    record = orjson.loads(value)
    record["data"]["outcome"] = "escalated_somewhere"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(record, committed_schema(IssueRouted))


def refs(node: object) -> list[str]:
    if isinstance(node, dict):
        found = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
        return found + [r for value in node.values() for r in refs(value)]
    if isinstance(node, list):
        return [r for value in node for r in refs(value)]
    return []


def test_the_asyncapi_document_has_every_topic_and_dlq_and_no_dangling_reference() -> None:
    document = yaml.safe_load((DOCS / schema.ASYNCAPI_FILE).read_text(encoding="utf-8"))
    assert document["asyncapi"].startswith("3.")
    addresses = {channel["address"] for channel in document["channels"].values()}
    topics = {cls.TOPIC for cls in EVENT_TYPES.values()}
    assert addresses == topics | {f"{t}.dlq" for t in topics}
    for ref in refs(document):
        node: Any = document
        for part in ref.removeprefix("#/").split("/"):
            node = node[part]
        assert node, ref


@pytest.mark.skipif(
    shutil.which("node") is None or not PARSER.exists(),
    reason="the AsyncAPI parser is installed by `make test` (scripts/system-tools) with npm",
)
def test_the_asyncapi_parser_accepts_the_document_without_errors_or_warnings() -> None:
    result = subprocess.run(
        [
            "node",
            str(ROOT / "tests" / "tools" / "asyncapi-check.mjs"),
            str(PARSER.parents[1]),
            str(DOCS / schema.ASYNCAPI_FILE),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    diagnostics = [json.loads(line) for line in result.stdout.splitlines() if line.strip()]
    # Spectral severities: 0 error, 1 warning, 2 information, 3 hint.
    serious = [d for d in diagnostics if d["severity"] <= 1]
    assert result.returncode == 0, result.stderr
    assert serious == []


def test_health_events_are_keyed_by_incident_id_not_a_uuid() -> None:
    routed = committed_schema(IssueRouted)
    health = committed_schema(HealthIncidentChanged)
    assert routed["properties"]["subject"]["format"] == "uuid"
    assert "format" not in health["properties"]["subject"]
