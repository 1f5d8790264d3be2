"""The guard in front of the HTTP server: the connection cap, the header
deadline, and a quiet accept loop; real sockets on 127.0.0.1 against a
real aiohttp server."""

from __future__ import annotations

import asyncio
import errno
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

import aiohttp
import pytest
from aiohttp import web

from websocket_multiplex.asyncio.listener import ConnectionGuard, quiet_accept_errors
from websocket_multiplex.asyncio.throttle import LogThrottle

TIMEOUT = 10.0
REQUEST = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"


async def hello(request: web.Request) -> web.Response:
    return web.Response(text="ok")


async def echo(request: web.Request) -> web.WebSocketResponse:
    ws = web.WebSocketResponse()
    await ws.prepare(request)
    async for message in ws:
        await ws.send_str(message.data)
    return ws


@dataclass
class Listening:
    guard: ConnectionGuard
    port: int

    async def open(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        return await asyncio.open_connection("127.0.0.1", self.port)


async def listening(
    max_connections: int = 100, header_timeout: float = 30.0
) -> AsyncIterator[Listening]:
    app = web.Application()
    app.router.add_get("/", hello)
    app.router.add_get("/ws", echo)
    runner = web.AppRunner(app, keepalive_timeout=60)
    await runner.setup()
    assert runner.server is not None
    guard = ConnectionGuard(
        runner.server,
        max_connections=max_connections,
        header_timeout=header_timeout,
        log=LogThrottle(),
    )
    server = await asyncio.get_running_loop().create_server(guard, "127.0.0.1", 0)
    try:
        yield Listening(guard, server.sockets[0].getsockname()[1])
    finally:
        server.close()
        await runner.cleanup()


@pytest.fixture
async def capped() -> AsyncIterator[Listening]:
    async for it in listening(max_connections=5):
        yield it


@pytest.fixture
async def strict() -> AsyncIterator[Listening]:
    async for it in listening(header_timeout=0.5):
        yield it


async def get(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bytes:
    """One keep-alive GET over an open connection: the response's head."""
    writer.write(REQUEST)
    async with asyncio.timeout(TIMEOUT):
        head = await reader.readuntil(b"\r\n\r\n")
        await reader.readexactly(2)  # "ok"
    return head


async def ended(reader: asyncio.StreamReader) -> bool:
    """Whether the server closed the connection (reads to its end)."""
    async with asyncio.timeout(TIMEOUT):
        try:
            while await reader.read(65536):
                pass
        except ConnectionResetError:
            pass
    return True


# -- max_connections ----------------------------------------------------------------


async def test_over_the_cap_a_connection_is_closed_at_once_and_the_others_served(
    capped: Listening,
) -> None:
    held = [await capped.open() for _ in range(5)]
    for reader, writer in held:
        assert (await get(reader, writer)).startswith(b"HTTP/1.1 200")
    reader, writer = await capped.open()
    assert await ended(reader)  # refused: closed before any HTTP
    assert capped.guard.refused == 1
    for kept_reader, kept_writer in held:  # the ones it has: still served
        assert (await get(kept_reader, kept_writer)).startswith(b"HTTP/1.1 200")
    writer.close()
    _, first = held.pop()
    first.close()
    async with asyncio.timeout(TIMEOUT):
        while capped.guard.open > 4:  # the server sees the close in its turn
            await asyncio.sleep(0.01)
    reader, writer = await capped.open()  # room again
    assert (await get(reader, writer)).startswith(b"HTTP/1.1 200")
    for _, kept in [*held, (reader, writer)]:
        kept.close()


# -- header_timeout -------------------------------------------------------------------


async def test_a_client_dribbling_its_headers_is_closed_at_the_deadline(
    strict: Listening,
) -> None:
    reader, writer = await strict.open()
    started = time.monotonic()
    writer.write(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n")
    closed = asyncio.ensure_future(ended(reader))
    for i in range(40):  # a header line every 0.1 s, never the blank line
        if closed.done():
            break
        try:
            writer.write(f"X-Slow-{i}: 1\r\n".encode())
        except ConnectionError:
            break
        await asyncio.wait([closed], timeout=0.1)
    assert await closed
    assert 0.4 <= time.monotonic() - started < 3.0
    assert strict.guard.timed_out == 1
    writer.close()


async def test_a_silent_connection_is_closed_at_the_deadline(strict: Listening) -> None:
    reader, writer = await strict.open()
    started = time.monotonic()
    assert await ended(reader)
    assert 0.4 <= time.monotonic() - started < 3.0
    writer.close()


async def test_a_connection_whose_headers_came_in_time_is_not_cut(
    strict: Listening,
) -> None:
    async with (
        aiohttp.ClientSession() as http,
        http.ws_connect(f"http://127.0.0.1:{strict.port}/ws") as ws,
    ):
        await asyncio.sleep(1.0)  # twice the deadline: time itself is the test
        await ws.send_str("still here")
        async with asyncio.timeout(TIMEOUT):
            assert (await ws.receive()).data == "still here"
    assert strict.guard.timed_out == 0


async def test_headers_split_across_reads_are_seen_whole(strict: Listening) -> None:
    reader, writer = await strict.open()
    for part in (REQUEST[:-3], REQUEST[-3:-1], REQUEST[-1:]):
        writer.write(part)
        await writer.drain()
    async with asyncio.timeout(TIMEOUT):
        head = await reader.readuntil(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200")
    assert strict.guard.timed_out == 0
    writer.close()


# -- running out of descriptors -------------------------------------------------


async def test_accept_failures_for_lack_of_descriptors_log_one_line_per_interval(
    caplog: pytest.LogCaptureFixture,
) -> None:
    loop = asyncio.get_running_loop()
    handler = quiet_accept_errors(loop, LogThrottle())
    caplog.set_level(logging.WARNING)
    for _ in range(1000):
        handler(
            loop,
            {
                "message": "socket.accept() out of system resource",
                "exception": OSError(errno.EMFILE, "Too many open files"),
            },
        )
    lines = [r for r in caplog.records if "out of file descriptors" in r.message]
    assert len(lines) == 1
    assert "ulimit -n" in lines[0].message and "max_connections" in lines[0].message
    assert not any(r.exc_info for r in caplog.records)


async def test_other_loop_errors_still_reach_the_previous_handler() -> None:
    loop = asyncio.get_running_loop()
    seen: list[dict[str, object]] = []
    previous = loop.get_exception_handler()
    loop.set_exception_handler(lambda _, context: seen.append(context))
    try:
        handler = quiet_accept_errors(loop, LogThrottle())
        handler(loop, {"message": "something else", "exception": ValueError("x")})
    finally:
        loop.set_exception_handler(previous)
    assert [context["message"] for context in seen] == ["something else"]
