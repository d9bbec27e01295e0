"""Rules files are checked before use: every problem is reported with its line."""

from __future__ import annotations

import textwrap

import pytest

from shared.rules.loader import RulesError, load_rules, parse_rules

CATCH_ALL = """
  - id: catch-all
    then: {outcome: needs_information}
"""


def check(body: str, tail: str = "") -> list[str]:
    with pytest.raises(RulesError) as caught:
        parse_rules(textwrap.dedent(body) + tail, source="test.yaml")
    return caught.value.problems


def test_the_default_rules_load() -> None:
    assert load_rules().rules[-1].id == "catch-all"


def test_an_unknown_field_is_an_error_on_its_line() -> None:
    problems = check(
        """\
        version: 1
        rules:
          - id: billing
            when: {categroy: [billing]}
            then: {outcome: partner_resolves, partner_role: billing_admin}
        """,
        CATCH_ALL,
    )
    assert any(p.startswith("line 4:") and "categroy" in p for p in problems), problems


def test_an_unknown_outcome_is_an_error_on_its_line() -> None:
    problems = check(
        """\
        version: 1
        rules:
          - id: bad
            when: {category: [bug]}
            then:
              outcome: escalate_please
        """,
        CATCH_ALL,
    )
    assert any(p.startswith("line 6:") and "outcome" in p for p in problems), problems


def test_a_rule_shadowed_by_a_broader_one_above_is_unreachable() -> None:
    problems = check(
        """\
        version: 1
        rules:
          - id: all-partner-categories
            when: {category: [billing, subscription]}
            then: {outcome: partner_resolves, partner_role: billing_admin}
          - id: billing-only
            when: {category: [billing], severity: [critical]}
            then: {outcome: partner_resolves, partner_role: admin_agent}
        """,
        CATCH_ALL,
    )
    assert problems == [
        "line 6: rule 'billing-only' can never match: rule "
        "'all-partner-categories' above it matches everything it would"
    ]


def test_rules_after_the_catch_all_are_unreachable_and_a_catch_all_is_required() -> None:
    problems = check("""\
        version: 1
        rules:
          - id: everything
            then: {outcome: needs_information}
          - id: billing
            when: {category: [billing]}
            then: {outcome: partner_resolves, partner_role: billing_admin}
        """)
    assert "line 5: rule 'billing' can never match" in problems[0]
    assert "the last rule must be a catch-all" in problems[1]


@pytest.mark.parametrize(
    ("then", "message"),
    [
        ("{outcome: escalated_to_microsoft}", "needs a vehicle"),
        ("{outcome: partner_resolves}", "needs the partner_role"),
        ("{outcome: escalated_to_microsoft, vehicle: best_technical}", "has_technical_vehicle"),
        ("{outcome: linked_to_incident, reason: {es: hola}}", "English"),
        ("{outcome: linked_to_incident, reason: {en: '{customer}'}}", "unknown placeholders"),
    ],
)
def test_incoherent_actions_are_refused(then: str, message: str) -> None:
    problems = check(
        f"""\
        version: 1
        rules:
          - id: r
            when: {{category: [bug]}}
            then: {then}
        """,
        CATCH_ALL,
    )
    assert any(message in p for p in problems), problems


def test_duplicate_ids_and_bad_yaml_are_reported() -> None:
    assert any(
        "already used on line 3" in p
        for p in check(
            """\
        version: 1
        rules:
          - id: same
            when: {category: [bug]}
            then: {outcome: needs_information}
          - id: same
            when: {category: [billing]}
            then: {outcome: needs_information}
        """,
            CATCH_ALL,
        )
    )
    assert check("version: [1")[0].startswith("not valid YAML")
