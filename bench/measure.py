"""What the benchmark reads while it runs: routed events off the topic, and each service's
CPU and memory."""

from __future__ import annotations

import asyncio
import contextlib
from collections import defaultdict
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import psutil
from aiokafka import AIOKafkaConsumer


@dataclass
class Routed:
    """Every ``issues.routed`` record seen, by issue id (the key): its broker timestamps."""

    at: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))

    def first(self, issue_id: str) -> float | None:
        times = self.at.get(issue_id)
        return min(times) if times else None


@contextlib.asynccontextmanager
async def reading_routed(bootstrap: str, topic: str) -> AsyncIterator[Routed]:
    """Reads ``topic`` from the start into a :class:`Routed` until the block ends."""
    routed = Routed()
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        fetch_max_wait_ms=50,
    )
    await consumer.start()

    async def read() -> None:
        while True:
            batch = await consumer.getmany(timeout_ms=200, max_records=2000)
            for records in batch.values():
                for record in records:
                    if record.key is not None:
                        routed.at[record.key.decode()].append(record.timestamp / 1000)

    task = asyncio.create_task(read())
    try:
        yield routed
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await consumer.stop()


@dataclass
class Usage:
    cpu_s: float = 0.0
    peak_rss_mb: float = 0.0
    rss_mb: list[float] = field(default_factory=list)


@contextlib.asynccontextmanager
async def sampling(pids: dict[str, int], every_s: float = 1.0) -> AsyncIterator[dict[str, Usage]]:
    """CPU seconds used inside the block and RSS sampled every ``every_s``, per process."""
    processes = {name: psutil.Process(pid) for name, pid in pids.items()}
    before = {name: _cpu(p) for name, p in processes.items()}
    usage = {name: Usage() for name in processes}

    async def sample() -> None:
        while True:
            for name, process in processes.items():
                rss = process.memory_info().rss / 2**20
                usage[name].rss_mb.append(rss)
                usage[name].peak_rss_mb = max(usage[name].peak_rss_mb, rss)
            await asyncio.sleep(every_s)

    task = asyncio.create_task(sample())
    try:
        yield usage
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        for name, process in processes.items():
            usage[name].cpu_s = _cpu(process) - before[name]


def _cpu(process: psutil.Process) -> float:
    times = process.cpu_times()
    return float(times.user + times.system)
