"""Resumable group streams between our server and our Python client
(docs/PROTOCOL-EXTENSIONS.md, section 4): a client whose session the server
could not resume gets back, from the group's history, every group message
it missed, once and in order, or a :class:`GroupGap` where the history no
longer holds them."""

from __future__ import annotations

import asyncio
import contextlib
import os
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest

from websocket_multiplex import (
    Channel,
    ChannelGap,
    CloseReason,
    GroupGap,
    Limits,
    MultiplexServer,
)
from websocket_multiplex.asyncio.client import ClientChannel
from websocket_multiplex.client import connect
from websocket_multiplex.fanout import InMemoryBroker

from ..support.proxy import Proxy
from .support import FAST, TIMEOUT, serving, sockjs_app

REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")


@dataclass
class Room:
    """A server whose ``room`` handlers join the group ``room``."""

    server: MultiplexServer
    joined: asyncio.Queue[Channel] = field(default_factory=asyncio.Queue)
    ended: asyncio.Queue[CloseReason | None] = field(default_factory=asyncio.Queue)


def room_server(broker: InMemoryBroker, limits: Limits) -> Room:
    room = Room(MultiplexServer(limits=limits, broker=broker))

    @room.server.channel("room")
    async def handler(channel: Channel) -> None:
        await channel.join("room")
        room.joined.put_nowait(channel)
        try:
            async for _ in channel:
                pass
        finally:
            room.ended.put_nowait(channel.close_reason)

    return room


@contextlib.asynccontextmanager
async def room_behind_proxy(
    broker: InMemoryBroker,
) -> AsyncIterator[tuple[Room, Proxy, str]]:
    room = room_server(broker, Limits(resume_grace=0.2))
    async with serving(sockjs_app(room.server)) as port, Proxy(port) as proxy:
        yield room, proxy, f"ws://127.0.0.1:{proxy.port}/multiplex/websocket"


async def publish(room: Room, first: int, last: int) -> None:
    for n in range(first, last + 1):
        await room.server.publish("room", str(n))


async def receive(channel: ClientChannel, count: int) -> list[str]:
    return [await channel.receive(TIMEOUT) for _ in range(count)]


async def lose_the_session(room: Room, proxy: Proxy) -> None:
    """Cut the client off for longer than the grace period: its handler
    ends ``NOT_RESUMED`` and the group has no member left."""
    proxy.cut()
    async with asyncio.timeout(TIMEOUT):
        assert await room.ended.get() is CloseReason.NOT_RESUMED


async def test_a_client_whose_session_was_lost_gets_every_group_message_it_missed() -> (
    None
):
    async with room_behind_proxy(InMemoryBroker()) as (room, proxy, url):
        client = await connect(url, reconnect=FAST)
        channel = await client.channel("room", report_gaps=True)
        await room.joined.get()
        await publish(room, 1, 5)
        assert await receive(channel, 5) == ["1", "2", "3", "4", "5"]
        assert set(channel.positions) == {"room"}
        await lose_the_session(room, proxy)
        await publish(room, 6, 10)  # nobody in the group: only the history
        proxy.restore()
        with pytest.raises(ChannelGap) as gap:  # the session was not resumed
            await channel.receive(TIMEOUT)
        assert type(gap.value) is ChannelGap
        await room.joined.get()  # a new handler rejoined, replaying the history
        await publish(room, 11, 12)
        assert await receive(channel, 7) == ["6", "7", "8", "9", "10", "11", "12"]
        assert channel.group_gaps == 0
        assert client.resumptions == 0
        await client.close()


async def test_past_the_history_the_client_gets_a_group_gap_then_what_is_kept() -> None:
    async with room_behind_proxy(InMemoryBroker(history_size=3)) as (
        room,
        proxy,
        url,
    ):
        client = await connect(url, reconnect=FAST)
        channel = await client.channel("room", report_gaps=True)
        await room.joined.get()
        await publish(room, 1, 2)
        assert await receive(channel, 2) == ["1", "2"]
        await lose_the_session(room, proxy)
        await publish(room, 3, 7)  # the history keeps 5, 6, 7
        proxy.restore()
        with pytest.raises(ChannelGap):
            await channel.receive(TIMEOUT)
        with pytest.raises(GroupGap) as gap:
            await channel.receive(TIMEOUT)
        assert gap.value.group == "room"
        assert await receive(channel, 3) == ["5", "6", "7"]
        assert channel.group_gaps == 1
        await client.close()


