"""What the pipeline sustains: the highest steady rate among the rows offered at least the
target's 1,000 issues/s. Offered exactly the target, a pipeline that keeps up routes it give
or take the window's edges; offered more, it routes what it can."""

from __future__ import annotations

from typing import Any

from bench.report import sustained, table
from tests.unit.test_bench_over_intake import row


def test_the_best_steady_rate_offered_the_target_or_more_is_what_is_sustained() -> None:
    figures: dict[str, Any] = {
        "pipeline": [row(200, 6000, 200.0), row(1000, 30_000, 996.0), row(1200, 36_000, 1061.0)]
    }
    assert sustained(figures) == {"offered_rps": 1200, "sustained_rps": 1061.0}
    text = table({"bare_http": None, "databases": {"postgresql": figures}})
    assert "postgresql: sustained 1,061.0 issues/s steady (offered 1,200/s)" in text


def test_a_row_offered_less_than_the_target_or_without_a_steady_rate_is_no_measure() -> None:
    assert sustained({"pipeline": [row(200, 6000, 200.0), row(1200, 36_000, None)]}) is None
    below = {"pipeline": [row(200, 6000, 200.0)]}
    text = table({"bare_http": None, "databases": {"sqlite": below}})
    assert "sustained" not in text.split("routed/s:")[0]
