"""Every limit of ``Limits``, at the core and through a connection."""

from __future__ import annotations

import asyncio
import logging
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

from .asyncio.helpers import frames, item, nothing_sent, settle


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


def shed_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.levelno == logging.WARNING and "shedding" in r.getMessage()
    ]


@dataclass
class Lazy:
    """Services whose handlers read nothing until released, then report
    what they read and why their channel closed."""

    server: MultiplexServer
    release: asyncio.Event = field(default_factory=asyncio.Event)
    read: asyncio.Queue[tuple[str, list[str], CloseReason]] = field(
        default_factory=asyncio.Queue
    )

    def add(self, name: str) -> None:
        @self.server.channel(name)
        async def lazy(channel: Channel) -> None:
            await self.release.wait()
            messages = [data async for data in channel]
            assert channel.close_reason is not None
            self.read.put_nowait((channel.name, messages, channel.close_reason))


def with_echo(server: MultiplexServer) -> MultiplexServer:
    @server.channel("echo")
    async def echo(channel: Channel) -> None:
        async for data in channel:
            await channel.send(data)

    return server


async def test_a_handler_that_does_not_read_sheds_only_its_channel(
    caplog: pytest.LogCaptureFixture,
) -> None:
    server = with_echo(MultiplexServer(limits=Limits(max_queue=3)))
    lazy = Lazy(server)
    lazy.add("lazy")
    client = await connect_in_memory(server)
    await client.send("sub,lazy")
    await client.send("sub,echo")
    with caplog.at_level(logging.WARNING, logger="websocket_multiplex"):
        for i in range(3):
            await client.send(f"msg,lazy,{i}")
        assert client.connection.counters.limits_hit == {}  # 3 fit
        await client.send("msg,lazy,3")
        assert await frames(client, 2) == [
            "err,lazy,503 channel overloaded",
            "uns,lazy",
        ]
    assert client.connection.counters.limits_hit == {"max_queue": 1}
    (line,) = shed_warnings(caplog)
    assert "max_queue reached" in line and "'lazy'" in line
    await client.send("msg,echo,fine")
    assert await frames(client, 1) == ["msg,echo,fine"]
    lazy.release.set()
    # The shed channel's unread messages were dropped, not kept for it.
    assert await item(lazy.read) == ("lazy", [], CloseReason.INBOX_FULL)
    await client.close()


async def test_an_inbox_is_bounded_in_characters_too(
    caplog: pytest.LogCaptureFixture,
) -> None:
    server = with_echo(MultiplexServer(limits=Limits(max_queue_size=100)))
    lazy = Lazy(server)
    lazy.add("lazy")
    client = await connect_in_memory(server)
    await client.send("sub,lazy")
    await client.send("sub,echo")
    with caplog.at_level(logging.WARNING, logger="websocket_multiplex"):
        await client.send("msg,lazy," + "a" * 50)
        await client.send("msg,lazy," + "b" * 50)  # 100 characters: still fits
        assert client.connection.counters.limits_hit == {}
        await client.send("msg,lazy,c")  # 101
        assert await frames(client, 2) == [
            "err,lazy,503 channel overloaded",
            "uns,lazy",
        ]
    assert client.connection.counters.limits_hit == {"max_queue_size": 1}
    (line,) = shed_warnings(caplog)
    assert "max_queue_size reached" in line
    await client.send("msg,echo,fine")
    assert await frames(client, 1) == ["msg,echo,fine"]
    lazy.release.set()
    assert await item(lazy.read) == ("lazy", [], CloseReason.INBOX_FULL)
    await client.close()


async def test_an_empty_inbox_takes_a_message_above_max_queue_size() -> None:
    # A handler that keeps up is never shed, whatever the limits say.
    server = with_echo(
        MultiplexServer(limits=Limits(max_queue_size=10, max_connection_queue_size=20))
    )
    client = await connect_in_memory(server)
    await client.send("sub,echo")
    for _ in range(3):
        await client.send("msg,echo," + "x" * 50)
        assert await frames(client, 1) == ["msg,echo," + "x" * 50]
    assert client.connection.counters.limits_hit == {}
    await client.close()


