"""``escalation rules check`` and ``escalation rules explain``."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from services.cli import app

runner = CliRunner()


def test_rules_check_accepts_the_default_rules() -> None:
    result = runner.invoke(app, ["rules", "check", "shared/rules/default_rules.yaml"])
    assert result.exit_code == 0
    assert "13 rules, OK" in result.output


def test_rules_check_names_the_line_of_each_problem(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "version: 1\nrules:\n  - id: x\n    when: {categroy: [bug]}\n    then: {outcome: nope}\n"
    )
    result = runner.invoke(app, ["rules", "check", str(bad)])
    assert result.exit_code == 1
    assert "line 4: rules.0.when.categroy" in result.output
    assert "line 5: rules.0.then.outcome" in result.output


def test_rules_explain_shows_the_deciding_rule_and_why_the_others_did_not_match() -> None:
    issue = {"title": "Facture en double", "service": "Microsoft 365", "partner": {"locale": "fr"}}
    result = runner.invoke(app, ["rules", "explain", "--issue", json.dumps(issue)])
    assert result.exit_code == 0, result.output
    assert "category: billing (inferred), language: fr" in result.output
    assert "partner-owns-configuration: no (needs category = [configuration])" in result.output
    assert "=> partner-owns-billing: matches and decides" in result.output
    assert "reason: La facturation des clients relève du partenaire" in result.output


def test_a_service_with_an_invalid_rules_file_refuses_to_start(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    bad = tmp_path / "rules.yaml"
    bad.write_text(
        "version: 1\nrules:\n  - id: only\n    when: {category: [bug]}\n"
        "    then: {outcome: needs_information}\n"
    )
    monkeypatch.setenv("CLASSIFIER_RULES_FILE", str(bad))
    result = runner.invoke(app, ["run", "classifier"])
    assert result.exit_code == 2
    assert "the last rule must be a catch-all" in result.output
