"""Whole SockJS sessions over real sockets on 127.0.0.1, request by request.

What the session layer (asyncio/sockjs.py) must get right and aio-libs
``sockjs`` 0.13 got wrong, seen the way a client sees it across the
several HTTP requests of one session:
a dropped idle poll, request data after the opening request has ended, a
slow channel among fast ones, and what is left in memory after a disconnect.

The server runs on a plain ``web.AppRunner`` (no ``handler_cancellation``):
whatever the adapter notices, it notices by itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import uuid
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from websocket_multiplex import Channel, CloseReason, MultiplexServer
from websocket_multiplex.adapters.aiohttp import add_sockjs_endpoint
from websocket_multiplex.asyncio.connection import Connection
from websocket_multiplex.asyncio.sockjs import HTTPSession
from websocket_multiplex.request import RequestInfo

from .carriers import (
    RawWebSocketCarrier,
    SockJSWebSocketCarrier,
    SockJSXhrPollingCarrier,
    wait_until,
)

TIMEOUT = 5.0  # seconds any single wait may take
HEARTBEAT = 25.0  # sockjs's default: what would otherwise notice a dropped poll
FILL = 140 * 1024  # more than a streaming response carries (sockjs: 128 KiB)


class Services:
    """A multiplexer whose services record what the tests check.

    ``rec`` records the request data its channels see and why they closed;
    ``fill`` sends more than one streaming response may carry; ``slow``
    answers each message once released, ``fast`` at once. Handlers keep
    weak references only, so that the freeing test can see them go.
    """

    def __init__(self) -> None:
        self.server = MultiplexServer()
        self.requests: list[RequestInfo] = []
        self.closed: list[CloseReason | None] = []
        self.connections: list[weakref.ref[Connection]] = []
        self.release = asyncio.Event()
        self.server.register("rec", self.rec)
        self.server.register("fill", self.fill)
        self.server.register("slow", self.slow)
        self.server.register("fast", self.fast)

    async def rec(self, channel: Channel) -> None:
        self.requests.append(channel.request)
        self.connections.append(weakref.ref(channel.connection))
        await channel.send("ready")
        async for data in channel:
            await channel.send(data)
        self.closed.append(channel.close_reason)

    async def fill(self, channel: Channel) -> None:
        await channel.send("x" * FILL)
        await channel.wait_closed()

    async def slow(self, channel: Channel) -> None:
        async for data in channel:
            await self.release.wait()
            await channel.send(data)

    async def fast(self, channel: Channel) -> None:
        async for data in channel:
            await channel.send(data)


@contextlib.asynccontextmanager
async def running(
    services: Services, disconnect_delay: float = 5.0
) -> AsyncIterator[str]:
    """Serve ``services`` over SockJS at ``<base>/mx``; yields that URL."""
    app = web.Application()
    add_sockjs_endpoint(
        app,
        services.server,
        prefix="/mx",
        heartbeat_delay=HEARTBEAT,
        disconnect_delay=disconnect_delay,
    )
    runner = web.AppRunner(app)  # handler_cancellation stays off
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}/mx"
    finally:
        await runner.cleanup()


@pytest.fixture
async def services() -> AsyncIterator[tuple[Services, str]]:
    rec = Services()
    async with running(rec) as url:
        yield rec, url


def session_url(url: str) -> str:
    return f"{url}/000/{uuid.uuid4().hex[:8]}"


def sockjs_session(services: Services) -> HTTPSession:
    """The SockJS session under the only connection (to see who holds it)."""
    (connection,) = services.server.connections
    session = connection.transport
    assert isinstance(session, HTTPSession)
    return session


def client() -> aiohttp.ClientSession:
    """An HTTP client none of whose requests may take long."""
    return aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=3 * TIMEOUT))


async def text(response: aiohttp.ClientResponse) -> str:
    async with asyncio.timeout(TIMEOUT):
        return await response.text()


# -- 1. a dropped idle poll ----------------------------------------------------


async def test_dropped_idle_poll_is_noticed_and_the_next_poll_gets_no_2010(
    services: tuple[Services, str],
) -> None:
    """aiohttp alone would notice the dropped request at the next heartbeat
    (25 s) and answer every poll until then with ``c[2010,...]``."""
    rec, url = services
    session = session_url(url)
    async with client() as http:
        assert await text(await http.post(f"{session}/xhr")) == "o\n"
        await http.post(f"{session}/xhr_send", data='["sub,rec"]')
        ready = await text(await http.post(f"{session}/xhr"))
        assert ready == 'a["msg,rec,ready"]\n'

        held = sockjs_session(rec)
        idle = await http.post(f"{session}/xhr")  # nothing to say: it is held
        await wait_until(lambda: held.held, timeout=TIMEOUT)
        loop = asyncio.get_running_loop()
        dropped_at = loop.time()
        idle.close()  # the client drops the TCP connection

        await wait_until(lambda: rec.closed, timeout=3.0)
        assert loop.time() - dropped_at < 3.0  # not at the heartbeat
        assert rec.closed == [CloseReason.CONNECTION_LOST]
        assert not held.held
        await wait_until(lambda: not rec.server.connections, timeout=TIMEOUT)
        # Like sockjs-node: the session whose poll was aborted is over.
        after = await text(await http.post(f"{session}/xhr"))
        assert after == 'c[1002,"Connection interrupted"]\n'


async def test_a_poll_right_after_a_dropped_one_gets_no_2010(
    services: tuple[Services, str],
) -> None:
    """The next poll may come before the disconnect watch looks again: it
    must find the holder gone by itself. While the holder's client is still
    there, a second poll is refused (2010) and the holder keeps the session."""
    rec, url = services
    session = session_url(url)
    async with client() as http:
        assert await text(await http.post(f"{session}/xhr")) == "o\n"
        await http.post(f"{session}/xhr_send", data='["sub,rec"]')
        assert await text(await http.post(f"{session}/xhr")) != ""
        held = sockjs_session(rec)
        idle = await http.post(f"{session}/xhr")
        await wait_until(lambda: held.held, timeout=TIMEOUT)

        second = await text(await http.post(f"{session}/xhr"))
        assert second == 'c[2010,"Another connection still open"]\n'
        assert held.held and rec.closed == []

        idle.close()
        after = await text(await http.post(f"{session}/xhr"))
        assert after == 'c[1002,"Connection interrupted"]\n'
        assert rec.closed == [CloseReason.CONNECTION_LOST]


# -- 2. request data after the opening request has ended -------------------------


async def receiving_request(
    http: aiohttp.ClientSession,
    session: str,
    transport: str,
    query: dict[str, str],
    headers: dict[str, str],
) -> AsyncIterator[str]:
    """The SockJS frames one receiving request carries, until it ends.

    Each transport as sockjs-client 1.6 speaks it; streams are dropped when
    the caller stops reading early.
    """
    if transport in ("xhr", "xhr_streaming"):
        request = http.post(f"{session}/{transport}", params=query, headers=headers)
    else:  # eventsource, jsonp
        request = http.get(f"{session}/{transport}", params=query, headers=headers)
    async with request as response:
        assert response.status == 200, response.status
        while True:
            async with asyncio.timeout(TIMEOUT):
                line = (await response.content.readline()).decode()
            if not line:
                return  # the server ended the response
            line = line.rstrip("\r\n")
            if transport == "xhr_streaming" and line == "h" * 2048:
                continue  # the prelude
            if transport == "eventsource":
                if not line.startswith("data: "):
                    continue  # the blank lines around events
                line = line.removeprefix("data: ")
            if transport == "jsonp":
                prefix = f"/**/{query['c']}("
                assert line.startswith(prefix) and line.endswith(");"), line
                line = json.loads(line[len(prefix) : -2])
            yield line


async def send(
    http: aiohttp.ClientSession, session: str, transport: str, message: str
) -> None:
    """Send as sockjs-client does: jsonp_send with a form, else xhr_send."""
    headers = {"Cookie": "token=of-a-send", "X-Test": "send"}
    if transport == "jsonp":
        form = {"d": json.dumps([message])}
        response = await http.post(f"{session}/jsonp_send", data=form, headers=headers)
        assert response.status == 200
    else:
        data = json.dumps([message])
        response = await http.post(f"{session}/xhr_send", data=data, headers=headers)
        assert response.status == 204


@pytest.mark.parametrize("transport", ["xhr", "xhr_streaming", "eventsource", "jsonp"])
async def test_request_data_of_the_opening_request_reaches_later_channels(
    services: tuple[Services, str], transport: str
) -> None:
    """sockjs forgets ``session.request`` when a request ends; a channel
    subscribed later still sees the request that opened the session (not
    the one that happens to carry its greeting, nor the sends)."""
    rec, url = services
    session = session_url(url)
    opening_query = {"user": "ann"}
    later_query = {"user": "bob"}
    if transport == "jsonp":
        opening_query["c"] = "opening"
        later_query["c"] = "later"
    async with client() as http:
        opening = receiving_request(
            http,
            session,
            transport,
            opening_query,
            {"Cookie": "token=s3cret; theme=dark", "X-Test": "opening"},
        )
        assert await anext(opening) == "o"
        if transport in ("xhr_streaming", "eventsource"):
            # A stream ends once it has carried 128 KiB: fill it.
            await send(http, session, transport, "sub,fill")
        rest = [frame async for frame in opening]
        if transport in ("xhr_streaming", "eventsource"):
            assert len(rest) == 1 and len(rest[0]) > FILL, [f[:40] for f in rest]
        else:
            assert rest == []  # a poll ends after one frame

        later = receiving_request(
            http,
            session,
            transport,
            later_query,
            {"Cookie": "token=other", "X-Test": "later"},
        )
        async with contextlib.aclosing(later):
            # As sockjs-client does: a receiving request is out when it sends.
            greeting = asyncio.ensure_future(anext(later))
            try:
                held = sockjs_session(rec)
                await wait_until(lambda: held.held, timeout=TIMEOUT)
                # The session keeps the opening request's data, whichever
                # request holds it now.
                assert held.request.headers["X-Test"] == "opening"
                await send(http, session, transport, "sub,rec")
                async with asyncio.timeout(TIMEOUT):
                    assert await greeting == 'a["msg,rec,ready"]'
            finally:
                greeting.cancel()

    (request,) = rec.requests
    assert request.query == opening_query
    assert request.cookies == {"token": "s3cret", "theme": "dark"}
    assert request.headers["x-test"] == "opening"
    assert request.remote_address == "127.0.0.1"
    assert request.path.endswith(f"/{transport}")


# -- 3. a slow channel does not hold up the others --------------------------------


Carrier = RawWebSocketCarrier | SockJSWebSocketCarrier | SockJSXhrPollingCarrier


async def connect(kind: str, url: str) -> Any:
    """A carrier of ``kind`` connected to the SockJS endpoint at ``url``."""
    ws_url = url.replace("http", "ws")
    connecting: dict[str, Callable[[], Awaitable[Carrier]]] = {
        "raw": lambda: RawWebSocketCarrier.connect(f"{ws_url}/websocket"),
        "websocket": lambda: SockJSWebSocketCarrier.connect(ws_url),
        "xhr-polling": lambda: SockJSXhrPollingCarrier.connect(url),
    }
    async with asyncio.timeout(TIMEOUT):
        return await connecting[kind]()


async def receive(carrier: Carrier) -> str | None:
    async with asyncio.timeout(TIMEOUT):
        return await carrier.receive()


@pytest.mark.parametrize("kind", ["websocket", "xhr-polling"])
async def test_a_slow_handler_does_not_delay_another_channel(
    services: tuple[Services, str], kind: str
) -> None:
    rec, url = services
    carrier: Carrier = await connect(kind, url)
    try:
        for frame in ("sub,slow", "sub,fast", "msg,slow,first", "msg,fast,second"):
            async with asyncio.timeout(TIMEOUT):
                await carrier.send(frame)
        # "first" waits in the slow handler; "second" overtakes it.
        assert await receive(carrier) == "msg,fast,second"
        assert not rec.release.is_set()
        rec.release.set()
        assert await receive(carrier) == "msg,slow,first"
    finally:
        await carrier.close()


# -- 4. nothing left in memory after a disconnect -----------------------------------


def live_channels(server: MultiplexServer) -> list[Channel]:
    """Channels of ``server`` still in memory (Channel has no weakref slot)."""
    return [
        obj
        for obj in gc.get_objects()
        if type(obj) is Channel and obj.connection.server is server
    ]


async def assert_freed(services: Services) -> None:
    """Bounded: objects freed by a task that is still finishing get a moment."""
    for _ in range(100):  # 5 s at most
        gc.collect()
        if all(ref() is None for ref in services.connections) and not live_channels(
            services.server
        ):
            return
        await asyncio.sleep(0.05)
    kept = [ref() for ref in services.connections if ref() is not None]
    kept += live_channels(services.server)
    holders = [
        type(holder).__name__
        for obj in kept
        for holder in gc.get_referrers(obj)
        if holder is not kept
    ]
    pytest.fail(f"still alive after a disconnect: {kept}, held by {holders}")


async def open_two_channels(carrier: Carrier) -> None:
    async with asyncio.timeout(TIMEOUT):
        for name in ("rec", "fast"):
            await carrier.send(f"sub,{name}")
        await carrier.send("msg,fast,ping")
        got = {await carrier.receive(), await carrier.receive()}
    assert got == {"msg,rec,ready", "msg,fast,ping"}


@pytest.mark.parametrize("kind", ["raw", "websocket"])
async def test_connection_and_channels_are_freed_after_a_websocket_disconnect(
    services: tuple[Services, str], kind: str
) -> None:
    rec, url = services
    carrier: Carrier = await connect(kind, url)
    await open_two_channels(carrier)
    assert len(live_channels(rec.server)) == 2  # the scan does see them
    assert rec.connections[0]() is not None
    await carrier.close()
    # The handler learns of the close in its own task, after the server
    # forgot the connection: wait for both.
    await wait_until(lambda: not rec.server.connections and rec.closed, timeout=TIMEOUT)
    assert rec.closed == [CloseReason.CONNECTION_LOST]
    await assert_freed(rec)


async def test_connection_and_channels_are_freed_when_a_poller_goes_away() -> None:
    """The client stops polling: the session expires after disconnect_delay
    (its timer fires then), then nothing of it may stay."""
    rec = Services()
    async with running(rec, disconnect_delay=0.5) as url:
        carrier = await connect("xhr-polling", url)
        await open_two_channels(carrier)
        assert len(live_channels(rec.server)) == 2
        await carrier.close()
        await wait_until(lambda: not rec.server.connections and rec.closed, timeout=12)
        assert rec.closed == [CloseReason.CONNECTION_LOST]
        await assert_freed(rec)


async def test_connection_and_channels_are_freed_after_a_dropped_poll(
    services: tuple[Services, str],
) -> None:
    rec, url = services
    carrier = await connect("xhr-polling", url)
    await open_two_channels(carrier)
    held = sockjs_session(rec)
    async with client() as http:
        idle = await http.post(f"{carrier.url}/xhr")
        await wait_until(lambda: held.held, timeout=TIMEOUT)
        idle.close()
        await wait_until(lambda: not rec.server.connections, timeout=TIMEOUT)
    await carrier.close()
    assert rec.closed == [CloseReason.CONNECTION_LOST]
    await assert_freed(rec)
