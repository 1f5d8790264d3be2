"""Bounds a careless application or a hostile client must not get past, on
both drivers: sessions that outlive their client, slow clients of a plain
handler, refused messages that cost nothing, text a plain WebSocket cannot
carry; and what the ASGI driver serves of its own (a local sockjs-client).
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from pathlib import Path

import aiohttp
import pytest

from websocket_multiplex import (
    Channel,
    ConnectionClosed,
    Limits,
    MultiplexServer,
    SockJSConnection,
)

from .carriers import RawWebSocketCarrier, SockJSWebSocketCarrier, wait_until
from .drivers import DRIVERS, serving

TIMEOUT = 5.0
both_drivers = pytest.mark.parametrize("driver", DRIVERS)


def tracebacks(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.exc_info and r.levelno >= logging.WARNING]


@both_drivers
async def test_a_session_whose_handler_stopped_reading_ends_when_its_client_does(
    driver: str,
) -> None:
    """The handler reads nothing: the inbox fills, the next xhr_send waits.
    When that client goes away, the session still expires."""

    async def deaf(connection: SockJSConnection) -> None:
        await connection.wait_closed()

    limits = Limits(max_queue=2)
    async with (
        serving(driver, deaf, limits=limits, disconnect_delay=0.3) as served,
        aiohttp.ClientSession() as http,
    ):
        session = f"{served.url}/000/{uuid.uuid4().hex[:8]}"
        async with http.post(f"{session}/xhr") as response:
            assert await response.text() == "o\n"
        async with http.post(f"{session}/xhr_send", data='["1"]') as response:
            assert response.status == 204
        parked = asyncio.create_task(  # fills the inbox: waits for the handler
            http.post(f"{session}/xhr_send", data='["2"]')
        )
        await wait_until(lambda: len(served.endpoint.sessions) == 1)
        done, _ = await asyncio.wait([parked], timeout=0.5)
        assert not done  # it waits for the handler
        parked.cancel()  # the client leaves
        await asyncio.gather(parked, return_exceptions=True)
        await wait_until(lambda: not served.endpoint.sessions, timeout=TIMEOUT)


@both_drivers
async def test_a_plain_handler_gives_up_on_a_client_that_stops_reading(
    driver: str, caplog: pytest.LogCaptureFixture
) -> None:
    """The client opens a session and never polls again: after
    slow_client_timeout the handler's send raises ConnectionClosed(4008),
    and nothing is logged as a failure."""
    outcome: asyncio.Queue[ConnectionClosed] = asyncio.Queue()

    async def firehose(connection: SockJSConnection) -> None:
        try:
            for _ in range(10_000):
                await connection.send("x" * 1000)
        except ConnectionClosed as closed:
            outcome.put_nowait(closed)
            raise  # out of the handler: an end, not a failure

    limits = Limits(write_limit=10_000, slow_client_timeout=0.3)
    caplog.set_level(logging.INFO, logger="websocket_multiplex")
    async with (
        serving(driver, firehose, limits=limits, disconnect_delay=60) as served,
        aiohttp.ClientSession() as http,
    ):
        session = f"{served.url}/000/{uuid.uuid4().hex[:8]}"
        async with http.post(f"{session}/xhr") as response:
            assert await response.text() == "o\n"
        async with asyncio.timeout(TIMEOUT):
            closed = await outcome.get()
        assert (closed.code, closed.reason) == (4008, "slow client")
        frames = []
        for _ in range(5):  # what was queued still goes first, one poll each
            async with http.post(f"{session}/xhr") as response:
                frames.append(await response.text())
            if frames[-1].startswith("c"):
                break
        assert frames[-1] == 'c[4008,"slow client"]\n'
        assert all(frame.startswith("a[") for frame in frames[:-1])
    assert tracebacks(caplog) == []


@both_drivers
async def test_a_message_refused_for_its_frames_costs_them_all_the_same(
    driver: str,
) -> None:
    """A refused packed message counts toward frame_rate: the session's
    next message waits for it, instead of being taken at once."""
    limits = Limits(max_message_frames=100, frame_rate=1000.0)
    async with (
        serving(driver, MultiplexServer(limits=limits)) as served,
        aiohttp.ClientSession() as http,
    ):
        session = f"{served.url}/000/{uuid.uuid4().hex[:8]}"
        async with http.post(f"{session}/xhr") as response:
            assert await response.text() == "o\n"
        packed = json.dumps(["x"] * 1000)  # too many: 900 over the burst
        async with http.post(f"{session}/xhr_send", data=packed) as response:
            assert response.status == 500
        following = asyncio.create_task(
            http.post(f"{session}/xhr_send", data=json.dumps(["y"]))
        )
        done, _ = await asyncio.wait([following], timeout=0.3)
        assert not done  # it owes ~0.9 s at 1,000 frames a second
        async with asyncio.timeout(TIMEOUT):
            assert (await following).status == 204


@both_drivers
async def test_text_a_plain_websocket_cannot_carry_arrives_replaced(
    driver: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A SockJS client may send a lone surrogate (JSON escapes it); relayed
    to a raw WebSocket peer it arrives as U+FFFD, and costs nobody their
    connection or a traceback."""
    mux = MultiplexServer()

    @mux.channel("room")
    async def room(channel: Channel) -> None:
        await channel.join("room")
        await channel.send("joined")
        async for text in channel:
            await mux.publish("room", text, exclude=channel)

    async with serving(driver, mux) as served:
        raw = await RawWebSocketCarrier.connect(f"{served.ws_url}/websocket")
        sockjs = await SockJSWebSocketCarrier.connect(served.ws_url)
        try:
            for carrier in (raw, sockjs):
                await carrier.send("sub,room")
                async with asyncio.timeout(TIMEOUT):
                    assert await carrier.receive() == "msg,room,joined"
            await sockjs.ws.send_str('["msg,room,a\\ud800b"]')
            async with asyncio.timeout(TIMEOUT):
                assert await raw.receive() == "msg,room,a\ufffdb"
            await raw.send("msg,room,still here")
            async with asyncio.timeout(TIMEOUT):
                assert await sockjs.receive() == "msg,room,still here"
        finally:
            await raw.close()
            await sockjs.close()
    assert tracebacks(caplog) == []


async def test_the_asgi_driver_serves_a_local_sockjs_client(tmp_path: Path) -> None:
    """sockjs_url as a Path: the iframe page loads it from below the prefix,
    wherever the app is mounted (the path is relative)."""
    script = tmp_path / "sockjs.min.js"
    script.write_text("/* sockjs-client */")

    async def echo(connection: SockJSConnection) -> None:
        async for message in connection:
            await connection.send(message)

    async with (
        serving("uvicorn", echo, sockjs_url=script) as served,
        aiohttp.ClientSession() as http,
    ):
        async with http.get(f"{served.url}/iframe.html") as response:
            assert 'src="sockjs.min.js"' in await response.text()
        async with http.get(f"{served.url}/sockjs.min.js") as response:
            assert response.status == 200
            assert await response.text() == "/* sockjs-client */"
