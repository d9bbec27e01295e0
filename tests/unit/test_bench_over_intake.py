"""End to end against the intake: each pipeline row's steady rate over what the intake took in
during that row and over the intake's own rate at saturation."""

from __future__ import annotations

from typing import Any

from bench.report import table
from bench.rows import over_intake


def row(offered: float, accepted: int, steady: float | None) -> dict[str, Any]:
    return {
        "offered_rps": offered,
        "seconds": 30.0,
        "accepted": accepted,
        "routed_rps": steady or 0.0,
        "sustained_rps": steady,
        "e2e_p50_ms": 90.0,
        "e2e_p95_ms": 110.0,
        "e2e_p99_ms": 130.0,
        "backlog_at_end": 0,
        "drain_s": 0.0,
        "duplicates": 0,
        "services": {},
    }


def test_each_row_is_set_against_its_own_accepts_and_the_intakes_saturation() -> None:
    figures: dict[str, Any] = {
        "intake": {"rps": 4000.0, "p50_ms": 1.0, "p99_ms": 2.0},
        "pipeline": [row(200, 6000, 200.0), row(1000, 29_700, 891.0), row(1000, 30_000, None)],
    }
    over_intake(figures)
    low, high, unsteady = figures["pipeline"]
    assert (low["sustained_over_accepted"], low["sustained_over_intake"]) == (1.0, 0.05)
    # 29,700 accepted in 30 s: 990 a second, of which the pipeline kept up with 891.
    assert (high["sustained_over_accepted"], high["sustained_over_intake"]) == (0.9, 0.223)
    assert "sustained_over_accepted" not in unsteady


def test_without_the_intakes_rows_only_the_rows_own_accepts_are_the_measure() -> None:
    figures: dict[str, Any] = {"pipeline": [row(1000, 30_000, 950.0)]}  # --pipeline-only
    over_intake(figures)
    [run] = figures["pipeline"]
    assert run["sustained_over_accepted"] == 0.95
    assert "sustained_over_intake" not in run
    text = table({"bare_http": None, "databases": {"postgresql": figures}})
    assert "postgresql: steady / accepted a second 0.95 at 1,000/s" in text
    assert "at saturation" not in text


def test_the_table_gives_both_shares_for_each_row() -> None:
    figures: dict[str, Any] = {
        "durable_accept": {"rps": 2000.0, "p50_ms": 1.0, "p99_ms": 2.0},
        "intake": {"rps": 4000.0, "p50_ms": 1.0, "p99_ms": 2.0},
        "intake_over_b": 2.0,
        "pipeline": [row(200, 6000, 200.0), row(1000, 30_000, 990.0)],
    }
    over_intake(figures)
    bare = {"rps": 8000.0, "p50_ms": 1.0, "p99_ms": 2.0}
    text = table({"bare_http": bare, "databases": {"sqlite": figures}})
    assert (
        "sqlite: steady / accepted a second 1.00 at 200/s, 0.99 at 1,000/s; "
        "/ the intake at saturation (4,000 req/s) 0.05, 0.25"
    ) in text
