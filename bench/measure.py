"""What the benchmark reads while it runs: routed events off the topic, each service's
CPU and memory, and where the rest of the machine's CPU went."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import defaultdict
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any

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
    """Reads ``topic`` from the start into a :class:`Routed` until the block ends.

    Latency is taken from the records' own timestamps, not from when this reads them, so its
    fetches may wait long at the broker: polling faster would only take CPU from the services
    being measured."""
    routed = Routed()
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        fetch_max_wait_ms=500,
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


@dataclass
class Machine:
    """CPU seconds over a window: every CPU's busy time, the time the host ran something else
    while a CPU of this machine had work (a virtual machine's steal), and the processes around
    the services."""

    cpus: int = 1
    busy_s: float = 0.0
    stolen_s: float = 0.0
    by_role: dict[str, float] = field(default_factory=dict)


@contextlib.contextmanager
def machine_cpu(pids: dict[str, int], *, database: str | None) -> Iterator[Machine]:
    """Busy CPU time of the whole machine inside the block, and of ``pids`` and the processes
    named ``database`` (a server's backends: those started inside the block count from zero,
    those that exited inside it are left in the machine's total only)."""
    machine = Machine(cpus=psutil.cpu_count() or 1)
    processes = {name: psutil.Process(pid) for name, pid in pids.items()}
    busy, stolen = _busy(), _stolen()
    before = {name: _cpu(p) for name, p in processes.items()}
    server = _named(database)
    try:
        yield machine
    finally:
        machine.busy_s = _busy() - busy
        machine.stolen_s = _stolen() - stolen
        machine.by_role = {name: _cpu(p) - before[name] for name, p in processes.items()}
        if database:
            machine.by_role["database"] = sum(
                cpu - server.get(pid, 0.0) for pid, cpu in _named(database).items()
            )


def cpu_per(machine: Machine, seconds: float, count: int, *, rest: str) -> dict[str, Any]:
    """Where the machine's CPU went per item (a request, a routed issue), in ms, what nothing
    named used filed as ``rest``; and the rate every CPU busy at that cost would carry: the
    ceiling this machine sets, were none of it stolen by the host (``stolen_pct``: the share of
    the CPUs' time the host gave to others while they had work, which that ceiling does not
    count on)."""
    figures: dict[str, Any] = {
        "busy_pct": round(machine.busy_s / (seconds * machine.cpus) * 100, 1),
        "stolen_pct": round(machine.stolen_s / (seconds * machine.cpus) * 100, 1),
    }
    if not count:
        return figures
    named = sum(machine.by_role.values())
    per = {name: cpu_s * 1000 / count for name, cpu_s in machine.by_role.items()}
    per[rest] = max(0.0, machine.busy_s - named) * 1000 / count
    busy_ms = machine.busy_s * 1000 / count
    figures["busy_ms_per_item"] = round(busy_ms, 2)
    figures["ms_per_item"] = {name: round(ms, 2) for name, ms in per.items()}
    figures["ceiling_per_s"] = round(machine.cpus * 1000 / busy_ms) if busy_ms else None
    return figures


def _busy() -> float:
    t = psutil.cpu_times()
    return float(t.user + t.nice + t.system + getattr(t, "irq", 0.0) + getattr(t, "softirq", 0.0))


def _stolen() -> float:
    return float(getattr(psutil.cpu_times(), "steal", 0.0))


def _named(name: str | None) -> dict[int, float]:
    """CPU seconds so far of every process called ``name``, by pid."""
    if not name:
        return {}
    found: dict[int, float] = {}
    for process in psutil.process_iter(["name"]):
        if process.info["name"] == name:
            with contextlib.suppress(psutil.Error):
                found[process.pid] = _cpu(process)
    return found


def speed_probe(steps: int = 5_000_000, tries: int = 3) -> float:
    """Seconds the fastest of ``tries`` pure-Python loops of ``steps`` additions took: how fast
    this machine runs the interpreter just now, to set beside the figures it measures. Runs are
    comparable through it; the speed of one machine drifts by a factor of two and more.
    """
    best = float("inf")
    for _ in range(tries):
        started = time.perf_counter()
        total = 0
        for step in range(steps):
            total += step
        best = min(best, time.perf_counter() - started)
    return round(best, 3)
