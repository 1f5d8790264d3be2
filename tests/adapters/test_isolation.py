"""A channel never receives another connection's data, under concurrency."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator

import pytest
from aiohttp import web

from websocket_multiplex import Channel, MultiplexServer
from websocket_multiplex.adapters.aiohttp import add_sockjs_endpoint

from .carriers import RawWebSocketCarrier, SockJSWebSocketCarrier
from .test_aiohttp import start

CONNECTIONS = 60
CHANNELS = ("a", "b", "c")
MESSAGES = 20


@pytest.fixture
async def url() -> AsyncIterator[str]:
    server = MultiplexServer()
    for name in CHANNELS:

        async def echo(channel: Channel) -> None:
            async for data in channel:
                if random.random() < 0.3:
                    await asyncio.sleep(0)  # interleave the handlers
                await channel.send(data)

        server.register(name, echo)
    app = web.Application()
    add_sockjs_endpoint(app, server)
    runner, base = await start(app)
    yield base.replace("http", "ws") + "/multiplex"
    await runner.cleanup()


async def talk(carrier: RawWebSocketCarrier | SockJSWebSocketCarrier, me: int) -> None:
    for name in CHANNELS:
        await carrier.send(f"sub,{name}")
    expected = []
    for i in range(MESSAGES):
        for name in CHANNELS:
            payload = f"conn{me}:{name}:{i}"
            expected.append(f"msg,{name},{payload}")
            await carrier.send(f"msg,{name},{payload}")
    async with asyncio.timeout(20):
        received = [await carrier.receive() for _ in expected]
    # Each channel's messages come back in order and only to this connection.
    for name in CHANNELS:
        mine = [m for m in received if m and m.startswith(f"msg,{name},")]
        assert mine == [m for m in expected if m.startswith(f"msg,{name},")]
    assert sorted(map(str, received)) == sorted(expected)
    await carrier.close()


async def test_many_concurrent_connections_see_only_their_own_data(url: str) -> None:
    carriers = await asyncio.gather(
        *(
            RawWebSocketCarrier.connect(url + "/websocket")
            if i % 2
            else SockJSWebSocketCarrier.connect(url)
            for i in range(CONNECTIONS)
        )
    )
    await asyncio.gather(*(talk(carrier, i) for i, carrier in enumerate(carriers)))
