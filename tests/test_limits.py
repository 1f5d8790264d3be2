"""Every limit of ``Limits``, at the core and through a connection."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

import pytest

from websocket_multiplex import (
    Channel,
    CloseReason,
    Limits,
    MultiplexServer,
    RequestInfo,
)
from websocket_multiplex.events import ChannelOpened, ChannelRefused, LimitExceeded
from websocket_multiplex.protocol import ServerProtocol
from websocket_multiplex.testing import connect_in_memory

from .asyncio.helpers import frames, settle


def core(limits: Limits) -> ServerProtocol:
    return ServerProtocol(lambda topic: True, limits)


def test_limits_must_be_positive() -> None:
    with pytest.raises(ValueError, match="max_channels"):
        Limits(max_channels=0)


def test_an_oversized_message_closes_only_its_channel() -> None:
    protocol = core(Limits(max_frame_size=20))
    protocol.receive("sub,a")
    assert protocol.receive("msg,a," + "x" * 20) == LimitExceeded(
        "max_frame_size", "a", "413 message too large"
    )
    assert protocol.receive("sub," + "b" * 30) is None  # other frames: ignored
    assert protocol.counters.limits_hit == {"max_frame_size": 2}


def test_long_topics_are_ignored_without_reply() -> None:
    protocol = core(Limits(max_topic_length=8))
    assert protocol.receive("sub," + "t" * 9) is None
    assert protocol.receive("sub," + "t" * 8) == ChannelOpened("t" * 8)
    assert protocol.counters.limits_hit == {"max_topic_length": 1}


def test_channels_per_connection() -> None:
    protocol = core(Limits(max_channels=2))
    assert protocol.receive("sub,a") == ChannelOpened("a")
    assert protocol.receive("sub,b") == ChannelOpened("b")
    assert protocol.receive("sub,c") == ChannelRefused("c", "429 too many channels")
    protocol.receive("uns,a")
    assert protocol.receive("sub,c") == ChannelOpened("c")


def test_subscribe_rate_is_a_token_bucket() -> None:
    protocol = core(Limits(subscribe_rate=2.0, subscribe_burst=3, max_channels=100))
    assert [protocol.receive(f"sub,t{i}", now=10.0) for i in range(3)] == [
        ChannelOpened(f"t{i}") for i in range(3)
    ]
    assert protocol.receive("sub,t3", now=10.0) == LimitExceeded("subscribe_rate")
    assert protocol.receive("sub,t4", now=10.5) == ChannelOpened("t4")  # 1 earned
    assert protocol.receive("sub,t5", now=10.5) == LimitExceeded("subscribe_rate")
    assert protocol.receive("sub,t6", now=100.0) == ChannelOpened("t6")


# -- through a connection --------------------------------------------------------


async def test_a_handler_that_does_not_read_sheds_only_its_channel() -> None:
    server = MultiplexServer(limits=Limits(max_queue=3))
    release = asyncio.Event()

    @server.channel("lazy")
    async def lazy(channel: Channel) -> None:
        await release.wait()

    @server.channel("echo")
    async def echo(channel: Channel) -> None:
        async for data in channel:
            await channel.send(data)

    client = await connect_in_memory(server)
    await client.send("sub,lazy")
    await client.send("sub,echo")
    for i in range(4):
        await client.send(f"msg,lazy,{i}")
    assert await frames(client, 2) == ["err,lazy,503 channel overloaded", "uns,lazy"]
    await client.send("msg,echo,fine")
    assert await frames(client, 1) == ["msg,echo,fine"]
    release.set()
    await client.close()


async def test_an_oversized_message_closes_its_channel_with_413() -> None:
    server = MultiplexServer(limits=Limits(max_frame_size=50))
    closed: asyncio.Queue[CloseReason] = asyncio.Queue()

    @server.channel("big")
    async def big(channel: Channel) -> None:
        closed.put_nowait(await channel.wait_closed())

    client = await connect_in_memory(server)
    await client.send("sub,big")
    await client.send("msg,big," + "x" * 50)
    assert await frames(client, 2) == ["err,big,413 message too large", "uns,big"]
    assert await closed.get() is CloseReason.LIMIT_EXCEEDED
    await client.close()


async def test_a_subscribe_flood_closes_the_connection() -> None:
    server = MultiplexServer(limits=Limits(subscribe_burst=5, subscribe_rate=0.001))
    client = await connect_in_memory(server)
    for i in range(6):
        await client.send(f"sub,unknown{i}")
    received = await frames(client, 11)  # 5 refusals (err, uns), then the close
    assert received[-1] is None
    assert client.transport.closed_with == (4029, "too many subscriptions")
    assert server.connections == set()


@dataclass(eq=False)
class StuckTransport:
    """A client that stopped reading: every send hangs."""

    request: RequestInfo = field(default_factory=RequestInfo)
    closed_with: tuple[int, str] | None = None
    never: asyncio.Event = field(default_factory=asyncio.Event)

    async def send(self, text: str) -> None:
        await self.never.wait()

    async def close(self, code: int, reason: str) -> None:
        self.closed_with = (code, reason)


async def test_a_slow_client_is_closed_after_the_timeout() -> None:
    server = MultiplexServer(limits=Limits(write_limit=100, slow_client_timeout=0.05))
    outcome: asyncio.Queue[CloseReason | None] = asyncio.Queue()

    @server.channel("firehose")
    async def firehose(channel: Channel) -> None:
        try:
            for _ in range(1000):
                await channel.send("x" * 50)
        finally:
            outcome.put_nowait(channel.close_reason)

    transport = StuckTransport()
    connection = server.accept(transport)
    connection.receive("sub,firehose")
    async with asyncio.timeout(5):
        assert await outcome.get() is CloseReason.LIMIT_EXCEEDED
    await settle()
    assert transport.closed_with == (4008, "slow client")
    assert connection.closed
    await connection.connection_lost()
