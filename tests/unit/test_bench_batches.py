"""The benchmark's batch account: the services' own batch-size histograms, read twice."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

from bench.batches import mean_sizes, parse
from bench.report import mean_batch_line


def _exposition(sizes: dict[tuple[str, str], list[int]]) -> str:
    registry = CollectorRegistry()
    histogram = Histogram("escalation_batch_size", "", ["stage", "name"], registry=registry)
    Counter("escalation_other", "", registry=registry).inc(7)
    for (stage, name), observed in sizes.items():
        for size in observed:
            histogram.labels(stage, name).observe(size)
    return generate_latest(registry).decode()


def test_each_stage_and_name_is_read_as_its_batches_and_items() -> None:
    text = _exposition({("consume", "classifier"): [3, 5], ("relay", "intake"): [40]})
    assert parse(text) == {"consume classifier": (2.0, 8.0), "relay intake": (1.0, 40.0)}


def test_the_mean_is_of_the_batches_between_the_two_readings_only() -> None:
    before = {"consume classifier": (2.0, 8.0), "relay intake": (1.0, 40.0)}
    after = {
        "consume classifier": (6.0, 1608.0),  # four more batches, 1,600 more records
        "relay intake": (1.0, 40.0),  # none in between: no mean
        "group accepts": (3.0, 10.0),  # first seen after the first reading
    }
    means = mean_sizes(before, after)
    assert means == {"consume classifier": 400.0, "group accepts": 3.3}
    assert mean_batch_line(means) == "mean batch: consume classifier 400.0; group accepts 3.3"
