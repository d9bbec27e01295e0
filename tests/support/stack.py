"""The three services as processes of their own (``escalation run X``), so tests can kill -9
them; started by a :class:`~tests.support.launch.Launcher`."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from shared.ports import free_port
from tests.support.launch import ESCALATION, Launcher, Process

SERVICES = ("intake", "classifier", "notifier")

# Short timings so crashes, rebalances and re-drives resolve within a test's patience.
FAST_ENV = {
    "KAFKA_SESSION_TIMEOUT_MS": "3000",
    "KAFKA_HEARTBEAT_INTERVAL_MS": "300",
    "KAFKA_REBALANCE_TIMEOUT_MS": "3000",
    "KAFKA_PARTITIONS": "3",
    "KAFKA_REQUEST_TIMEOUT_MS": "5000",
    "CONSUMER_STALL_AFTER_S": "3",
    "OUTBOX_POLL_INTERVAL_S": "0.1",
    "OUTBOX_LEASE_S": "5",
    "RECONCILER_STUCK_AFTER_S": "6",
    "RECONCILER_INTERVAL_S": "1",
    "RECONCILER_QUEUED_WAIT_S": "20",
    "WEBHOOK_BACKOFF_BASE_S": "0.2",
    "WEBHOOK_POLL_INTERVAL_S": "0.1",
    "WEBHOOK_TIMEOUT_S": "3",
    "WEBHOOK_ALLOW_PRIVATE_TARGETS": "true",
    "ESCALATION_LOG_JSON": "true",
    # Bursts of hundreds of issues from one key: the per-key limit has its own test.
    "API_RATE_LIMIT_PER_MINUTE": "1000000",
    "API_RATE_LIMIT_BURST": "100000",
    "ESCALATION_LOG_LEVEL": "INFO",
}
# For a test that kills a consumer during a burst of a few hundred issues: batches smaller than
# the burst, so that the kill lands with a batch in hand and more behind it (the default batch
# would take the whole burst in one transaction).
SMALL_BATCHES_ENV = {"CONSUMER_BATCH_SIZE": "50"}


@dataclass
class Service:
    name: str
    port: int
    log_path: Path
    command: str = ""
    process: Process | None = None


@dataclass
class Stack:
    database_url: str
    bootstrap_servers: str
    topic_prefix: str
    workdir: Path
    launcher: Launcher
    extra_env: dict[str, str] = field(default_factory=dict)
    timings: dict[str, str] = field(default_factory=lambda: dict(FAST_ENV))
    services: dict[str, Service] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name in SERVICES:
            self.services[name] = Service(name, free_port(), self.workdir / f"{name}.log", name)

    def add_instance(self, name: str, command: str) -> None:
        """Another process of the same service (e.g. a second classifier), on its own port."""
        self.services[name] = Service(name, free_port(), self.workdir / f"{name}.log", command)

    @property
    def intake_url(self) -> str:
        return f"http://127.0.0.1:{self.services['intake'].port}"

    def env(self) -> dict[str, str]:
        env = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith(
                (
                    "DATABASE_",
                    "KAFKA_",
                    "HTTP_",
                    "OUTBOX_",
                    "RECONCILER_",
                    "WEBHOOK_",
                    "CONSUMER_",
                    "API_",
                    "PARTNER_CENTER_",
                    "OTEL_",
                )
            )
        }
        env.update(self.timings)
        env.update(
            DATABASE_URL=self.database_url,
            KAFKA_BOOTSTRAP_SERVERS=self.bootstrap_servers,
            KAFKA_TOPIC_PREFIX=self.topic_prefix,
            HTTP_HOST="127.0.0.1",
            HTTP_INTAKE_PORT=str(self.services["intake"].port),
            HTTP_CLASSIFIER_PORT=str(self.services["classifier"].port),
            HTTP_NOTIFIER_PORT=str(self.services["notifier"].port),
        )
        env.update(self.extra_env)
        return env

    async def start(self, *names: str) -> None:
        for name in names or SERVICES:
            service = self.services[name]
            env = self.env()
            env[f"HTTP_{service.command.upper()}_PORT"] = str(service.port)
            service.process = self.launcher.start(["run", service.command], env, service.log_path)
        await asyncio.gather(*(self._wait_healthy(self.services[n]) for n in names or SERVICES))

    async def _wait_healthy(self, service: Service, timeout_s: float = 30) -> None:
        url = f"http://127.0.0.1:{service.port}/healthz"
        deadline = asyncio.get_running_loop().time() + timeout_s
        async with httpx.AsyncClient() as client:
            while True:
                assert service.process is not None
                if service.process.poll() is not None:
                    raise RuntimeError(
                        f"{service.name} exited early:\n{self.log_tail(service.name)}"
                    )
                try:
                    if (await client.get(url, timeout=1)).status_code == 200:
                        return
                except httpx.HTTPError:
                    pass
                if asyncio.get_running_loop().time() > deadline:
                    raise TimeoutError(
                        f"{service.name} not healthy:\n{self.log_tail(service.name)}"
                    )
                await asyncio.sleep(0.1)

    async def cli(self, *args: str, timeout_s: float = 60) -> subprocess.CompletedProcess[str]:
        """``escalation ARGS`` with this stack's settings, as an operator would run it."""
        return await asyncio.to_thread(
            subprocess.run,
            [ESCALATION, *args],
            env=self.env(),
            capture_output=True,
            text=True,
            timeout=timeout_s,
            check=False,
        )

    def kill(self, name: str, sig: int = signal.SIGKILL) -> None:
        service = self.services[name]
        if service.process is not None and service.process.poll() is None:
            service.process.send_signal(sig)
            service.process.wait(timeout=20)
        service.process = None

    async def stop(self) -> None:
        for service in self.services.values():
            if service.process is not None and service.process.poll() is None:
                service.process.send_signal(signal.SIGTERM)
        for service in self.services.values():
            if service.process is not None:
                try:
                    await asyncio.to_thread(service.process.wait, 20)
                except subprocess.TimeoutExpired:
                    service.process.kill()
                    service.process.wait()
            service.process = None

    def log_tail(self, name: str, lines: int = 40) -> str:
        path = self.services[name].log_path
        if not path.exists():
            return "(no log)"
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])

    def logs(self) -> str:
        return "\n".join(f"--- {n} ---\n{self.log_tail(n)}" for n in self.services)
