"""The Python client against our server, over every endpoint it offers.

``sockjs``: SockJS (an ``http://`` URL); ``websocket``: the raw WebSocket
endpoint of the same SockJS server; ``asgi``: the ASGI adapter under
uvicorn. The server runs in this event loop on 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from websocket_multiplex import (
    Channel,
    ChannelClosed,
    ChannelGap,
    CloseReason,
    DisconnectCause,
    Disconnection,
    MultiplexServer,
)
from websocket_multiplex.adapters.aiohttp import (
    add_sockjs_endpoint,
    add_websocket_route,
)
from websocket_multiplex.asyncio.client import ClientState, MultiplexClient
from websocket_multiplex.client import connect

from ..support.proxy import Proxy, hang_up
from .support import (
    FAST,
    PAYLOADS,
    TIMEOUT,
    WEIRD,
    Recorder,
    States,
    cut_connections,
    make_server,
    serving,
    sockjs_app,
    uvicorn_serving,
)


@dataclass
class Endpoint:
    url: str
    port: int
    server: MultiplexServer
    recorder: Recorder

    def via(self, proxy: Proxy) -> str:
        return self.url.replace(f":{self.port}/", f":{proxy.port}/")


@pytest.fixture(params=["sockjs", "websocket", "asgi"])
async def endpoint(request: pytest.FixtureRequest) -> AsyncIterator[Endpoint]:
    server, recorder = make_server()
    if request.param == "asgi":
        async with uvicorn_serving(server) as port:
            url = f"ws://127.0.0.1:{port}/multiplex"
            yield Endpoint(url, port, server, recorder)
        return
    async with serving(sockjs_app(server)) as port:
        base = f"127.0.0.1:{port}/multiplex"
        sockjs = request.param == "sockjs"
        url = f"http://{base}" if sockjs else f"ws://{base}/websocket"
        yield Endpoint(url, port, server, recorder)


@pytest.fixture
async def client(endpoint: Endpoint) -> AsyncIterator[MultiplexClient]:
    async with connect(endpoint.url, reconnect=False) as client:
        yield client


async def closed(channel: Any) -> CloseReason:
    async with asyncio.timeout(TIMEOUT):
        reason: CloseReason = await channel.wait_closed()
        return reason


async def test_the_demo_services(client: MultiplexClient) -> None:
    ann, bob = await client.channel("ann"), await client.channel("bob")
    assert await ann.receive(TIMEOUT) == "Ann says hi!"
    assert await bob.receive(TIMEOUT) == "Bob doesn't agree."
    await ann.send("hello, world")
    await bob.send("cake")
    assert await ann.receive(TIMEOUT) == "Ann nods: hello, world"
    assert await bob.receive(TIMEOUT) == "Bob says no to: cake"
    echo = await client.channel("echo")
    await echo.send("ping")
    assert await echo.receive(TIMEOUT) == "ping"


async def test_server_side_close(client: MultiplexClient) -> None:
    carl = await client.channel("carl")
    assert await closed(carl) is CloseReason.SERVER_CLOSED
    assert await carl.receive() == "Carl says goodbye!"  # the last word stays
    with pytest.raises(ChannelClosed):
        await carl.receive()
    with pytest.raises(ChannelClosed):
        await carl.send("too late")
    assert carl not in client.channels


async def test_names_are_escaped(client: MultiplexClient) -> None:
    weird = await client.channel(WEIRD)
    assert weird.topic == "weird%20name%2C%FC/%25%uD83D%uDE00"
    await weird.send("reached")
    assert await weird.receive(TIMEOUT) == "reached"


async def test_payloads_arrive_unchanged_and_in_order(client: MultiplexClient) -> None:
    echo = await client.channel("echo")
    for payload in PAYLOADS:
        await echo.send(payload)
    assert [await echo.receive(TIMEOUT) for _ in PAYLOADS] == PAYLOADS


async def test_unknown_service_is_refused_with_the_notice(
    client: MultiplexClient,
) -> None:
    nope = await client.channel("nope")
    assert await closed(nope) is CloseReason.REFUSED
    assert nope.close_detail.startswith("404 ")
    ann = await client.channel("ann")  # the connection is fine
    assert await ann.receive(TIMEOUT) == "Ann says hi!"


async def test_two_channels_of_one_name_are_independent(
    client: MultiplexClient,
) -> None:
    first, second = await client.channel("echo"), await client.channel("echo")
    assert first.topic != second.topic
    await first.send("one")
    await second.send("two")
    assert await first.receive(TIMEOUT) == "one"
    assert await second.receive(TIMEOUT) == "two"
    await first.close()
    await second.send("still here")
    assert await second.receive(TIMEOUT) == "still here"
    ann_a, ann_b = await client.channel("ann"), await client.channel("ann")
    assert await ann_a.receive(TIMEOUT) == "Ann says hi!"
    assert await ann_b.receive(TIMEOUT) == "Ann says hi!"


async def test_connection_close_closes_every_channel(endpoint: Endpoint) -> None:
    # cut_connections closes with 3000 "cut by the test": SockJS sends it
    # as c[3000,"cut by the test"], the WebSocket endpoints as a close frame.
    states = States()
    client = await connect(endpoint.url, reconnect=False, on_state=states)
    ann, echo = await client.channel("ann"), await client.channel("echo")
    assert await ann.receive(TIMEOUT) == "Ann says hi!"
    assert await cut_connections(endpoint.server) == 1
    assert await closed(ann) is CloseReason.CONNECTION_LOST
    assert await closed(echo) is CloseReason.CONNECTION_LOST
    assert client.state is ClientState.CLOSED
    assert states.seen == [ClientState.CONNECTING, ClientState.OPEN, ClientState.CLOSED]
    assert client.disconnection == Disconnection(
        DisconnectCause.SERVER, code=3000, reason="cut by the test"
    )
    assert states.reasons[-1] == "closed by the server: 3000 cut by the test"
    with pytest.raises(ChannelClosed):
        await echo.send("x")
    with pytest.raises(Exception, match="closed"):
        await client.channel("ann")
    await client.close()


async def test_receive_timeout_leaves_the_channel_usable(
    client: MultiplexClient,
) -> None:
    echo = await client.channel("echo")
    with pytest.raises(TimeoutError):
        await echo.receive(timeout=0.05)
    await echo.send("later")
    assert await echo.receive(TIMEOUT) == "later"


async def test_async_iteration_ends_when_the_channel_closes(
    client: MultiplexClient,
) -> None:
    carl = await client.channel("carl")
    async with asyncio.timeout(TIMEOUT):
        assert [message async for message in carl] == ["Carl says goodbye!"]


async def test_async_with_unsubscribes(endpoint: Endpoint) -> None:
    async with connect(endpoint.url, reconnect=False) as client:
        async with client.channel("rec") as rec:
            assert await rec.receive(TIMEOUT) == "ready"
        assert rec.close_reason is CloseReason.CLIENT_CLOSED
        async with asyncio.timeout(TIMEOUT):
            assert await endpoint.recorder.closed.get() is CloseReason.CLIENT_CLOSED
    assert client.state is ClientState.CLOSED


async def test_a_full_inbox_closes_the_channel_and_unsubscribes(
    endpoint: Endpoint,
) -> None:
    async with connect(endpoint.url, reconnect=False, max_queue=3) as client:
        rec, echo = await client.channel("rec"), await client.channel("echo")
        await rec.send("flood 10")
        assert await closed(rec) is CloseReason.INBOX_FULL
        async with asyncio.timeout(TIMEOUT):
            # the server saw the client's uns, not a lost connection
            assert await endpoint.recorder.closed.get() is CloseReason.CLIENT_CLOSED
        assert [m async for m in rec] == ["ready", "0", "1"]  # what fitted
        await echo.send("unaffected")
        assert await echo.receive(TIMEOUT) == "unaffected"


async def test_send_during_reconnection_waits_then_goes_through(
    endpoint: Endpoint,
) -> None:
    async with Proxy(endpoint.port) as proxy:
        states = States()
        client = await connect(
            endpoint.via(proxy), reconnect=FAST, on_state=states, resume=False
        )
        echo = await client.channel("echo")
        await echo.send("before")
        assert await echo.receive(TIMEOUT) == "before"
        proxy.refuse = hang_up  # the server is "down": attempts fail
        proxy.abort()
        async with asyncio.timeout(TIMEOUT):
            await client.wait_for(ClientState.RECONNECTING)
        sending = asyncio.create_task(echo.send("during"))
        attempts = proxy.connections
        async with asyncio.timeout(TIMEOUT):
            await proxy.wait_connections(attempts + 2)  # two more failed attempts
        assert not sending.done()
        proxy.refuse = None  # the server is back
        async with asyncio.timeout(TIMEOUT):
            await sending
        assert await echo.receive(TIMEOUT) == "during"
        assert client.state is ClientState.OPEN
        assert echo.gaps == 1
        assert states.seen[:2] == [ClientState.CONNECTING, ClientState.OPEN]
        assert states.seen[-1] is ClientState.OPEN
        assert ClientState.RECONNECTING in states.seen
        await client.close()


async def test_client_close_closes_every_open_channel(endpoint: Endpoint) -> None:
    states = States()
    client = await connect(endpoint.url, reconnect=False, on_state=states)
    rec, ann = await client.channel("rec"), await client.channel("ann")
    echo, carl = await client.channel("echo"), await client.channel("carl")
    assert await rec.receive(TIMEOUT) == "ready"
    assert await closed(carl) is CloseReason.SERVER_CLOSED  # before: stays so
    await client.close()
    for channel in (rec, ann, echo):
        assert channel.close_reason is CloseReason.CLIENT_CLOSED, channel
    assert carl.close_reason is CloseReason.SERVER_CLOSED
    assert client.channels == []
    async with asyncio.timeout(TIMEOUT):  # the server got rec's uns
        assert await endpoint.recorder.closed.get() is CloseReason.CLIENT_CLOSED
    assert client.state is ClientState.CLOSED
    assert client.disconnection == Disconnection(DisconnectCause.APPLICATION)
    assert states.seen[-1] is ClientState.CLOSED
    assert states.reasons[-1] == "closed by the application"
    with pytest.raises(ChannelClosed):
        await echo.send("x")
    assert [m async for m in ann] == ["Ann says hi!"]  # received, then the end


async def test_reconnects_by_default_and_reports_the_gap_in_order(
    endpoint: Endpoint,
) -> None:
    states = States()
    async with connect(endpoint.url, on_state=states, resume=False) as client:
        ann = await client.channel("ann", report_gaps=True)
        echo = await client.channel("echo")
        await echo.send("before")
        assert await echo.receive(TIMEOUT) == "before"
        assert await ann.receive(TIMEOUT) == "Ann says hi!"
        await ann.send("before")
        assert await ann.receive(TIMEOUT) == "Ann nods: before"  # the old one
        assert await cut_connections(endpoint.server) == 1
        async with asyncio.timeout(TIMEOUT):
            await states.wait_count(ClientState.OPEN, 2)
        assert ClientState.RECONNECTING in states.seen
        reconnecting = states.reasons[states.seen.index(ClientState.RECONNECTING)]
        assert reconnecting.startswith("attempt 1 in ")
        assert reconnecting.endswith("; closed by the server: 3000 cut by the test")
        with pytest.raises(ChannelGap) as gap:  # then the cut
            await ann.receive(TIMEOUT)
        assert await ann.receive(TIMEOUT) == "Ann says hi!"  # the new one
        assert gap.value.reconnections == 1
        assert gap.value.disconnection.cause is DisconnectCause.SERVER
        assert gap.value.disconnection.code == 3000
        assert (ann.gaps, echo.gaps) == (1, 1)
        await echo.send("after")  # no report_gaps: plain messages only
        assert await echo.receive(TIMEOUT) == "after"


async def test_the_query_of_the_url_reaches_the_server(endpoint: Endpoint) -> None:
    # SockJS URLs get the session path inserted before the query.
    async def query(channel: Channel) -> None:
        await channel.send(json.dumps(channel.request.query))

    endpoint.server.register("query", query)
    url = f"{endpoint.url}?token=1&name=a%20b"
    async with connect(url, reconnect=False) as client:
        channel = await client.channel("query")
        query_seen = json.loads(await channel.receive(TIMEOUT))
    assert query_seen == {"token": "1", "name": "a b"}


@pytest.mark.parametrize("kind", ["sockjs", "websocket"])
async def test_pings_are_answered_and_heartbeats_ignored(kind: str) -> None:
    # The server pings every 0.2 s and drops a client whose pong is late;
    # over SockJS it also sends "h" frames. The client sends no pings of
    # its own (heartbeat=None): only answering the server's keeps it up.
    server, _ = make_server()
    app = web.Application()
    if kind == "sockjs":
        add_sockjs_endpoint(
            app, server, sockjs_url="http://127.0.0.1:1/unused.js", heartbeat_delay=0.2
        )
    else:
        add_websocket_route(app, server, heartbeat=0.2)
    async with serving(app) as port:
        base = f"127.0.0.1:{port}/multiplex"
        url = f"http://{base}" if kind == "sockjs" else f"ws://{base}/websocket"
        ws_url = f"ws://{base}/000/control/websocket" if kind == "sockjs" else url
        await check_the_server_beats(ws_url, sockjs=kind == "sockjs")
        states = States()
        client = await connect(url, reconnect=False, heartbeat=None, on_state=states)
        echo = await client.channel("echo")
        await asyncio.sleep(1.0)  # idle: five pings, five "h" frames
        await echo.send("still here")
        assert await echo.receive(TIMEOUT) == "still here"
        assert states.seen == [ClientState.CONNECTING, ClientState.OPEN]
        await client.close()


async def check_the_server_beats(ws_url: str, sockjs: bool) -> None:
    """A client that does not answer pings is pinged, then dropped; SockJS
    also sends ``h``. Without this the heartbeat test could not fail."""
    seen: list[aiohttp.WSMsgType | str] = []
    async with aiohttp.ClientSession() as http, asyncio.timeout(TIMEOUT):
        ws = await http.ws_connect(ws_url, autoping=False)
        while not ws.closed:
            message = await ws.receive()
            seen.append(
                message.data if message.type is aiohttp.WSMsgType.TEXT else message.type
            )
    assert aiohttp.WSMsgType.PING in seen, seen
    if sockjs:
        assert seen[0] == "o", seen
        assert "h" in seen, seen


def test_connect_used_without_await_says_how_to_use_it() -> None:
    from websocket_multiplex.client import connect

    opening = connect("ws://127.0.0.1:1/never-dialled")
    with pytest.raises(AttributeError, match=r"await connect\(url\).*async with"):
        opening.channel  # noqa: B018 - the attribute is what fails
    with pytest.raises(AttributeError, match="no_such_thing"):
        opening.no_such_thing  # type: ignore[attr-defined]  # noqa: B018
