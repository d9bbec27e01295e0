"""The benchmark's open-loop driver against a small HTTP server on loopback: every request
offered gets one outcome, timed from when it was due, with the issue id of a 202; a server that
closes its connections, or drops one mid-request, costs only the requests it cut off."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager

import orjson

from bench.driver import offer

Answer = Callable[[int], bytes | None]


def _accepting(close_every: int = 0) -> Answer:
    """Each request answered 202 with its number as the id; every ``close_every``-th answer
    says ``Connection: close``."""

    def answer(n: int) -> bytes:
        body = orjson.dumps({"id": f"issue-{n}"})
        closing = b"Connection: close\r\n" if close_every and n % close_every == 0 else b""
        return b"HTTP/1.1 202 Accepted\r\n%sContent-Length: %d\r\n\r\n%s" % (
            closing,
            len(body),
            body,
        )

    return answer


@asynccontextmanager
async def _server(
    answer: Answer, *, quiet_close: bool = False
) -> AsyncIterator[tuple[str, list[bytes]]]:
    """A server answering each request by ``answer`` (None: it drops the connection); with
    ``quiet_close``, it closes each connection once it has answered, unannounced, as a server
    closes one that stays idle past its keep-alive timeout."""
    bodies: list[bytes] = []
    counter = itertools.count(1)

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = next(
                    int(line.split(b":")[1])
                    for line in head.split(b"\r\n")
                    if line.lower().startswith(b"content-length:")
                )
                bodies.append(await reader.readexactly(length))
                reply = answer(next(counter))
                if reply is None:
                    break
                writer.write(reply)
                await writer.drain()
                if b"Connection: close" in reply or quiet_close:
                    break
        except asyncio.IncompleteReadError:
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}", bodies
    finally:
        server.close()
        await server.wait_closed()


def _bodies() -> Iterator[bytes]:
    for n in itertools.count():
        yield orjson.dumps({"n": n})


async def test_every_request_offered_has_one_outcome_with_its_issue_id() -> None:
    async with _server(_accepting()) as (url, received):
        async with asyncio.timeout(10):  # a lost outcome would leave it waiting
            outcomes = await offer(
                url, "Bearer k", rate=400, duration_s=0.5, payloads=_bodies(), connections=8
            )
    assert len(outcomes) == 200
    assert {o.status for o in outcomes} == {202}
    assert sorted(o.issue_id for o in outcomes if o.issue_id) == sorted(
        f"issue-{n}" for n in range(1, 201)
    )
    assert sorted(orjson.loads(body)["n"] for body in received) == list(range(200))
    dues = sorted(o.due for o in outcomes)
    assert all(0.0024 < b - a < 0.0026 for a, b in itertools.pairwise(dues)), "400 a second"
    assert all(o.answered >= o.due for o in outcomes)


async def test_connections_the_server_closes_are_replaced() -> None:
    async with _server(_accepting(close_every=3)) as (url, _):
        async with asyncio.timeout(10):  # a lost outcome would leave it waiting
            outcomes = await offer(
                url, "Bearer k", rate=200, duration_s=0.5, payloads=_bodies(), connections=4
            )
    assert len(outcomes) == 100
    assert {o.status for o in outcomes} == {202}


async def test_a_dropped_connection_fails_only_the_request_it_carried() -> None:
    async with _server(lambda n: None if n == 5 else _accepting()(n)) as (url, _):
        async with asyncio.timeout(10):  # a lost outcome would leave it waiting
            outcomes = await offer(
                url, "Bearer k", rate=200, duration_s=0.25, payloads=_bodies(), connections=4
            )
    assert len(outcomes) == 50
    assert sorted(o.status for o in outcomes) == [0] + [202] * 49


async def test_idle_connections_the_server_closed_are_not_used_again() -> None:
    async with _server(_accepting(), quiet_close=True) as (url, _):
        async with asyncio.timeout(10):
            outcomes = await offer(
                url, "Bearer k", rate=50, duration_s=0.5, payloads=_bodies(), connections=2
            )
    assert len(outcomes) == 25
    assert {o.status for o in outcomes} == {202}
