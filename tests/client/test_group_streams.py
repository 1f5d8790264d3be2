"""Resumable group streams between our server and our Python client
(docs/PROTOCOL-EXTENSIONS.md, section 4): a client whose session the server
could not resume gets back, from the group's history, every group message
it missed, once and in order, or a :class:`GroupGap` where the history no
longer holds them."""

from __future__ import annotations

import asyncio
import contextlib
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