async def test_without_the_extension_group_messages_are_plain_messages() -> None:
    room = room_server(InMemoryBroker(), Limits())
    async with serving(sockjs_app(room.server)) as port:
        client = await connect(
            f"ws://127.0.0.1:{port}/multiplex/websocket", reconnect=FAST, resume=False
        )
        channel = await client.channel("room")
        await room.joined.get()
        await publish(room, 1, 3)
        assert await receive(channel, 3) == ["1", "2", "3"]
        assert channel.positions == {}
        await client.close()


# -- across servers, through Redis -------------------------------------------------


@contextlib.asynccontextmanager
async def two_servers_and_a_publisher(
    **history: int,
) -> AsyncIterator[tuple[Proxy, int, MultiplexServer, Room]]:
    """Servers A and B whose ``room`` handlers join ``room`` on open, and a
    third that only publishes, all on one Redis under a prefix of the
    test's own; the proxy leads to A. Yields the proxy, B's port, the
    publisher and A."""
    from websocket_multiplex.fanout.redis import RedisBroker

    prefix = f"test-{uuid.uuid4().hex}:"

    def broker() -> RedisBroker:
        return RedisBroker(REDIS_URL, channel_prefix=prefix, **history)  # type: ignore[arg-type]

    a = room_server(broker(), Limits())
    b = room_server(broker(), Limits())
    publisher = MultiplexServer(broker=broker())
    async with (
        serving(sockjs_app(a.server)) as a_port,
        serving(sockjs_app(b.server)) as b_port,
        Proxy(a_port) as proxy,
    ):
        try:
            yield proxy, b_port, publisher, a
        finally:
            await publisher.close()


async def publish_numbers(publisher: MultiplexServer, first: int, last: int) -> None:
    for n in range(first, last + 1):
        await publisher.publish("room", str(n))


async def numbers(channel: ClientChannel, count: int) -> list[int]:
    return [int(await channel.receive(TIMEOUT)) for _ in range(count)]


@pytest.mark.parametrize("history_size", [1000, 5])
async def test_on_another_server_the_client_gets_what_it_missed_or_a_group_gap(
    history_size: int,
) -> None:
    async with two_servers_and_a_publisher(history_size=history_size) as (
        proxy,
        b_port,
        publisher,
        a,
    ):
        client = await connect(
            f"ws://127.0.0.1:{proxy.port}/multiplex/websocket", reconnect=FAST
        )
        channel = await client.channel("room", report_gaps=True)
        await a.joined.get()
        await publish_numbers(publisher, 1, 10)
        assert await numbers(channel, 10) == list(range(1, 11))
        proxy.cut()  # A is gone for this client, with its session
        await publish_numbers(publisher, 11, 30)
        proxy.upstream = b_port
        proxy.restore()
        with pytest.raises(ChannelGap) as gap:
            await channel.receive(TIMEOUT)
        assert type(gap.value) is ChannelGap  # the session, not the group
        if history_size < 20:
            with pytest.raises(GroupGap):
                await channel.receive(TIMEOUT)
            assert await numbers(channel, 5) == list(range(26, 31))
        else:
            assert await numbers(channel, 20) == list(range(11, 31))
        await publish_numbers(publisher, 31, 32)
        assert await numbers(channel, 2) == [31, 32]  # live, and nothing twice
        assert client.resumptions == 0
        await client.close()


async def test_mid_stream_the_client_moves_to_another_server_losing_nothing() -> None:
    async with two_servers_and_a_publisher() as (proxy, b_port, publisher, a):
        client = await connect(
            f"ws://127.0.0.1:{proxy.port}/multiplex/websocket", reconnect=FAST
        )
        channel = await client.channel("room", report_gaps=True)
        await a.joined.get()
        count = 600
        streaming = asyncio.create_task(publish_numbers(publisher, 1, count))
        got: list[int] = []
        async with asyncio.timeout(30):
            while len(got) < count:
                try:
                    got.append(int(await channel.receive()))
                except ChannelGap:
                    continue
                if len(got) == 100:  # mid-stream: off to B
                    proxy.upstream = b_port
                    proxy.abort()
            await streaming
        assert got == list(range(1, count + 1))
        assert channel.gaps == 1 and channel.group_gaps == 0
        await client.close()
