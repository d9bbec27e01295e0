"""The benchmark's issue bodies: the corpus in turn, and regions only when asked for."""

from __future__ import annotations

import itertools

import orjson

from bench.driver import REGIONS, bodies
from bench.report import table

CORPUS = [{"title": f"t{n}", "description": f"d{n}"} for n in range(3)]


def _first(count: int, regions: int = 0) -> list[dict[str, str]]:
    made = bodies(CORPUS, "x", regions=regions)
    return [orjson.loads(body) for body in itertools.islice(made, count)]


def test_without_regions_no_issue_names_one() -> None:
    assert all("region" not in body for body in _first(12))


def test_regions_are_named_in_turn_with_every_service() -> None:
    issues = _first(40, regions=5)
    assert [body["region"] for body in issues[:6]] == [*REGIONS[:5], REGIONS[0]]
    pairs = {(body["service"], body["region"]) for body in issues}
    assert len(pairs) == 20, "four services in five regions: twenty outage keys"
    assert len({body["external_ref"] for body in issues}) == 40


def test_the_table_says_when_the_pipeline_correlated() -> None:
    results = {"bare_http": None, "databases": {}, "settings": {"regions": 5}}
    assert "name 5 regions" in table(results)
    assert "regions" not in table({**results, "settings": {"regions": 0}})