async def test_a_full_connection_sheds_its_fullest_channel() -> None:
    limits = Limits(max_queue_size=100, max_connection_queue_size=150)
    server = with_echo(MultiplexServer(limits=limits))
    lazy = Lazy(server)
    lazy.add("big")
    lazy.add("small")
    client = await connect_in_memory(server)
    for text in ("sub,big", "sub,small", "sub,echo"):
        await client.send(text)
    await client.send("msg,big," + "b" * 80)
    await client.send("msg,small," + "s" * 60)  # 140 unread on the connection
    await client.send("msg,echo," + "e" * 20)  # 160 would not fit: "big" goes
    assert await frames(client, 3) == [
        "err,big,503 channel overloaded",
        "uns,big",
        "msg,echo," + "e" * 20,
    ]
    assert client.connection.counters.limits_hit == {"max_connection_queue_size": 1}
    assert sorted(c.name for c in client.connection.channels) == ["echo", "small"]
    lazy.release.set()
    assert await item(lazy.read) == ("big", [], CloseReason.INBOX_FULL)
    await client.close()
    assert await item(lazy.read) == ("small", ["s" * 60], CloseReason.CONNECTION_LOST)


async def test_unread_messages_of_closed_channels_count_until_read() -> None:
    # A client must not pin memory by filling a channel, closing it while
    # its handler is busy, and doing it again on a new one.
    limits = Limits(max_queue_size=100, max_connection_queue_size=100)
    server = MultiplexServer(limits=limits)
    lazy = Lazy(server)
    lazy.add("a")
    lazy.add("b")
    client = await connect_in_memory(server)
    await client.send("sub,a")
    await client.send("msg,a," + "x" * 90)
    await client.send("uns,a")  # closed; its handler has not read the 90 yet
    await client.send("sub,b")
    await client.send("msg,b," + "y" * 20)  # 110: no open channel holds any
    assert await frames(client, 2) == ["err,b,503 channel overloaded", "uns,b"]
    assert client.connection.counters.limits_hit == {"max_connection_queue_size": 1}
    lazy.release.set()
    got = sorted([await item(lazy.read), await item(lazy.read)])
    assert got == [
        ("a", ["x" * 90], CloseReason.CLIENT_CLOSED),
        ("b", [], CloseReason.INBOX_FULL),
    ]
    # Read now: the same message fits.
    await client.send("sub,b")
    await settle()
    await client.send("msg,b," + "y" * 20)
    await client.send("uns,b")
    assert await item(lazy.read) == ("b", ["y" * 20], CloseReason.CLIENT_CLOSED)
    assert nothing_sent(client)
    await client.close()


async def test_what_a_finished_handler_left_unread_stops_counting() -> None:
    # A handler that returns (or fails) with messages still queued: nobody
    # will read them, so they must not fill the connection's budget.
    limits = Limits(max_queue_size=100, max_connection_queue_size=100)
    server = MultiplexServer(limits=limits)
    answered = asyncio.Queue[str]()

    @server.channel("once")
    async def once(channel: Channel) -> None:
        answered.put_nowait(await channel.receive())  # one, then return

    client = await connect_in_memory(server)
    for round_ in range(5):
        await client.send("sub,once")
        await settle()
        for _ in range(2):  # 2 x 40 in one go: it reads 1, leaves 1 unread
            client.connection.receive("msg,once," + str(round_) * 40)
        assert await item(answered) == str(round_) * 40
        assert await frames(client, 1) == ["uns,once"]
    assert client.connection.counters.limits_hit == {}
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

    async def send_many(self, texts: list[str]) -> None:
        for text in texts:
            await self.send(text)


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


def test_a_limit_given_as_text_says_it_must_be_a_number() -> None:
    with pytest.raises(
        TypeError, match=r"Limits\.max_channels must be a number, not str '32'"
    ):
        Limits(max_channels="32")  # type: ignore[arg-type]
