"""One server, three adapters: a publish reaches members on every one."""

from __future__ import annotations

import asyncio

from aiohttp import web

from websocket_multiplex import Channel, MultiplexServer
from websocket_multiplex.adapters.aiohttp import (
    add_sockjs_endpoint,
    add_websocket_route,
)
from websocket_multiplex.adapters.asgi import MultiplexASGI
from websocket_multiplex.testing import ClientCarrier

from .carriers import (
    RawWebSocketCarrier,
    SockJSWebSocketCarrier,
    SockJSXhrPollingCarrier,
)
from .test_aiohttp import start
from .test_asgi import uvicorn_serving


async def test_publish_reaches_members_on_every_adapter() -> None:
    server = MultiplexServer()
    joined = asyncio.Queue[Channel]()

    @server.channel("news")
    async def news(channel: Channel) -> None:
        await channel.join("headlines")
        joined.put_nowait(channel)
        async for data in channel:
            await server.publish("headlines", data, exclude=channel)

    app = web.Application()
    add_sockjs_endpoint(app, server, prefix="/mx")
    add_websocket_route(app, server, "/ws")
    runner, base = await start(app)
    ws_base = base.replace("http", "ws")
    try:
        async with uvicorn_serving(MultiplexASGI(server)) as asgi_url:
            members: list[ClientCarrier] = [
                await SockJSWebSocketCarrier.connect(ws_base + "/mx"),
                await SockJSXhrPollingCarrier.connect(base + "/mx"),
                await RawWebSocketCarrier.connect(ws_base + "/mx/websocket"),
                await RawWebSocketCarrier.connect(ws_base + "/ws"),
                await RawWebSocketCarrier.connect(asgi_url),
            ]
            for member in members:
                await member.send("sub,news")
            async with asyncio.timeout(10):
                for _ in members:
                    await joined.get()
            publisher, *listeners = members
            await publisher.send("msg,news,extra! extra!")
            async with asyncio.timeout(10):
                for listener in listeners:
                    assert await listener.receive() == "msg,news,extra! extra!"
            assert len(await server.members("headlines")) == 5
            # The publisher was excluded: had it received its own message,
            # it would come before this one.
            await server.publish("headlines", "marker")
            async with asyncio.timeout(10):
                assert await publisher.receive() == "msg,news,marker"
                for listener in listeners:
                    assert await listener.receive() == "msg,news,marker"
            for member in members:
                await member.close()
    finally:
        await runner.cleanup()
