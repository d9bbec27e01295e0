"""A pipeline run's sustained rate: what it routes once it is full."""

from __future__ import annotations

from bench.driver import Outcome

# How long a pipeline run fills before its sustained rate is counted: many times its latency.
SETTLE_S = 5.0


def sustained_rate(firsts: list[float], outcomes: list[Outcome], ended: float) -> float | None:
    """Issues routed a second once the pipeline is full: from :data:`SETTLE_S` after the first
    request was due until the last was answered.

    The whole run's rate (``routed_rps``) counts from the first request, when nothing has
    been routed yet, to the last answer, when the issues of the last few hundred milliseconds
    are still on their way: a pipeline that keeps up with every issue it is offered falls short
    of the offered rate there by its latency times that rate. Here the issues routed in the
    window are those accepted about one latency before it, so a pipeline that keeps up routes
    the offered rate, and one that falls behind routes what it can (its backlog grows)."""
    if not outcomes:
        return None
    settled = min(o.due for o in outcomes) + SETTLE_S
    if ended <= settled:
        return None
    routed = sum(1 for at in firsts if settled <= at <= ended)
    return round(routed / (ended - settled), 1)
