"""The pipeline's sustained rate: a pipeline that keeps up shows the offered rate, one that
cannot shows what it routes."""

from __future__ import annotations

from bench.driver import Outcome
from bench.steady import SETTLE_S, sustained_rate

RATE = 1000.0
SECONDS = 30.0


def offered() -> list[Outcome]:
    """A request due every millisecond for 30 s, each answered 2 ms after it was due."""
    return [
        Outcome(due=n / RATE, answered=n / RATE + 0.002, status=202, issue_id=str(n))
        for n in range(int(RATE * SECONDS))
    ]


def test_a_pipeline_that_keeps_up_sustains_the_offered_rate_its_latency_notwithstanding() -> None:
    outcomes = offered()
    ended = outcomes[-1].answered
    routed = [o.answered + 0.3 for o in outcomes]  # 300 ms from the answer to issues.routed
    whole_run = sum(1 for at in routed if at <= ended) / ended
    assert whole_run < 0.991 * RATE  # what the latency costs the whole run's rate
    assert sustained_rate(routed, outcomes, ended) == RATE


def test_a_pipeline_that_falls_behind_sustains_only_what_it_routes() -> None:
    outcomes = offered()
    ended = outcomes[-1].answered
    routed, free = [], 0.0
    for o in outcomes:  # one at a time, 900 a second at most: its backlog grows
        free = max(o.answered + 0.05, free + 1 / 900)
        routed.append(free)
    rate = sustained_rate(routed, outcomes, ended)
    assert rate is not None
    assert 899 <= rate <= 901


def test_a_run_no_longer_than_the_settling_has_no_sustained_rate() -> None:
    outcomes = [o for o in offered() if o.due < SETTLE_S - 0.1]
    routed = [o.answered + 0.1 for o in outcomes]
    assert sustained_rate(routed, outcomes, outcomes[-1].answered) is None
    assert sustained_rate([], [], 10.0) is None
