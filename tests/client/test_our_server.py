"""The Python client against our server, over every endpoint it offers.

``sockjs``: SockJS (an ``http://`` URL); ``websocket``: the raw WebSocket
endpoint of the same SockJS server; ``asgi``: the ASGI adapter under
uvicorn. The server runs in this event loop on 127.0.0.1.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest

from websocket_multiplex import ChannelClosed, CloseReason, MultiplexServer
from websocket_multiplex.asyncio.client import ClientState, MultiplexClient
from websocket_multiplex.client import connect

from .support import (
    FAST,
    PAYLOADS,
    TIMEOUT,
    WEIRD,
    Proxy,
    Recorder,
    States,
    cut_connections,
    hang_up,
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
    states = States()
    client = await connect(endpoint.url, reconnect=False, on_state=states)
    ann, echo = await client.channel("ann"), await client.channel("echo")
    assert await ann.receive(TIMEOUT) == "Ann says hi!"
    assert await cut_connections(endpoint.server) == 1
    assert await closed(ann) is CloseReason.CONNECTION_LOST
    assert await closed(echo) is CloseReason.CONNECTION_LOST
    assert client.state is ClientState.CLOSED
    assert states.seen == [ClientState.OPEN, ClientState.CLOSED]
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
        client = await connect(endpoint.via(proxy), reconnect=FAST, on_state=states)
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
        assert states.seen[0] is ClientState.OPEN
        assert states.seen[-1] is ClientState.OPEN
        assert ClientState.RECONNECTING in states.seen
        await client.close()
