"""One function per benchmark row. Each starts what it measures, loads it, and stops it."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import orjson

from bench.batches import batch_tally, mean_sizes
from bench.driver import Outcome, bodies, offer
from bench.measure import Machine, Usage, cpu_per, machine_cpu, reading_routed, sampling
from bench.steady import sustained_rate
from shared.ports import free_port
from shared.vocabulary import Vehicle
from tests.support.factories import SeededPartner, seed_partner
from tests.support.launch import Exec
from tests.support.stack import Stack

HERE = Path(__file__).parent
CORPUS = Path(__file__).parents[1] / "tests" / "data" / "issues_corpus.jsonl"
# Production timings (not the tests' short ones); the rate limit is lifted for one PSA key.
BENCH_ENV = {
    "ESCALATION_LOG_JSON": "true",
    "ESCALATION_LOG_LEVEL": "INFO",
    "API_RATE_LIMIT_PER_MINUTE": "100000000",
    "API_RATE_LIMIT_BURST": "10000000",
    "WEBHOOK_ALLOW_PRIVATE_TARGETS": "true",
}


@dataclass(frozen=True)
class Load:
    connections: int
    seconds: float


async def seed(database_url: str) -> SeededPartner:
    """A direct-bill partner with Advanced Support and an admin key."""
    return await seed_partner(database_url, vehicles=(Vehicle.ADVANCED_SUPPORT_FOR_PARTNERS,))


def wrk(
    url: str,
    load: Load,
    *,
    around: dict[str, int],
    database: str | None = None,
    auth: str | None = None,
    keyed: bool = False,
) -> dict[str, Any]:
    """POST /v1/issues at saturation with Debian's wrk: its own figures, and the CPU of the
    processes ``around`` it (the server, the broker) and of the ``database``, per request;
    ``keyed``: each request with an ``Idempotency-Key`` of its own."""
    if shutil.which("wrk") is None:
        raise RuntimeError("wrk is not installed (apt-get install wrk; `make bench` does it)")
    env = {
        **os.environ,
        "BENCH_PREFIX": f"w{uuid.uuid4().hex[:8]}",
        "BENCH_IDEMPOTENCY": "1" if keyed else "0",
    }
    if auth:
        env["BENCH_AUTH"] = auth
    with machine_cpu(around, database=database) as cpu:
        started = time.time()
        result = _run_wrk(url, load, env)
        seconds = time.time() - started
    line = next(x for x in result.stdout.splitlines() if x.startswith("BENCH "))
    raw = json.loads(line.removeprefix("BENCH "))
    ok = raw["requests"] - raw["non_2xx"] - raw["socket_errors"]
    return {
        "requests": raw["requests"],
        "accepted": ok,
        "errors": raw["non_2xx"] + raw["socket_errors"],
        "rps": round(ok / (raw["duration_us"] / 1e6), 1),
        "p50_ms": raw["p50_us"] / 1000,
        "p99_ms": raw["p99_us"] / 1000,
        "machine": cpu_per(cpu, seconds, raw["requests"], rest="wrk and rest"),
    }


def _run_wrk(url: str, load: Load, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            "wrk",
            "-t2",
            f"-c{load.connections}",
            f"-d{int(load.seconds)}s",
            "--timeout",
            "10s",
            "-s",
            str(HERE / "issues.lua"),
            url,
        ],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )


async def _serve_baseline(which: str, port: int, *extra: str) -> subprocess.Popen[bytes]:
    process = subprocess.Popen(
        [sys.executable, "-m", "bench.baselines", which, "--port", str(port), *extra],
        cwd=HERE.parent,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    await _wait_listening(port, process)
    return process


async def _wait_listening(port: int, process: subprocess.Popen[bytes]) -> None:
    async with httpx.AsyncClient() as client:
        for _ in range(200):
            if process.poll() is not None:
                raise RuntimeError(f"baseline exited with {process.returncode}")
            try:
                await client.get(f"http://127.0.0.1:{port}/docs", timeout=1)
                return
            except httpx.HTTPError:
                await asyncio.sleep(0.1)
    raise TimeoutError("baseline did not start")


def _stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    process.wait(timeout=20)


async def bare_http(load: Load) -> dict[str, Any]:
    port = free_port()
    process = await _serve_baseline("a", port)
    try:
        url = f"http://127.0.0.1:{port}/v1/issues"
        return await asyncio.to_thread(wrk, url, load, around={"server": process.pid})
    finally:
        _stop(process)


def rounds(
    durable: list[dict[str, Any]],
    intake: list[dict[str, Any]],
    keyed: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """B's and the intake's rows from turns taken together: each the run with the median rate,
    and intake/B as the median of each turn's own ratio (a turn's runs are minutes apart at
    most). ``keyed``, the intake with an ``Idempotency-Key`` on every request, when it took
    its turns too."""
    ratios = _ratios(durable, intake)
    turns = [
        {"durable_accept_rps": d["rps"], "intake_rps": i["rps"], "intake_over_b": r}
        for d, i, r in zip(durable, intake, ratios, strict=True)
    ]
    figures = {
        "durable_accept": _median_run(durable),
        "intake": _median_run(intake),
        "rounds": turns,
        "intake_over_b": statistics.median(ratios),
    }
    if keyed:
        keyed_ratios = _ratios(durable, keyed)
        for turn, k, r in zip(turns, keyed, keyed_ratios, strict=True):
            turn.update(keyed_rps=k["rps"], keyed_over_b=r)
        figures["intake_keyed"] = _median_run(keyed)
        figures["keyed_over_b"] = statistics.median(keyed_ratios)
    return figures


def over_intake(figures: dict[str, Any]) -> None:
    """End to end against the intake, for each pipeline row with a steady rate: that rate over
    the row's own accepts a second (``sustained_over_accepted``: whether the pipeline keeps up
    with what the intake takes in) and over the intake's rate at saturation, its median run
    under ``wrk`` (``sustained_over_intake``: how much of what the front door can take the
    whole pipeline keeps up with; not when the intake did not run, ``--pipeline-only``)."""
    intake = figures.get("intake") or {}
    for run in figures["pipeline"]:
        steady = run.get("sustained_rps")
        if steady is None:
            continue
        if run.get("accepted") and run.get("seconds"):
            run["sustained_over_accepted"] = round(steady / (run["accepted"] / run["seconds"]), 3)
        if intake.get("rps"):
            run["sustained_over_intake"] = round(steady / intake["rps"], 3)


def _ratios(durable: list[dict[str, Any]], ours: list[dict[str, Any]]) -> list[float]:
    return [
        round(o["rps"] / d["rps"], 2) if d["rps"] else 0.0
        for d, o in zip(durable, ours, strict=True)
    ]


def _median_run(runs: list[dict[str, Any]]) -> dict[str, Any]:
    ordered = sorted(runs, key=lambda run: run["rps"])
    return ordered[(len(ordered) - 1) // 2]


async def durable_accept(database_url: str, load: Load) -> dict[str, Any]:
    seeded = await seed(database_url)
    port = free_port()
    process = await _serve_baseline(
        "b", port, "--database-url", database_url, "--partner-id", str(seeded.id)
    )
    try:
        return await asyncio.to_thread(
            wrk,
            f"http://127.0.0.1:{port}/v1/issues",
            load,
            around={"server": process.pid},
            database=_database(database_url),
        )
    finally:
        _stop(process)


async def intake_accept(
    database_url: str,
    bootstrap: str,
    workdir: Path,
    load: Load,
    *,
    broker_pid: int | None = None,
    keyed: bool = False,
) -> dict[str, Any]:
    auth = (await seed(database_url)).headers["Authorization"]
    stack = Stack(
        database_url, bootstrap, f"b{uuid.uuid4().hex[:6]}.", workdir, Exec(), timings=BENCH_ENV
    )
    await stack.start("intake")
    try:
        intake = stack.services["intake"].process
        assert intake is not None
        around = _with_broker({"server": intake.pid}, broker_pid)
        return await asyncio.to_thread(
            wrk,
            f"{stack.intake_url}/v1/issues",
            load,
            around=around,
            database=_database(database_url),
            auth=auth,
            keyed=keyed,
        )
    finally:
        await stack.stop()


async def pipeline(
    database_url: str,
    bootstrap: str,
    workdir: Path,
    *,
    rate: float,
    seconds: float,
    regions: int = 0,
    broker_pid: int | None = None,
) -> dict[str, Any]:
    """Issues offered at ``rate``/s for ``seconds`` through all three services; naming
    ``regions`` regions, if any (see :func:`bench.driver.bodies`)."""
    auth = (await seed(database_url)).headers["Authorization"]
    prefix = f"b{uuid.uuid4().hex[:6]}."
    stack = Stack(database_url, bootstrap, prefix, workdir, Exec(), timings=BENCH_ENV)
    await stack.start()
    payloads = _payloads("e", regions)
    pids = {n: s.process.pid for n, s in stack.services.items() if s.process is not None}
    try:
        async with reading_routed(bootstrap, f"{prefix}issues.routed") as routed:
            # Warm-up, not measured: imports, pools and caches filled, and every consumer group
            # joined — the measurement starts once the warm-up's issues have all been routed.
            warm = await offer(
                stack.intake_url,
                auth,
                rate=min(rate, 100),
                duration_s=3,
                payloads=payloads,
            )
            warm_ids = {o.issue_id for o in warm if o.issue_id}
            if await _drain(routed, warm_ids, timeout_s=120) is None:
                raise RuntimeError("the warm-up's issues were not all routed within 120 s")
            around = _with_broker({"load driver": os.getpid()}, broker_pid)
            ports = {n: s.port for n, s in stack.services.items()}
            tallied = await batch_tally(ports)
            with machine_cpu(around, database=_database(database_url)) as cpu:
                async with sampling(pids) as usage:
                    started = time.time()
                    outcomes = await offer(
                        stack.intake_url, auth, rate=rate, duration_s=seconds, payloads=payloads
                    )
                    window = _Window(started, time.time(), usage, cpu)
            batches = mean_sizes(tallied, await batch_tally(ports))
            accepted = {o.issue_id: o for o in outcomes if o.issue_id}
            backlog = sum(1 for i in accepted if routed.first(i) is None)
            drained = await _drain(routed, set(accepted), timeout_s=120)
            figures = _pipeline_figures(
                rate, seconds, outcomes, accepted, routed.at, window, backlog, drained
            )
            return {**figures, "mean_batch": batches}
    finally:
        await stack.stop()


async def catch_up(
    database_url: str,
    bootstrap: str,
    workdir: Path,
    *,
    issues: int,
    broker_pid: int | None = None,
) -> dict[str, Any]:
    """Each consumer alone working off a backlog, as after an outage: ``issues`` accepted
    with only the intake running, then the classifier started alone until all are
    classified, then the notifier alone until all are routed. Each consumer's rate and the
    machine's CPU per event while it catches up, counted from its first output (its start-up
    left out); nothing else of the pipeline runs meanwhile."""
    auth = (await seed(database_url)).headers["Authorization"]
    prefix = f"c{uuid.uuid4().hex[:6]}."
    stack = Stack(database_url, bootstrap, prefix, workdir, Exec(), timings=BENCH_ENV)
    await stack.start("intake")
    payloads = _payloads("c")
    figures: dict[str, Any] = {"backlog": 0}
    try:
        async with reading_routed(bootstrap, f"{prefix}issues.received") as received:
            outcomes = await offer(
                stack.intake_url, auth, rate=issues / 10, duration_s=10, payloads=payloads
            )
            ids = {o.issue_id for o in outcomes if o.issue_id}
            if await _drain(received, ids, timeout_s=120) is None:
                raise RuntimeError("the backlog was not all published within 120 s")
        figures["backlog"] = len(ids)
        for name, topic in (("classifier", "issues.classified"), ("notifier", "issues.routed")):
            async with reading_routed(bootstrap, prefix + topic) as output:
                figures[name] = await _worked_off(
                    stack, name, output, ids, broker_pid=broker_pid, database=database_url
                )
    finally:
        await stack.stop()
    return figures


async def _worked_off(
    stack: Stack,
    name: str,
    output: Any,
    ids: set[str],
    *,
    broker_pid: int | None,
    database: str,
) -> dict[str, Any]:
    """Start ``name`` alone; its rate from its first output to its last, and the machine's
    CPU per event from the moment it first wrote until every id is out."""
    await stack.start(name)
    process = stack.services[name].process
    assert process is not None
    launched = time.time()
    while not any(output.first(i) is not None for i in ids):
        if time.time() - launched > 120:
            raise RuntimeError(f"{name} wrote nothing within 120 s")
        await asyncio.sleep(0.05)
    before = sum(1 for i in ids if output.first(i) is not None)
    around = _with_broker({name: process.pid, "load driver": os.getpid()}, broker_pid)
    with machine_cpu(around, database=_database(database)) as cpu:
        started = time.time()
        seconds = await _drain(output, ids, timeout_s=300)
        ended = time.time()
    if seconds is None:
        raise RuntimeError(f"{name} did not work the backlog off within 300 s")
    # The rate by the broker's timestamps of the outputs, not by this loop's polling.
    first_out = sorted(t for i in ids if (t := output.first(i)) is not None)
    span = first_out[-1] - first_out[0]
    return {
        "events": len(ids),
        "events_per_s": round((len(ids) - 1) / span, 1) if span > 0 else None,
        "machine": cpu_per(cpu, ended - started, len(ids) - before, rest="rest"),
    }


def _payloads(tag: str, regions: int = 0) -> Iterator[bytes]:
    """Request bodies from the labelled corpus, their PSA ticket ids new to this run."""
    corpus = [orjson.loads(line) for line in CORPUS.read_text().splitlines() if line.strip()]
    return bodies(corpus, f"{tag}{uuid.uuid4().hex[:6]}", regions=regions)


def _with_broker(pids: dict[str, int], broker_pid: int | None) -> dict[str, int]:
    """``pids`` and the broker's, when it runs here, for the CPU account."""
    return pids | ({"broker": broker_pid} if broker_pid else {})


