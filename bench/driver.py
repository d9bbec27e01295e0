"""An open-loop load driver: issues offered at a fixed rate, whatever the server's pace.

Each request is timed from when it was due, not from when a connection was free, so a server
that falls behind shows it in its latency (no coordinated omission). Requests go over a pool of
keep-alive HTTP/1.1 connections written by hand: at 1,000 requests/s a general-purpose client
would take a core of the two the services are measured on.
"""

from __future__ import annotations

import asyncio
import itertools
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import orjson


@dataclass(slots=True)
class Outcome:
    due: float  # time.time() when the request was due
    answered: float
    status: int
    issue_id: str | None


class _Connection:
    def __init__(self, host: str, port: int, auth: str) -> None:
        self._host, self._port = host, port
        self._prefix = (
            f"POST /v1/issues HTTP/1.1\r\nHost: {host}:{port}\r\n"
            f"Authorization: {auth}\r\nContent-Type: application/json\r\n"
        ).encode()
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def post(self, body: bytes) -> tuple[int, bytes]:
        if self._reader is not None and self._reader.at_eof():
            await self.close()  # the server closed it while idle (its keep-alive timeout)
        if self._writer is None:
            self._reader, self._writer = await asyncio.open_connection(self._host, self._port)
        assert self._reader is not None
        self._writer.write(b"%sContent-Length: %d\r\n\r\n%s" % (self._prefix, len(body), body))
        head = await self._reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        length = 0
        for line in head.split(b"\r\n"):
            if line[:15].lower() == b"content-length:":
                length = int(line[15:])
        payload = await self._reader.readexactly(length) if length else b""
        if b"connection: close" in head.lower():
            await self.close()
        return status, payload

    async def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
        self._reader = self._writer = None


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
    queue: asyncio.Queue[tuple[float, bytes] | None] = asyncio.Queue()
    outcomes: list[Outcome] = []

    async def worker() -> None:
        connection = _Connection(host, int(port), auth)
        try:
            while (item := await queue.get()) is not None:
                due, body = item
                try:
                    status, payload = await connection.post(body)
                    issue_id = orjson.loads(payload).get("id") if status == 202 else None
                except (OSError, asyncio.IncompleteReadError, ValueError):
                    await connection.close()
                    status, issue_id = 0, None
                outcomes.append(Outcome(due, time.time(), status, issue_id))
        finally:
            await connection.close()

    workers = [asyncio.create_task(worker()) for _ in range(connections)]
    total = int(rate * duration_s)
    start = time.time() + 0.05
    sent = 0
    while sent < total:
        now = time.time()
        due_now = min(total, int((now - start) * rate) + 1)
        for n in range(sent, due_now):
            queue.put_nowait((start + n / rate, next(payloads)))
        sent = max(sent, due_now)
        await asyncio.sleep(0.002)
    for _ in workers:
        queue.put_nowait(None)
    await asyncio.gather(*workers)
    return outcomes
