"""``python -m bench``: every row on PostgreSQL and on SQLite, then a table and a JSON file."""

from __future__ import annotations

import asyncio
import json
import platform
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Coroutine
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import psutil
import typer

from bench import rows
from bench.driver import REGIONS
from bench.measure import speed_probe
from bench.report import sustained, table
from services.serve import run_services
from shared.kafka.embedded import EmbeddedBroker
from tests.support.database import LOCAL_POSTGRES, DatabaseServer

RESULTS = Path(__file__).parent / "results"
T = TypeVar("T")


def main(
    seconds: float = typer.Option(30, help="Length of each fixed-rate end-to-end run."),
    saturation_seconds: float = typer.Option(15, help="Length of each wrk run."),
    connections: int = typer.Option(64, help="wrk's concurrent connections."),
    rounds: int = typer.Option(3, min=1, help="Turns of B and the intake under wrk, per database."),
    rates: str = typer.Option(
        "200,1000,1200",
        help="Offered end-to-end rates, issues/s: the p99 target's, the throughput target's "
        "and one above it, where the pipeline routes what it can.",
    ),
    backlog: int = typer.Option(
        10_000, min=0, help="Issues each consumer works off alone (catch-up rows); 0: none."
    ),
    pipeline_only: bool = typer.Option(
        False,
        help="Only the end-to-end rows (and the catch-up rows, unless --backlog 0): no baselines "
        "and no intake under wrk. A few minutes instead of ten, to compare two versions.",
    ),
    regions: int = typer.Option(
        0,
        min=0,
        max=len(REGIONS),
        help="Regions the pipeline's issues name, in turn (0: none, so no outage correlation).",
    ),
    databases: str = typer.Option("postgresql,sqlite"),
    postgres: str = typer.Option(LOCAL_POSTGRES, envvar="BENCH_POSTGRES_URL"),
    out: Path = typer.Option(RESULTS / "latest.json"),
    logs: Path | None = typer.Option(
        None,
        help="Keep the run's logs (the broker's, each service's per row) in this directory; "
        "they go with the run's working directory otherwise.",
    ),
) -> None:
    # On the services' own loop (uvloop): the load driver's callbacks cost the machine the
    # services are measured on about half what they do on asyncio's (bench/driver.py).
    run = _run(
        seconds=seconds,
        load=rows.Load(connections, saturation_seconds),
        rates=[float(r) for r in rates.split(",") if r],
        databases=[d for d in databases.split(",") if d],
        postgres=postgres,
        rounds=0 if pipeline_only else rounds,
        backlog=backlog,
        regions=regions,
        logs=logs,
    )
    try:
        results = run_services(_stopped_on_sigterm(run))
    except asyncio.CancelledError:
        typer.echo("stopped by SIGTERM: broker, services and databases cleaned up", err=True)
        raise typer.Exit(128 + signal.SIGTERM) from None
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    typer.echo(table(results))
    typer.echo(f"\nwritten to {out}")


async def _stopped_on_sigterm(run: Coroutine[Any, Any, T]) -> T:
    """``run``, unwound on SIGTERM (a CI job's time limit, an operator's ``kill``) as a cancelled
    task is: its broker and services stopped and its databases dropped. Without this the
    process ended at once and left them running, to slow down every run after it."""
    loop = asyncio.get_running_loop()
    task = asyncio.ensure_future(run)
    loop.add_signal_handler(signal.SIGTERM, task.cancel)
    try:
        return await task
    finally:
        loop.remove_signal_handler(signal.SIGTERM)


async def _run(
    *,
    seconds: float,
    load: rows.Load,
    rates: list[float],
    databases: list[str],
    postgres: str,
    rounds: int,
    backlog: int,
    regions: int,
    logs: Path | None = None,
) -> dict[str, Any]:
    results: dict[str, Any] = {
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": _machine(),
        "settings": {
            "seconds": seconds,
            "saturation_seconds": load.seconds,
            "connections": load.connections,
            "rounds": rounds,
            "rates": rates,
            "backlog": backlog,
            "regions": regions,
        },
        "speed_probe_s": {"before": speed_probe()},
        "bare_http": await rows.bare_http(load) if rounds else None,
        "databases": {},
    }
    with tempfile.TemporaryDirectory(prefix="bench-") as tmp:
        workdir = Path(tmp)
        try:
            async with EmbeddedBroker(log_path=workdir / "broker.log") as broker:
                for kind in databases:
                    server = DatabaseServer(
                        kind, postgres if kind == "postgresql" else None, workdir
                    )
                    try:
                        results["databases"][kind] = await _database_rows(
                            server, broker, workdir, load, rates, seconds, rounds, backlog, regions
                        )
                    finally:
                        await server.drop_all()
        finally:
            if logs is not None:
                keep_logs(workdir, logs)
    results["speed_probe_s"]["after"] = speed_probe()
    return results


def keep_logs(workdir: Path, logs: Path) -> None:
    """The log files under ``workdir`` (the broker's, each service's per row), copied into
    ``logs`` under the same paths; the databases and anything else stay behind."""
    for path in workdir.rglob("*.log"):
        target = logs / path.relative_to(workdir)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, target)


async def _database_rows(
    server: DatabaseServer,
    broker: EmbeddedBroker,
    workdir: Path,
    load: rows.Load,
    rates: list[float],
    seconds: float,
    rounds: int,
    backlog: int,
    regions: int,
) -> dict[str, Any]:
    bootstrap = broker.bootstrap_servers
    intake_dir = workdir / f"{server.kind}-intake"
    intake_dir.mkdir()
    # B and the intake (without and with an Idempotency-Key on every request, as PSA
    # integrations send them) take turns, a fresh database each time: this machine's speed
    # drifts by tens of percent within minutes, and a ratio is fair only between neighbouring
    # runs.
    durable: list[dict[str, Any]] = []
    intake: list[dict[str, Any]] = []
    keyed: list[dict[str, Any]] = []
    for _ in range(rounds):
        durable.append(await rows.durable_accept(await server.new_database(), load))
        for runs, with_key in ((intake, False), (keyed, True)):
            runs.append(
                await rows.intake_accept(
                    await server.new_database(),
                    bootstrap,
                    intake_dir,
                    load,
                    broker_pid=broker.pid,
                    keyed=with_key,
                )
            )
    figures: dict[str, Any] = {
        **(rows.rounds(durable, intake, keyed) if rounds else {}),
        "pipeline": [],
    }
    for rate in rates:
        run_dir = workdir / f"{server.kind}-pipeline-{int(rate)}"
        run_dir.mkdir(parents=True, exist_ok=True)
        figures["pipeline"].append(
            await rows.pipeline(
                await server.new_database(),
                bootstrap,
                run_dir,
                rate=rate,
                seconds=seconds,
                regions=regions,
                broker_pid=broker.pid,
            )
        )
    rows.over_intake(figures)
    figures["sustained"] = sustained(figures)
    if backlog:
        run_dir = workdir / f"{server.kind}-catch-up"
        run_dir.mkdir()
        figures["catch_up"] = await rows.catch_up(
            await server.new_database(), bootstrap, run_dir, issues=backlog, broker_pid=broker.pid
        )
    return figures


def _machine() -> dict[str, Any]:
    git = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=False
    )
    return {
        "cpus": psutil.cpu_count(),
        "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "python": platform.python_version(),
        "commit": git.stdout.strip() or None,
    }


if __name__ == "__main__":
    typer.run(main)