def _database(url: str) -> str | None:
    """The name of the database server's processes; SQLite runs inside the service."""
    return "postgres" if url.startswith("postgresql") else None


async def _drain(routed: Any, ids: set[str], *, timeout_s: float) -> float | None:
    """Seconds until every id was routed after the load stopped, or None if they were not."""
    started = time.time()
    while time.time() - started < timeout_s:
        if all(routed.first(i) is not None for i in ids):
            return round(time.time() - started, 2)
        await asyncio.sleep(0.2)
    return None


def _pipeline_figures(
    rate: float,
    seconds: float,
    outcomes: list[Outcome],
    accepted: dict[str, Outcome],
    routed_at: dict[str, list[float]],
    window: _Window,
    backlog: int,
    drained: float | None,
) -> dict[str, Any]:
    started, ended, usage = window.started, window.ended, window.usage
    latencies = sorted(
        min(routed_at[i]) - o.answered for i, o in accepted.items() if routed_at.get(i)
    )
    accept_ms = sorted((o.answered - o.due) * 1000 for o in outcomes if o.issue_id)
    firsts = [min(routed_at[i]) for i in accepted if routed_at.get(i)]
    in_window = sum(1 for at in firsts if at <= ended)
    return {
        "offered_rps": rate,
        "seconds": seconds,
        "offered": len(outcomes),
        "accepted": len(accepted),
        "refused": len(outcomes) - len(accepted),
        "refused_by_status": refusals(outcomes),
        "routed": len(firsts),
        "duplicates": sum(len(routed_at[i]) - 1 for i in accepted if routed_at.get(i)),
        "routed_rps": round(in_window / (ended - started), 1),
        "sustained_rps": sustained_rate(firsts, outcomes, ended),
        "accept_p50_ms": _pct(accept_ms, 50),
        "accept_p99_ms": _pct(accept_ms, 99),
        "e2e_p50_ms": _pct([x * 1000 for x in latencies], 50),
        "e2e_p95_ms": _pct([x * 1000 for x in latencies], 95),
        "e2e_p99_ms": _pct([x * 1000 for x in latencies], 99),
        "backlog_at_end": backlog,
        "drain_s": drained,
        "services": {
            name: {
                "cpu_pct": round(u.cpu_s / (ended - started) * 100, 1),
                # Comparable across machines and rates, unlike a percentage.
                "cpu_ms_per_routed": round(u.cpu_s * 1000 / in_window, 2) if in_window else None,
                "peak_rss_mb": round(u.peak_rss_mb, 1),
                "rss_growth_mb": _growth(u.rss_mb),
            }
            for name, u in usage.items()
        },
        "machine": _machine_figures(window, in_window),
    }


def refusals(outcomes: list[Outcome]) -> dict[str, int]:
    """Requests that were not accepted, by the HTTP status they got ("0": no answer, the
    connection failed), most frequent first."""
    counted = Counter(str(o.status) for o in outcomes if not o.issue_id)
    return dict(counted.most_common())


@dataclass(frozen=True, slots=True)
class _Window:
    """The measured stretch of a pipeline run and what its processes used in it."""

    started: float
    ended: float
    usage: dict[str, Usage]
    cpu: Machine


def _machine_figures(window: _Window, routed: int) -> dict[str, Any]:
    services = sum(u.cpu_s for u in window.usage.values())
    cpu = dataclasses.replace(window.cpu, by_role={**window.cpu.by_role, "services": services})
    return cpu_per(cpu, window.ended - window.started, routed, rest="rest")


def _pct(values: list[float], p: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(len(ordered) * p / 100))], 1)


def _growth(samples: list[float]) -> float:
    """RSS at the end minus RSS after the first third (warm-up), in MB."""
    if len(samples) < 3:
        return 0.0
    return round(samples[-1] - samples[len(samples) // 3], 1)
