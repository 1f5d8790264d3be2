"""The ASGI adapter under a real uvicorn on 127.0.0.1, with aiohttp as the client.

uvicorn needs a WebSocket implementation; these tests use wsproto (pure
Python). Lifespan shutdown is driven at the ASGI seam itself, because
uvicorn closes every WebSocket (code 1012) before it sends the shutdown
event, so through uvicorn the adapter never sees a connection to close.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp
import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.routing import Mount, WebSocketRoute
from uvicorn.protocols.utils import ClientDisconnected

from websocket_multiplex import Channel, CloseReason, MultiplexServer
from websocket_multiplex.adapters.asgi import (
    ASGIWebSocket,
    BrowserClientASGI,
    Message,
    MultiplexASGI,
    request_from_scope,
)
from websocket_multiplex.testing import (
    check_adapter_conformance,
    conformance_server,
    connect_in_memory,
)

from ..servers import uvicorn_running
from .carriers import RawWebSocketCarrier

TIMEOUT = 5.0
ASGIApp = Callable[..., Awaitable[None]]


@contextlib.asynccontextmanager
async def uvicorn_serving(app: ASGIApp, **options: Any) -> AsyncIterator[str]:
    """Run ``app`` in this event loop; yield its ``ws://127.0.0.1:PORT``.

    ``options`` go to ``uvicorn.Config``.
    """
    config = uvicorn.Config(
        app,
        ws="wsproto",
        lifespan="on",
        log_config=None,
        log_level="warning",
        **options,
    )
    async with uvicorn_running(config) as port:
        yield f"ws://127.0.0.1:{port}"


async def next_item(queue: asyncio.Queue[Any]) -> Any:
    async with asyncio.timeout(TIMEOUT):
        return await queue.get()


async def receive(carrier: RawWebSocketCarrier) -> str | None:
    async with asyncio.timeout(TIMEOUT):
        return await carrier.receive()


def echo_server(events: asyncio.Queue[Any] | None = None) -> MultiplexServer:
    """Services ``a`` and ``b`` echo; each reports its channel when it ends."""
    mux = MultiplexServer(handler_timeout=1.0)

    async def echo(channel: Channel) -> None:
        async for data in channel:
            await channel.send(data)
        if events is not None:
            events.put_nowait(channel)

    mux.register("a", echo)
    mux.register("b", echo)
    return mux


# -- the contract --------------------------------------------------------------


async def test_conformance() -> None:
    async with uvicorn_serving(MultiplexASGI(conformance_server())) as url:
        await check_adapter_conformance(lambda: RawWebSocketCarrier.connect(url))


async def test_conformance_mounted_in_starlette() -> None:
    mux = conformance_server()
    app = Starlette(
        routes=[
            WebSocketRoute("/multiplex", MultiplexASGI(mux)),
            Mount("/mounted", app=MultiplexASGI(mux)),
        ]
    )
    async with uvicorn_serving(app) as url:
        for path in ("/multiplex", "/mounted/anything"):
            connect = functools.partial(RawWebSocketCarrier.connect, url + path)
            await check_adapter_conformance(connect)


async def test_starlette_lifespan_closes_the_server() -> None:
    mux = echo_server()
    adapter = MultiplexASGI(mux)
    app = Starlette(routes=[WebSocketRoute("/ws", adapter)], lifespan=adapter.lifespan)
    # uvicorn closes its own sockets before the lifespan shutdown; a
    # connection it does not know about shows that server.close() ran.
    bystander = await connect_in_memory(mux)
    await bystander.send("sub,a")
    async with uvicorn_serving(app) as url:
        carrier = await RawWebSocketCarrier.connect(url + "/ws")
        await carrier.send("sub,a")
        await carrier.send("msg,a,hi")
        assert await receive(carrier) == "msg,a,hi"
        await carrier.close()
    async with asyncio.timeout(TIMEOUT):
        assert [await bystander.receive() for _ in range(3)] == [
            "err,a,1001 server shutting down",
            "uns,a",
            None,
        ]
    assert mux.connections == set()


# -- what reaches the services -------------------------------------------------


async def test_request_data_reaches_the_channel() -> None:
    seen: asyncio.Queue[Channel] = asyncio.Queue()
    mux = MultiplexServer()

    @mux.channel("who")
    async def who(channel: Channel) -> None:
        seen.put_nowait(channel)
        await channel.send("ok")

    async with uvicorn_serving(MultiplexASGI(mux)) as url:
        carrier = await RawWebSocketCarrier.connect(
            f"{url}/mux/path?user=ann&x=%C3%BC&user=bob",
            headers={"X-Custom": "yes", "Cookie": "session=abc123; theme=dark"},
            origin="https://app.example",
        )
        try:
            await carrier.send("sub,who")
            assert await receive(carrier) == "msg,who,ok"
            request = (await next_item(seen)).request
        finally:
            await carrier.close()

    assert request.path == "/mux/path"
    assert request.query_string == "user=ann&x=%C3%BC&user=bob"
    assert request.query == {"user": "ann", "x": "ü"}
    assert request.headers["x-custom"] == "yes"
    assert request.headers["X-CUSTOM"] == "yes"
    assert request.cookies == {"session": "abc123", "theme": "dark"}
    assert request.origin == "https://app.example"
    assert request.remote_address == "127.0.0.1"


def test_request_from_scope_without_client() -> None:
    request = request_from_scope({"type": "websocket", "path": "/x", "headers": []})
    assert request.path == "/x"
    assert request.query_string == ""
    assert request.remote_address is None
    assert dict(request.headers) == {}


async def test_request_path_when_mounted_in_starlette() -> None:
    seen: asyncio.Queue[Channel] = asyncio.Queue()
    mux = MultiplexServer()

    @mux.channel("who")
    async def who(channel: Channel) -> None:
        seen.put_nowait(channel)

    app = Starlette(routes=[Mount("/api", app=MultiplexASGI(mux))])
    async with uvicorn_serving(app) as url:
        carrier = await RawWebSocketCarrier.connect(f"{url}/api/ws?room=1")
        try:
            await carrier.send("sub,who")
            request = (await next_item(seen)).request
        finally:
            await carrier.close()
    assert request.path == "/api/ws"
    assert request.query == {"room": "1"}


# -- closing -------------------------------------------------------------------


async def test_client_close_closes_every_channel() -> None:
    ended: asyncio.Queue[Channel] = asyncio.Queue()
    mux = echo_server(ended)
    async with uvicorn_serving(MultiplexASGI(mux)) as url:
        carrier = await RawWebSocketCarrier.connect(url)
        for name in ("a", "b"):
            await carrier.send(f"sub,{name}")
            await carrier.send(f"msg,{name},hello")
            assert await receive(carrier) == f"msg,{name},hello"
        (connection,) = mux.connections
        transport = connection.transport
        await carrier.close()
        channels = [await next_item(ended) for _ in range(2)]

    assert sorted(channel.name for channel in channels) == ["a", "b"]
    assert {channel.close_reason for channel in channels} == {
        CloseReason.CONNECTION_LOST
    }
    assert connection.closed
    assert mux.connections == set()
    with pytest.raises(ConnectionError):
        await transport.send("msg,a,late")


async def test_client_close_is_seen_by_handlers_as_connection_lost() -> None:
    reasons: asyncio.Queue[CloseReason | None] = asyncio.Queue()
    mux = MultiplexServer(handler_timeout=1.0)

    async def wait(channel: Channel) -> None:
        await channel.send("ready")
        await channel.wait_closed()
        reasons.put_nowait(channel.close_reason)

    mux.register("a", wait)
    mux.register("b", wait)
    async with uvicorn_serving(MultiplexASGI(mux)) as url:
        carrier = await RawWebSocketCarrier.connect(url)
        for name in ("a", "b"):
            await carrier.send(f"sub,{name}")
            assert await receive(carrier) == f"msg,{name},ready"
        await carrier.close()
        got = [await next_item(reasons) for _ in range(2)]
    assert got == [CloseReason.CONNECTION_LOST] * 2


async def test_server_close_sends_uns_for_each_channel_then_closes() -> None:
    ended: asyncio.Queue[Channel] = asyncio.Queue()
    mux = echo_server(ended)
    async with uvicorn_serving(MultiplexASGI(mux)) as url:
        carrier = await RawWebSocketCarrier.connect(url)
        try:
            for name in ("a", "b"):
                await carrier.send(f"sub,{name}")
                await carrier.send(f"msg,{name},x")
                assert await receive(carrier) == f"msg,{name},x"
            await mux.close()
            assert [await receive(carrier) for _ in range(5)] == [
                "err,a,1001 server shutting down",
                "uns,a",
                "err,b,1001 server shutting down",
                "uns,b",
                None,
            ]
            assert carrier.ws.close_code == 1001
            reasons = {(await next_item(ended)).close_reason for _ in range(2)}
            assert reasons == {CloseReason.SHUTDOWN}
            assert mux.connections == set()
        finally:
            await carrier.close()


# -- what is not a frame -------------------------------------------------------


async def test_binary_messages_are_ignored() -> None:
    mux = echo_server()
    async with uvicorn_serving(MultiplexASGI(mux)) as url:
        carrier = await RawWebSocketCarrier.connect(url)
        try:
            await carrier.send("sub,a")
            await carrier.ws.send_bytes(b"msg,a,binary")
            await carrier.send("msg,a,text")
            assert await receive(carrier) == "msg,a,text"
            (connection,) = mux.connections
            assert connection.counters.frames_received == 2  # not a frame
        finally:
            await carrier.close()


async def test_a_message_over_ws_max_size_closes_the_connection_with_1009() -> None:
    # The message-size cap of the ASGI adapter is the ASGI server's (asgi.py).
    ended: asyncio.Queue[Channel] = asyncio.Queue()
    mux = echo_server(ended)
    async with uvicorn_serving(MultiplexASGI(mux), ws_max_size=1000) as url:
        carrier = await RawWebSocketCarrier.connect(url)
        try:
            await carrier.send("sub,a")
            await carrier.send("msg,a," + "x" * 900)
            assert await receive(carrier) == "msg,a," + "x" * 900
            await carrier.send("msg,a," + "x" * 1000)
            assert await receive(carrier) is None
            assert carrier.ws.close_code == 1009
            channel = await next_item(ended)
        finally:
            await carrier.close()
    assert channel.close_reason is CloseReason.CONNECTION_LOST
    assert mux.connections == set()


async def test_http_request_gets_426() -> None:
    async with (
        uvicorn_serving(MultiplexASGI(echo_server())) as url,
        aiohttp.ClientSession() as session,
        session.get(url.replace("ws://", "http://") + "/x") as response,
    ):
        assert response.status == 426
        assert response.headers["Upgrade"] == "websocket"
        assert "WebSocket" in await response.text()


# -- origins -------------------------------------------------------------------


async def handshake_status(url: str, origin: str | None) -> int:
    """The HTTP status of a refused WebSocket handshake."""
    async with aiohttp.ClientSession() as session:
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await session.ws_connect(url, origin=origin)
    return refused.value.status


async def test_allowed_origins() -> None:
    app = MultiplexASGI(echo_server(), allowed_origins=["https://good.example"])
    async with uvicorn_serving(app) as url:
        for origin in ("https://evil.example", "null", "https://good.example.evil"):
            assert await handshake_status(url, origin) == 403
        carrier = await RawWebSocketCarrier.connect(url, origin="https://good.example")
        try:
            await carrier.send("sub,a")
            await carrier.send("msg,a,hi")
            assert await receive(carrier) == "msg,a,hi"
        finally:
            await carrier.close()


async def test_allowed_origins_accept_clients_without_origin() -> None:
    # Browsers always send Origin; a client that sends none is not a
    # browser, and could send any: the aiohttp adapter accepts it too.
    mux = echo_server()
    app = MultiplexASGI(mux, allowed_origins=["https://good.example"])
    async with uvicorn_serving(app) as url:
        carrier = await RawWebSocketCarrier.connect(url)
        try:
            await carrier.send("sub,a")
            await carrier.send("msg,a,no origin")
            assert await receive(carrier) == "msg,a,no origin"
            (connection,) = mux.connections
            assert connection.transport.request.origin is None
        finally:
            await carrier.close()


# -- the ASGI seam itself ------------------------------------------------------


class ASGIPeer:
    """The server end of one ASGI call: queues standing in for an ASGI server."""

    def __init__(self) -> None:
        self.to_app: asyncio.Queue[Message] = asyncio.Queue()
        self.from_app: asyncio.Queue[Message] = asyncio.Queue()

    async def receive(self) -> Message:
        return await self.to_app.get()

    async def send(self, message: Message) -> None:
        self.from_app.put_nowait(message)


async def test_lifespan_shutdown_closes_the_server() -> None:
    mux = echo_server()
    client = await connect_in_memory(mux)
    await client.send("sub,a")
    peer = ASGIPeer()
    app = asyncio.create_task(
        MultiplexASGI(mux)({"type": "lifespan"}, peer.receive, peer.send)
    )
    peer.to_app.put_nowait({"type": "lifespan.startup"})
    assert await next_item(peer.from_app) == {"type": "lifespan.startup.complete"}
    peer.to_app.put_nowait({"type": "lifespan.shutdown"})
    assert await next_item(peer.from_app) == {"type": "lifespan.shutdown.complete"}
    async with asyncio.timeout(TIMEOUT):
        await app
    assert [await client.receive() for _ in range(3)] == [
        "err,a,1001 server shutting down",
        "uns,a",
        None,
    ]
    assert client.transport.closed_with == (1001, "server shutdown")
    assert mux.connections == set()


async def test_send_raises_connection_error_when_the_server_says_disconnected() -> None:
    async def gone(message: Message) -> None:
        raise ClientDisconnected

    peer = ASGIPeer()
    ws = ASGIWebSocket(peer.receive, gone)
    with pytest.raises(ConnectionError):
        await ws.send("msg,a,x")
    assert ws.closed
    await ws.close(1000, "")  # closing a gone socket is quiet


async def test_client_leaving_before_the_handshake() -> None:
    mux = echo_server()
    peer = ASGIPeer()
    peer.to_app.put_nowait({"type": "websocket.disconnect", "code": 1006})
    await MultiplexASGI(mux)({"type": "websocket"}, peer.receive, peer.send)
    assert peer.from_app.empty()
    assert mux.connections == set()


async def test_unknown_scope_type_is_an_error() -> None:
    peer = ASGIPeer()
    with pytest.raises(ValueError, match="unsupported"):
        await MultiplexASGI(echo_server())({"type": "tcp"}, peer.receive, peer.send)


async def test_browser_client_files_mounted_in_starlette() -> None:
    """The same files, types and CORS header as ``add_client_routes``."""
    app = Starlette(routes=[Mount("/websocket-multiplex", app=BrowserClientASGI())])
    async with uvicorn_serving(app) as url, aiohttp.ClientSession() as http:
        base = url.replace("ws://", "http://") + "/websocket-multiplex"
        for name, kind in [
            ("websocket-multiplex.js", "text/javascript"),
            ("websocket-multiplex.mjs", "text/javascript"),
            ("websocket-multiplex.d.ts", "text/plain"),
            ("websocket-multiplex.d.mts", "text/plain"),
        ]:
            async with http.get(
                f"{base}/{name}", headers={"Origin": "http://x"}
            ) as got:
                assert got.status == 200
                assert got.headers["Content-Type"] == f"{kind}; charset=utf-8"
                assert got.headers["Access-Control-Allow-Origin"] == "*"
                assert "WebSocketMultiplex" in await got.text()
            async with http.head(f"{base}/{name}") as got:
                assert got.status == 200
                assert await got.read() == b""
        async with http.post(f"{base}/websocket-multiplex.js") as got:
            assert (got.status, got.headers["Allow"]) == (405, "GET, HEAD")
        async with http.get(f"{base}/nothing.js") as got:
            assert got.status == 404


async def test_browser_client_files_below_a_prefix_at_the_top() -> None:
    async with uvicorn_serving(BrowserClientASGI(prefix="/js/")) as url:
        base = url.replace("ws://", "http://")
        async with aiohttp.ClientSession() as http:
            async with http.get(f"{base}/js/websocket-multiplex.mjs") as got:
                assert got.status == 200
                assert "export" in await got.text()
            async with http.get(f"{base}/websocket-multiplex.mjs") as got:
                assert got.status == 404
            with pytest.raises(aiohttp.WSServerHandshakeError):
                await http.ws_connect(f"{url}/js/websocket-multiplex.js")
