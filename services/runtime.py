"""What every service process holds while it runs: engine, units of work, outbox relay, workers."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from types import TracebackType
from typing import Any, Self

from aiokafka.admin import AIOKafkaAdminClient
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from services.settings import ServiceSettings
from shared.db.direct import Direct
from shared.db.engine import create_engine, create_reader, create_session_factory
from shared.db.uow import UnitOfWorkFactory
from shared.kafka.backlog import GroupBacklog
from shared.kafka.outbox import RELAY, OutboxRelay
from shared.periodic import stopped_after
from shared.reconciler import run_reconciler

log = logging.getLogger(__name__)

# The relay's own connections on PostgreSQL: a queue of requests waiting for the service's pool
# must not hold up the rows they have already committed (nor the marking of rows already
# published). On SQLite it shares the process's one connection (see create_engine).
RELAY_POOL_SIZE = 2
RESTART_PAUSE_S = 1.0
RESTART_PAUSE_MAX_S = 30.0
# How long a stopping process waits for its workers, then for its relay, before cancelling.
STOP_TIMEOUT_S = 15.0

Worker = Callable[[asyncio.Event], Coroutine[Any, Any, None]]


class Runtime:
    """Built in a lifespan, closed there. Runs background workers until it is closed; the
    outbox relay stops last, once the workers have, so the rows they commit on their way out
    are published by this process rather than left to the next."""

    def __init__(self, settings: ServiceSettings, *, service: str) -> None:
        self.settings = settings
        self.service = service
        self.stop = asyncio.Event()
        self._relay_stop = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._relay_task: asyncio.Task[None] | None = None
        self._engine: AsyncEngine | None = None
        self._relay_engine: AsyncEngine | None = None
        self._uow_factory: UnitOfWorkFactory | None = None
        self._direct: Direct | None = None
        self._reader: AsyncEngine | None = None
        self._reads: Direct | None = None
        self._relay: OutboxRelay | None = None

    @property
    def engine(self) -> AsyncEngine:
        assert self._engine is not None, "Runtime not started"
        return self._engine

    @property
    def uow_factory(self) -> UnitOfWorkFactory:
        assert self._uow_factory is not None, "Runtime not started"
        return self._uow_factory

    @property
    def direct(self) -> Direct:
        """Units of work on the driver connection, for the hottest writes (the intake's
        accept); the same engine as :attr:`uow_factory`, and a commit wakes the relay."""
        assert self._direct is not None, "Runtime not started"
        return self._direct

    @property
    def reads(self) -> Direct:
        """Lone reads (:meth:`Direct.statements`) that write nothing: on a SQLite file, on
        connections that need no turn at the write gate (``create_reader``); elsewhere
        :attr:`direct`."""
        assert self._direct is not None, "Runtime not started"
        if self._reads is None:  # made when first asked for: only the intake reads this way
            self._reader = create_reader(self.settings.database)
            self._reads = Direct(self._reader) if self._reader is not None else self._direct
        return self._reads

    @property
    def relay(self) -> OutboxRelay:
        assert self._relay is not None, "Runtime not started"
        return self._relay

    async def __aenter__(self) -> Self:
        self._engine = create_engine(self.settings.database)
        self._relay_engine = (
            self._engine
            if self.settings.database.is_sqlite
            else create_engine(self.settings.database, pool_size=RELAY_POOL_SIZE)
        )
        self._relay = OutboxRelay(
            UnitOfWorkFactory(create_session_factory(self._relay_engine)),
            # Its own statements: the relay's commits are not news to itself.
            Direct(self._relay_engine),
            kafka=self.settings.kafka,
            settings=self.settings.outbox,
            service=self.service,
        )
        # Rows the service's sessions add to the outbox are leased to this relay and handed to it
        # once committed (shared.kafka.outbox.enqueue); a commit of rows it did not lease wakes it.
        sessions = create_session_factory(self._engine, info={RELAY: self._relay})
        self._uow_factory = UnitOfWorkFactory(sessions)
        self._direct = Direct(self._engine, on_commit=self._relay.notify)
        self._relay_task = _start(f"{self.service}-outbox-relay", self._relay.run, self._relay_stop)
        if self.settings.reconciler.enabled:
            self.spawn(f"{self.service}-reconciler", self._reconcile)
        return self

    async def _reconcile(self, stop: asyncio.Event) -> None:
        backlog = GroupBacklog(self.settings.kafka)
        try:
            await run_reconciler(
                self.uow_factory,
                self.settings.reconciler,
                stop,
                on_redrive=self.relay.notify,
                backlog=backlog,
            )
        finally:
            await backlog.close()

    def spawn(self, name: str, worker: Worker) -> None:
        """Run ``worker`` until ``stop``; if it crashes (the database went away mid-pass, say),
        it is restarted after a growing pause rather than left dead."""
        self._tasks.append(_start(name, worker, self.stop))

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop.set()
        await _stopped(self._tasks)
        self._relay_stop.set()
        await _stopped([self._relay_task] if self._relay_task else [])
        # On SQLite the relay's engine is the service's own: disposed once.
        for engine in dict.fromkeys((self._engine, self._relay_engine, self._reader)):
            if engine is not None:
                await engine.dispose()

    async def check_database(self) -> None:
        async with self.engine.connect() as connection:
            await connection.execute(text("SELECT 1"))

    async def check_broker(self) -> None:
        admin = AIOKafkaAdminClient(
            bootstrap_servers=self.settings.kafka.bootstrap_servers, request_timeout_ms=3000
        )
        try:
            await asyncio.wait_for(admin.start(), timeout=3)
            await asyncio.wait_for(admin.list_topics(), timeout=3)
        finally:
            await admin.close()


def _start(name: str, worker: Worker, stop: asyncio.Event) -> asyncio.Task[None]:
    task = asyncio.create_task(_supervised(name, worker, stop), name=name)
    task.add_done_callback(_report_crash)
    return task


async def _stopped(tasks: list[asyncio.Task[None]]) -> None:
    """Wait for ``tasks``, told to stop, for up to :data:`STOP_TIMEOUT_S`; then cancel them."""
    if not tasks:
        return
    _, pending = await asyncio.wait(tasks, timeout=STOP_TIMEOUT_S)
    for task in pending:
        task.cancel()
    await asyncio.gather(*pending, return_exceptions=True)


async def _supervised(name: str, worker: Worker, stop: asyncio.Event) -> None:
    pause: float | None = None
    loop = asyncio.get_running_loop()
    while True:
        started = loop.time()
        try:
            await worker(stop)
            return
        except Exception:
            if stop.is_set():
                raise
            pause = restart_pause(pause, ran_s=loop.time() - started)
            log.error("worker %s crashed; restarting in %.0f s", name, pause, exc_info=True)
        except asyncio.CancelledError:
            if stop.is_set() or _cancelled_from_outside():
                raise
            pause = restart_pause(pause, ran_s=loop.time() - started)
            # A library's own CancelledError leaked out: the worker is not being shut down.
            log.error("worker %s ended by a stray cancellation; restarting", name, exc_info=True)
        if await stopped_after(stop, pause):
            return


def restart_pause(previous: float | None, *, ran_s: float) -> float:
    """How long to wait before restarting a worker that crashed after running ``ran_s``:
    doubling while it keeps crashing, and back to the shortest pause once it had run longer
    than the longest (a crash after a good run is a new incident, not the same loop)."""
    if previous is None or ran_s > RESTART_PAUSE_MAX_S:
        return RESTART_PAUSE_S
    return min(previous * 2, RESTART_PAUSE_MAX_S)


def _cancelled_from_outside() -> bool:
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0


def _report_crash(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.critical("worker %s stopped", task.get_name(), exc_info=task.exception())
