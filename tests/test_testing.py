"""The test doubles themselves: the conformance check passes and can fail."""

from __future__ import annotations

import pytest

from websocket_multiplex import (
    Channel,
    ClientState,
    CloseReason,
    DisconnectCause,
    Disconnection,
    MultiplexClient,
    MultiplexServer,
)
from websocket_multiplex.asyncio.client import Carrier
from websocket_multiplex.codes import GOING_AWAY, CloseCode
from websocket_multiplex.testing import (
    ClientCarrier,
    MemoryClient,
    check_adapter_conformance,
    conformance_server,
    connect_in_memory,
)


async def test_conformance_in_memory() -> None:
    server = conformance_server()
    await check_adapter_conformance(lambda: connect_in_memory(server))
    assert server.connections == set()  # the check closed its carrier


async def test_memory_client_is_a_client_carrier() -> None:
    client: ClientCarrier = await connect_in_memory(MultiplexServer())
    assert isinstance(client, ClientCarrier)
    await client.close()


def test_there_is_one_client_carrier_protocol() -> None:
    assert ClientCarrier is Carrier


def shouting_server() -> MultiplexServer:
    """``echo`` answers each message, ``shout`` the same in capitals."""
    server = MultiplexServer()

    @server.channel("echo")
    async def echo(channel: Channel) -> None:
        async for data in channel:
            await channel.send(data)

    @server.channel("shout")
    async def shout(channel: Channel) -> None:
        async for data in channel:
            await channel.send(data.upper())

    return server


async def test_a_client_and_a_server_talk_in_memory_on_two_channels() -> None:
    server = shouting_server()
    async with MultiplexClient(lambda: connect_in_memory(server)) as client:
        await client.start()
        echo, shout = await client.channel("echo"), await client.channel("shout")
        await echo.send("a,b,,c")
        await shout.send("hello")
        await shout.send("again")
        assert await shout.receive(timeout=5) == "HELLO"
        assert await echo.receive(timeout=5) == "a,b,,c"
        assert await shout.receive(timeout=5) == "AGAIN"
        await echo.close()
        await shout.send("still here")
        assert await shout.receive(timeout=5) == "STILL HERE"
        assert echo.close_reason is CloseReason.CLIENT_CLOSED
    assert client.state is ClientState.CLOSED
    assert server.connections == set()  # closing the client closed its carrier


async def test_the_server_closing_reaches_the_client_with_its_code() -> None:
    server = shouting_server()
    client = MultiplexClient(lambda: connect_in_memory(server), reconnect=None)
    await client.start()
    echo = await client.channel("echo")
    await echo.send("ping")
    assert await echo.receive(timeout=5) == "ping"
    await server.close()
    await client.wait_for(ClientState.CLOSED, timeout=5)
    assert client.disconnection == Disconnection(
        DisconnectCause.SERVER, code=CloseCode.GOING_AWAY, reason="server shutdown"
    )
    assert echo.close_detail == GOING_AWAY  # no reconnection: the channel ends
    await client.close()


class DropsCommas(MemoryClient):
    """A carrier that mangles payloads, as a broken adapter might."""

    async def receive(self) -> str | None:
        text = await super().receive()
        return None if text is None else text.replace(",,", ",")


async def test_conformance_check_catches_a_broken_carrier() -> None:
    server = conformance_server()

    async def connect() -> DropsCommas:
        client = await connect_in_memory(server)
        return DropsCommas(client.connection, client.transport)

    with pytest.raises(AssertionError, match="expected"):
        await check_adapter_conformance(connect, timeout=1.0)
