"""The Python client against the ORIGINAL server: npm websocket-multiplex
0.1.0 on sockjs-node 0.3.24 (tests/node/reference_server.js), over SockJS
(``http://``) and over its raw WebSocket endpoint (``ws://.../websocket``).

The original speaks only the base protocol: it sends no ``err`` and ignores
a ``sub`` to a topic it does not know, so our extensions must fall back.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from websocket_multiplex import ChannelClosed, CloseReason
from websocket_multiplex.asyncio.client import ClientState
from websocket_multiplex.client import connect

from .support import (
    FAST,
    PAYLOADS,
    REFERENCE_SERVER,
    TIMEOUT,
    WEIRD,
    WEIRD_NAMES_SERVER,
    NodeServer,
    States,
)

VECTORS = {  # PROTOCOL.md, "Topics and names"
    WEIRD: "weird%20name%2C%FC/%25%uD83D%uDE00",
    "日本": "%u65E5%u672C",
    "~!#$&()=?": "%7E%21%23%24%26%28%29%3D%3F",
    "a@*_+-./b": "a@*_+-./b",
}


@pytest.fixture(scope="module")
def node() -> Iterator[NodeServer]:
    args = ["--host", "127.0.0.1", "--port", "0", "--events"]
    server = NodeServer(REFERENCE_SERVER, *args)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def weird_node() -> Iterator[NodeServer]:
    server = NodeServer(WEIRD_NAMES_SERVER, json.dumps(list(VECTORS)))
    yield server
    server.stop()


@dataclass(frozen=True)
class Endpoint:
    """Where the client connects, and over which SockJS transport."""

    url: str
    transport: str = "websocket"

    def connect(self, **options: Any) -> connect:
        return connect(self.url, transport=self.transport, **options)


@pytest.fixture(params=["sockjs", "xhr-polling", "websocket"])
def url(request: pytest.FixtureRequest, node: NodeServer) -> Endpoint:
    if request.param == "websocket":
        return Endpoint(node.websocket)
    if request.param == "xhr-polling":
        return Endpoint(node.url, "xhr-polling")
    return Endpoint(node.url)


async def close_every_connection(node: NodeServer) -> None:
    """The original closes every connection it has: ours, and maybe an
    xhr-polling one of an earlier test that it keeps for its
    disconnect_delay (5 s) after the client stopped polling."""
    closed = await asyncio.to_thread(node.command, "close")
    assert closed["closed"] >= 1


async def node_event(node: NodeServer, **fields: Any) -> dict[str, Any]:
    return await asyncio.to_thread(node.wait_for, **fields)


async def test_the_demo_services(url: Endpoint) -> None:
    async with url.connect(reconnect=False) as client:
        ann, bob = await client.channel("ann"), await client.channel("bob")
        echo = await client.channel("echo")
        assert await ann.receive(TIMEOUT) == "Ann says hi!"
        assert await bob.receive(TIMEOUT) == "Bob doesn't agree."
        await ann.send("hello, world")
        await bob.send("cake")
        await echo.send("ping")
        assert await ann.receive(TIMEOUT) == "Ann nods: hello, world"
        assert await bob.receive(TIMEOUT) == "Bob says no to: cake"
        assert await echo.receive(TIMEOUT) == "ping"


async def test_payloads_arrive_unchanged_and_in_order(url: Endpoint) -> None:
    async with url.connect(reconnect=False) as client:
        echo = await client.channel("echo")
        for payload in PAYLOADS:
            await echo.send(payload)
        assert [await echo.receive(TIMEOUT) for _ in PAYLOADS] == PAYLOADS


async def test_server_side_close(url: Endpoint) -> None:
    async with url.connect(reconnect=False) as client:
        carl = await client.channel("carl")
        async with asyncio.timeout(TIMEOUT):
            assert [m async for m in carl] == ["Carl says goodbye!"]
        assert carl.close_reason is CloseReason.SERVER_CLOSED
        assert carl.close_detail == ""  # the original sends no notice
        with pytest.raises(ChannelClosed):
            await carl.send("too late")


@pytest.mark.parametrize("kind", ["sockjs", "websocket"])
async def test_names_are_escaped_as_the_original_does(
    weird_node: NodeServer, kind: str
) -> None:
    url = weird_node.url if kind == "sockjs" else weird_node.websocket
    async with connect(url, reconnect=False) as client:
        for name, topic in VECTORS.items():
            channel = await client.channel(name)
            assert channel.topic == topic
            await channel.send(f"to {name}, with a comma")
            assert await channel.receive(TIMEOUT) == f"to {name}, with a comma"


async def test_client_close_reaches_the_original(node: NodeServer) -> None:
    async with connect(node.websocket, reconnect=False) as client:
        async with client.channel("bob") as bob:
            assert await bob.receive(TIMEOUT) == "Bob doesn't agree."
        event = await node_event(node, event="channel-closed", service="bob")
        assert event["conn"] > 0


async def test_unknown_service_is_silently_ignored(url: Endpoint) -> None:
    # No err, no uns: the original's way (PROTOCOL.md, "Known limits").
    async with url.connect(reconnect=False) as client:
        nope = await client.channel("nope")
        with pytest.raises(TimeoutError):
            await nope.receive(timeout=0.2)
        assert not nope.closed
        ann = await client.channel("ann")
        assert await ann.receive(TIMEOUT) == "Ann says hi!"


async def test_connection_close_closes_every_channel(
    node: NodeServer, url: Endpoint
) -> None:
    async with url.connect(reconnect=False) as client:
        ann, echo = await client.channel("ann"), await client.channel("echo")
        assert await ann.receive(TIMEOUT) == "Ann says hi!"
        await close_every_connection(node)
        async with asyncio.timeout(TIMEOUT):
            assert await ann.wait_closed() is CloseReason.CONNECTION_LOST
            assert await echo.wait_closed() is CloseReason.CONNECTION_LOST
        assert client.state is ClientState.CLOSED


async def test_reconnection_resubscribes_on_the_original(
    node: NodeServer, url: Endpoint
) -> None:
    states = States()
    async with url.connect(reconnect=FAST, on_state=states) as client:
        ann, echo = await client.channel("ann"), await client.channel("echo")
        assert await ann.receive(TIMEOUT) == "Ann says hi!"
        await close_every_connection(node)
        assert await ann.receive(TIMEOUT) == "Ann says hi!"  # subscribed again
        assert client.state is ClientState.OPEN
        assert states.seen == [
            ClientState.CONNECTING,
            ClientState.OPEN,
            ClientState.RECONNECTING,
            ClientState.OPEN,
        ]
        await echo.send("after")
        assert await echo.receive(TIMEOUT) == "after"
        assert (ann.gaps, echo.gaps) == (1, 1)
