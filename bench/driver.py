"""An open-loop load driver: issues offered at a fixed rate, whatever the server's pace.

Each request is timed from when it was due, not from when a connection was free, so a server
that falls behind shows it in its latency (no coordinated omission). Requests go over a pool of
keep-alive HTTP/1.1 connections written by hand: at 1,000 requests/s a general-purpose client
would take a core of the two the services are measured on. Each answer is read in the event
loop's callback for its connection (an :class:`asyncio.Protocol`), with no task or stream reader
per connection: against the bare-HTTP baseline at 1,000 requests/s that took 136 µs of CPU per
request where streams and a task per connection took 229, and 115 on uvloop, which the
benchmark runs on.
"""

from __future__ import annotations

import asyncio
import itertools
import math
import time
import uuid
from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, cast

import orjson


@dataclass(slots=True)
class Outcome:
    due: float  # time.time() when the request was due
    answered: float
    status: int
    issue_id: str | None


class _Exchange(asyncio.Protocol):
    """One keep-alive HTTP/1.1 connection with at most one request in flight, its answer parsed
    in the event loop's callback as it arrives (see the module's docstring for what that
    saves)."""

    def __init__(self, driver: _Driver) -> None:
        self._driver = driver
        self._transport: asyncio.Transport | None = None
        self._buffer = bytearray()
        self._due: float | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)
        self._driver.ready(self)

    def send(self, due: float, request: bytes) -> None:
        assert self._transport is not None
        self._due = due
        self._transport.write(request)

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        head_end = self._buffer.find(b"\r\n\r\n")
        if head_end < 0 or self._due is None:
            return
        head = bytes(self._buffer[:head_end])
        length = 0
        for line in head.split(b"\r\n"):
            if line[:15].lower() == b"content-length:":
                length = int(line[15:])
        body_end = head_end + 4 + length
        if len(self._buffer) < body_end:
            return
        payload = bytes(self._buffer[head_end + 4 : body_end])
        del self._buffer[:body_end]
        status = int(head[9:12])
        due, self._due = self._due, None
        try:
            issue_id = orjson.loads(payload).get("id") if status == 202 else None
        except ValueError:
            issue_id = None
        closing = b"connection: close" in head.lower()
        if closing and self._transport is not None:
            self._transport.close()
        self._driver.answered(self, Outcome(due, time.time(), status, issue_id), reuse=not closing)

    def connection_lost(self, exc: Exception | None) -> None:
        self._transport = None
        due, self._due = self._due, None
        self._driver.lost(self, due)

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()


class _Driver:
    """Hands each due request to an idle connection, opening one (up to ``connections``) when
    none is idle; requests wait in order meanwhile, their latency counted from when they were
    due."""

    def __init__(self, host: str, port: int, auth: str, connections: int, total: int) -> None:
        self._host, self._port = host, port
        self._prefix = (
            f"POST /v1/issues HTTP/1.1\r\nHost: {host}:{port}\r\n"
            f"Authorization: {auth}\r\nContent-Type: application/json\r\n"
        ).encode()
        self._limit = connections
        self._total = total
        self._idle: deque[_Exchange] = deque()
        self._open: set[_Exchange] = set()
        self._opening = 0
        self._waiting: deque[tuple[float, bytes]] = deque()
        self._loop = asyncio.get_running_loop()
        self._tasks: set[asyncio.Task[Any]] = set()
        self.outcomes: list[Outcome] = []
        self.done = asyncio.Event()

    def request(self, due: float, body: bytes) -> None:
        self._waiting.append(
            (due, b"%sContent-Length: %d\r\n\r\n%s" % (self._prefix, len(body), body))
        )
        self._dispatch()

    def _dispatch(self) -> None:
        while self._waiting and self._idle:
            self._idle.popleft().send(*self._waiting.popleft())
        if len(self._waiting) > self._opening and len(self._open) + self._opening < self._limit:
            self._opening += 1
            task = self._loop.create_task(self._connect())
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _connect(self) -> None:
        try:
            await self._loop.create_connection(lambda: _Exchange(self), self._host, self._port)
        except OSError:
            self._opening -= 1
            if self._waiting:  # the server refused: each waiting request fails, as a client's
                self._record(Outcome(self._waiting.popleft()[0], time.time(), 0, None))
            self._dispatch()

    def ready(self, exchange: _Exchange) -> None:
        self._opening -= 1
        self._open.add(exchange)
        self._idle.append(exchange)
        self._dispatch()

    def answered(self, exchange: _Exchange, outcome: Outcome, *, reuse: bool) -> None:
        if reuse:
            self._idle.append(exchange)
        self._record(outcome)
        self._dispatch()

    def lost(self, exchange: _Exchange, due: float | None) -> None:
        self._open.discard(exchange)
        if exchange in self._idle:
            self._idle.remove(exchange)
        if due is not None:
            self._record(Outcome(due, time.time(), 0, None))
        self._dispatch()

    def _record(self, outcome: Outcome) -> None:
        self.outcomes.append(outcome)
        if len(self.outcomes) >= self._total:
            self.done.set()

    def close(self) -> None:
        for exchange in list(self._open):
            exchange.close()


SERVICES = ("Microsoft Teams", "Exchange Online", "SharePoint Online", "Microsoft Entra ID")
TENANTS = [str(uuid.UUID(int=n + 1)) for n in range(500)]
REGIONS = ("westeurope", "northeurope", "eastus", "westus2", "southeastasia", "uksouth")


def bodies(corpus: Sequence[dict[str, Any]], prefix: str, *, regions: int = 0) -> Iterator[bytes]:
    """Issue bodies cycling through the corpus (four languages, every category) and 500
    customer tenants, each with a new PSA ticket id; with ``regions``, each names one of that
    many regions in turn, so that failures reported from several tenants form outage clusters
    (one per service and region that occur together)."""
    for n, item in enumerate(itertools.cycle(corpus)):
        body = {
            "external_ref": f"{prefix}-{n}",
            "tenant_id": TENANTS[n % len(TENANTS)],
            "title": item["title"],
            "description": item["description"],
            "service": SERVICES[n % len(SERVICES)],
            "severity": "moderate",
        }
        if regions:
            body["region"] = REGIONS[n % regions]
        yield orjson.dumps(body)


async def offer(
    url: str,
    auth: str,
    *,
    rate: float,
    duration_s: float,
    payloads: Iterator[bytes],
    connections: int = 128,
) -> list[Outcome]:
    """Send ``rate`` requests a second for ``duration_s``; one outcome per request."""
    host, _, port = url.removeprefix("http://").partition(":")
    total = int(rate * duration_s)
    driver = _Driver(host, int(port), auth, connections, total)
    start = time.time() + 0.05
    sent = 0
    try:
        while sent < total:
            # Every request whose time has come (none before ``start``).
            due_now = min(total, math.floor((time.time() - start) * rate) + 1)
            for n in range(sent, due_now):
                driver.request(start + n / rate, next(payloads))
            sent = max(sent, due_now)
            await asyncio.sleep(0.002)
        if total:
            await driver.done.wait()
    finally:
        driver.close()
    return driver.outcomes
