"""B and the intake take turns under wrk; the rows kept are the median runs, and intake/B is the
median of each turn's own ratio."""

from __future__ import annotations

from typing import Any

from bench.driver import Outcome
from bench.report import table
from bench.rows import refusals, rounds


def run(rps: float) -> dict[str, Any]:
    return {"rps": rps, "p50_ms": 1.0, "p99_ms": 2.0}


def test_the_ratio_is_the_median_of_each_turns_own_ratio_not_of_the_medians() -> None:
    # The machine slowed down in the second turn: both ran slower, their ratio did not change.
    figures = rounds([run(2000), run(1000), run(1900)], [run(1600), run(800), run(1000)])
    assert [turn["intake_over_b"] for turn in figures["rounds"]] == [0.8, 0.8, 0.53]
    assert figures["intake_over_b"] == 0.8
    assert figures["durable_accept"]["rps"] == 1900
    assert figures["intake"]["rps"] == 1000


def test_an_even_number_of_turns_keeps_the_slower_middle_run() -> None:
    figures = rounds([run(10), run(30)], [run(5), run(30)])
    assert figures["durable_accept"]["rps"] == 10
    assert figures["intake_over_b"] == 0.75


def test_the_table_shows_the_median_ratio_and_every_turns() -> None:
    figures = {
        **rounds([run(2000), run(1000), run(1900)], [run(1600), run(800), run(1000)]),
        "pipeline": [],
    }
    text = table({"bare_http": run(4000), "databases": {"postgresql": figures}})
    assert "ours/B 0.80 (median of 3 turns: 0.80, 0.80, 0.53)" in text


def test_the_table_shows_keyed_accepts_against_bs_median_run() -> None:
    figures = {
        **rounds([run(2000), run(1000), run(1900)], [run(1600), run(800), run(1000)]),
        "intake_keyed": run(950),
        "pipeline": [],
    }
    text = table({"bare_http": run(4000), "databases": {"postgresql": figures}})
    assert "… with Idempotency-Key, postgresql" in text
    assert "ours/B 0.50 (B's median run)" in text


def test_keyed_accepts_take_their_turns_and_their_ratio_is_the_median_of_each_turns() -> None:
    # B ran fastest in the last turn; the keyed run beside it is measured against that B alone.
    figures = rounds(
        [run(1000), run(1200), run(1800)],
        [run(1100), run(1300), run(1900)],
        [run(900), run(1000), run(1300)],
    )
    assert [turn["keyed_over_b"] for turn in figures["rounds"]] == [0.9, 0.83, 0.72]
    assert [turn["keyed_rps"] for turn in figures["rounds"]] == [900, 1000, 1300]
    assert figures["keyed_over_b"] == 0.83
    assert figures["intake_keyed"]["rps"] == 1000
    text = table({"bare_http": run(4000), "databases": {"sqlite": {**figures, "pipeline": []}}})
    assert "ours/B 0.83 (median of 3 turns: 0.90, 0.83, 0.72)" in text
    assert "… keyed" in text


def test_without_keyed_turns_the_rounds_have_no_keyed_figures() -> None:
    figures = rounds([run(1000)], [run(1100)])
    assert "intake_keyed" not in figures
    assert "keyed_over_b" not in figures
    assert figures["rounds"] == [
        {"durable_accept_rps": 1000, "intake_rps": 1100, "intake_over_b": 1.1}
    ]


def test_refused_requests_are_counted_by_the_status_they_got() -> None:
    outcomes = [
        Outcome(0.0, 0.1, 202, "a"),
        Outcome(0.0, 0.1, 503, None),
        Outcome(0.0, 0.1, 0, None),
        Outcome(0.0, 0.1, 503, None),
        Outcome(0.0, 0.1, 200, "b"),
    ]
    assert refusals(outcomes) == {"503": 2, "0": 1}
    assert list(refusals(outcomes)) == ["503", "0"]


def pipeline_run(offered: float, routed: float, steady: float | None = None) -> dict[str, Any]:
    usage = {"cpu_pct": 80.0, "peak_rss_mb": 110.0, "rss_growth_mb": 1.0}
    return {
        "offered_rps": offered,
        "routed_rps": routed,
        "sustained_rps": steady,
        "e2e_p50_ms": 90.0,
        "e2e_p95_ms": 120.0,
        "e2e_p99_ms": 130.0,
        "backlog_at_end": 0,
        "drain_s": 0.4,
        "duplicates": 0,
        "services": {"intake": usage, "classifier": usage, "notifier": usage},
        "machine": {
            "busy_pct": 70.0,
            "stolen_pct": 12.5,
            "busy_ms_per_item": 3.5,
            "ms_per_item": {"services": 2.5, "database": 1.0},
            "ceiling_per_s": 571,
        },
    }


def test_a_pipeline_only_table_has_the_end_to_end_rows_and_no_baselines() -> None:
    figures = {"pipeline": [pipeline_run(200, 199.5, 200.1)]}
    text = table(
        {
            "bare_http": None,
            "databases": {"postgresql": figures},
            "speed_probe_s": {"before": 0.33, "after": 0.71},
        }
    )
    assert "loop took 0.33 s before the rows and 0.71 s after" in text
    assert "bare HTTP" not in text
    assert "B  durable accept" not in text
    assert "ours/B" not in text
    [row] = [line for line in text.splitlines() if line.startswith("postgresql ")]
    assert row.split()[1:4] == ["200", "199.5", "200.1"]
    assert "steady: from 5 s in" in text
    assert "e2e 200/s" in text
    assert "busy  70.0% stolen 12.5%    3.5 ms (services 2.5, database 1.0) -> 571/s" in text


def test_a_run_measured_before_the_steady_rate_shows_none() -> None:
    run = pipeline_run(1000, 942.0)
    del run["sustained_rps"]
    text = table({"bare_http": None, "databases": {"postgresql": {"pipeline": [run]}}})
    [row] = [line for line in text.splitlines() if line.startswith("postgresql ")]
    assert row.split()[1:4] == ["1000", "942.0", "-"]
