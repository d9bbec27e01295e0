"""How full the services' batches ran in a measured stretch, from their own ``/metrics``
(``escalation_batch_size``: a consumer's records per transaction, a relay pass's rows, the
intake's requests per group read or write)."""

from __future__ import annotations

from collections.abc import Mapping

import httpx
from prometheus_client.parser import text_string_to_metric_families

METRIC = "escalation_batch_size"
# (batches, items) so far, by "<stage> <name>", e.g. "consume classifier".
Tally = dict[str, tuple[float, float]]


async def batch_tally(ports: Mapping[str, int]) -> Tally:
    """The batches and items every service on ``ports`` (loopback) has counted so far."""
    tally: Tally = {}
    async with httpx.AsyncClient(timeout=10) as client:
        for port in ports.values():
            answer = await client.get(f"http://127.0.0.1:{port}/metrics")
            answer.raise_for_status()
            tally.update(parse(answer.text))
    return tally


def parse(exposition: str) -> Tally:
    """The ``escalation_batch_size`` counts and sums of one Prometheus text exposition."""
    counts: dict[str, float] = {}
    sums: dict[str, float] = {}
    for family in text_string_to_metric_families(exposition):
        if family.name != METRIC:
            continue
        for sample in family.samples:
            key = f"{sample.labels['stage']} {sample.labels['name']}"
            if sample.name == f"{METRIC}_count":
                counts[key] = sample.value
            elif sample.name == f"{METRIC}_sum":
                sums[key] = sample.value
    return {key: (counts[key], sums.get(key, 0.0)) for key in counts}


def mean_sizes(before: Tally, after: Tally) -> dict[str, float]:
    """The mean batch between two tallies, for each batch kind that ran in between."""
    means = {}
    for key, (batches, items) in sorted(after.items()):
        batches_before, items_before = before.get(key, (0.0, 0.0))
        if batches > batches_before:
            means[key] = round((items - items_before) / (batches - batches_before), 1)
    return means
