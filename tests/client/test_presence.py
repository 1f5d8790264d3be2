"""Shared presence over real sockets: our server, our Python client
(docs/PROTOCOL-EXTENSIONS.md, section 6)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from websocket_multiplex import (
    Channel,
    MemberJoined,
    MemberLeft,
    MultiplexServer,
    PresenceEvent,
    PresenceSnapshot,
)
from websocket_multiplex.asyncio.client import ClientChannel
from websocket_multiplex.client import connect

from ..asyncio.helpers import settle
from .support import TIMEOUT, serving, sockjs_app


def lobby_server() -> MultiplexServer:
    server = MultiplexServer()

    @server.channel("lobby")
    async def lobby(channel: Channel) -> None:
        await channel.join("lobby")
        channel.share_presence("lobby")
        await channel.send(channel.member_id)  # tells the client who it is
        async for _ in channel:
            pass

    return server


async def next_event(events: AsyncIterator[PresenceEvent]) -> PresenceEvent:
    async with asyncio.timeout(TIMEOUT):
        return await anext(events)


async def own_id(channel: ClientChannel) -> str:
    return await channel.receive(timeout=TIMEOUT)


@pytest.mark.parametrize("kind", ["sockjs", "websocket"])
async def test_a_client_channel_hears_members_come_and_go(kind: str) -> None:
    server = lobby_server()
    async with serving(sockjs_app(server)) as port:
        url = (
            f"http://127.0.0.1:{port}/multiplex"
            if kind == "sockjs"
            else f"ws://127.0.0.1:{port}/multiplex/websocket"
        )
        async with connect(url) as alice_client:
            alice = await alice_client.channel("lobby")
            alice_id = await own_id(alice)
            events = alice.presence()
            assert await next_event(events) == PresenceSnapshot(
                "lobby", frozenset({alice_id})
            )
            async with connect(url) as bob_client:
                bob = await bob_client.channel("lobby")
                bob_id = await own_id(bob)
                assert await next_event(events) == MemberJoined("lobby", bob_id)
                assert await next_event(bob.presence()) == PresenceSnapshot(
                    "lobby", frozenset({alice_id, bob_id})
                )
            assert await next_event(events) == MemberLeft("lobby", bob_id)
            assert alice.members("lobby") == {alice_id}
            await alice.close()
            with pytest.raises(StopAsyncIteration):
                await next_event(events)  # the channel closed: no more
        await server.close()


async def test_a_client_that_does_not_offer_a_session_gets_no_presence() -> None:
    server = lobby_server()
    async with serving(sockjs_app(server)) as port:
        url = f"http://127.0.0.1:{port}/multiplex"
        async with connect(url, resume=False) as base_client:
            channel = await base_client.channel("lobby")
            await own_id(channel)
            async with connect(url) as other:
                await own_id(await other.channel("lobby"))
            await settle()
            assert channel.members("lobby") == frozenset()
            assert server.presence_hub._shares == {}  # the other's share ended
        await server.close()
