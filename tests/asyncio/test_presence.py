"""Presence watchers and shared presence, with the in-memory broker."""

from __future__ import annotations

import asyncio

import pytest

from websocket_multiplex import (
    Channel,
    Limits,
    LocalProtocolError,
    MemberJoined,
    MemberLeft,
    MultiplexServer,
    PresenceEvent,
    PresenceSnapshot,
    PresenceWatch,
    RequestInfo,
)
from websocket_multiplex.fanout import InMemoryBroker, PresenceBroker
from websocket_multiplex.fanout.broker import Deliver, Delivery
from websocket_multiplex.testing import MemoryClient, connect_in_memory

from .helpers import TIMEOUT, drain, frame, frames, item, settle


def lobby_server(**kwargs: object) -> tuple[MultiplexServer, asyncio.Queue[Channel]]:
    """``chat`` joins the room of the query; ``watch`` shares its presence."""
    server = MultiplexServer(**kwargs)  # type: ignore[arg-type]
    joined = asyncio.Queue[Channel]()

    @server.channel("chat")
    async def chat(channel: Channel) -> None:
        await channel.join(channel.request.query.get("room", "lobby"))
        joined.put_nowait(channel)
        async for data in channel:
            if data == "/leave":
                await channel.leave("lobby")

    @server.channel("watch")
    async def watch(channel: Channel) -> None:
        shared = channel.share_presence("lobby")
        await channel.send(f"shared {shared}")
        async for data in channel:
            if data == "/unshare":
                channel.unshare_presence("lobby")
                await channel.send("unshared")

    return server, joined


async def member(
    server: MultiplexServer, joined: asyncio.Queue[Channel], room: str = "lobby"
) -> tuple[MemoryClient, str]:
    client = await connect_in_memory(server, RequestInfo(query_string=f"room={room}"))
    await client.send("sub,chat")
    return client, (await item(joined)).member_id


async def next_event(watch: PresenceWatch) -> PresenceEvent:
    async with asyncio.timeout(TIMEOUT):
        return await anext(watch)


async def test_a_watch_starts_with_the_members_then_reports_each_change() -> None:
    server, joined = lobby_server()
    alice, alice_id = await member(server, joined)
    async with server.presence("lobby") as watch:
        assert await next_event(watch) == PresenceSnapshot(
            "lobby", frozenset({alice_id}), gap=False
        )
        bob, bob_id = await member(server, joined)
        _, other_room = await member(server, joined, room="elsewhere")
        assert await next_event(watch) == MemberJoined("lobby", bob_id)
        await alice.send("msg,chat,/leave")
        assert await next_event(watch) == MemberLeft("lobby", alice_id)
        await bob.close()  # a closed channel leaves its groups
        assert await next_event(watch) == MemberLeft("lobby", bob_id)
        assert watch.members == frozenset()
        assert other_room not in watch.members
    await alice.close()


async def test_a_closed_watch_ends_its_reader_and_is_forgotten() -> None:
    server, _joined = lobby_server()
    watch = server.presence("lobby")
    assert (await next_event(watch)).members == frozenset()  # type: ignore[union-attr]
    reader = asyncio.ensure_future(anext(watch))
    await settle()
    await watch.aclose()
    with pytest.raises(StopAsyncIteration):
        await asyncio.wait_for(reader, TIMEOUT)
    assert server.presence_hub._watches == {}


async def test_a_watcher_that_does_not_read_gets_a_gap_and_holds_nobody_up() -> None:
    server, joined = lobby_server(limits=Limits(presence_queue=4))
    sleeper = server.presence("lobby")
    reader = server.presence("lobby")
    assert (await next_event(sleeper)).members == frozenset()  # type: ignore[union-attr]
    assert (await next_event(reader)).members == frozenset()  # type: ignore[union-attr]
    ids = []
    for _ in range(6):  # more than the sleeper's queue holds: joins never wait
        _, member_id = await member(server, joined)
        ids.append(member_id)
        assert await next_event(reader) == MemberJoined("lobby", member_id)
    assert await next_event(sleeper) == PresenceSnapshot(
        "lobby", frozenset(ids), gap=True
    )
    _, late = await member(server, joined)
    assert await next_event(sleeper) == MemberJoined("lobby", late)
    await sleeper.aclose()
    await reader.aclose()


class SilentBroker:
    """A Broker without presence events (one written before they existed)."""

    async def start(self, deliver: Deliver) -> None: ...
    async def subscribe(self, group: str) -> None: ...
    async def unsubscribe(self, group: str) -> None: ...
    async def publish(self, delivery: Delivery) -> None: ...
    async def set_presence(self, group: str, member: str, present: bool) -> None: ...
    async def members(self, group: str) -> list[str]:
        return []

    async def close(self) -> None: ...


def test_a_broker_without_presence_events_is_refused_with_what_to_do() -> None:
    assert isinstance(InMemoryBroker(), PresenceBroker)
    server = MultiplexServer(broker=SilentBroker())
    with pytest.raises(LocalProtocolError, match="PresenceBroker"):
        server.presence("lobby")


async def test_a_resumable_client_gets_prs_frames_of_the_shared_group() -> None:
    server, joined = lobby_server()
    alice, alice_id = await member(server, joined)
    watcher = await connect_in_memory(server)
    await watcher.send("hey,r1,Zm9vYmFyYmF6cXV4cXV1eA")
    await watcher.send("sub,watch")
    assert await frames(watcher, 3) == [
        "hey,r1,Zm9vYmFyYmF6cXV4cXV1eA,0",
        "msg,watch,shared True",
        f"prs,watch,lobby,={alice_id.replace(':', '%3A')}",
    ]
    bob, bob_id = await member(server, joined)
    assert await frame(watcher) == f"prs,watch,lobby,+{bob_id.replace(':', '%3A')}"
    await bob.close()
    assert await frame(watcher) == f"prs,watch,lobby,-{bob_id.replace(':', '%3A')}"
    await watcher.send("msg,watch,/unshare")
    assert await frame(watcher) == "msg,watch,unshared"
    await settle()
    await alice.close()
    await settle()
    assert [f for f in drain(watcher) if not f.startswith("ack,")] == []
    await watcher.close()
    assert server.presence_hub._shares == {}


async def test_a_base_client_is_sent_no_presence() -> None:
    server, joined = lobby_server()
    watcher = await connect_in_memory(server)
    await watcher.send("sub,watch")
    assert await frame(watcher) == "msg,watch,shared False"
    await member(server, joined)
    await settle()
    assert drain(watcher) == []
    assert server.presence_hub._shares == {}


async def test_closing_the_channel_stops_its_shares() -> None:
    server, _joined = lobby_server()
    watcher = await connect_in_memory(server)
    await watcher.send("hey,r1,Zm9vYmFyYmF6cXV4cXV1eA")
    await watcher.send("sub,watch")
    assert len(await frames(watcher, 3)) == 3
    assert server.presence_hub._watches.keys() == {"lobby"}
    await watcher.send("uns,watch")
    await settle()
    assert server.presence_hub._shares == {}
    assert server.presence_hub._watches == {}


async def test_shares_per_connection_are_bounded() -> None:
    server = MultiplexServer(limits=Limits(max_presence_shares=2))
    outcome = asyncio.Queue[str]()

    @server.channel("many")
    async def many(channel: Channel) -> None:
        try:
            for group in ("a", "b", "a", "c"):
                channel.share_presence(group)
        except LocalProtocolError as exc:
            outcome.put_nowait(str(exc))

    client = await connect_in_memory(server)
    await client.send("hey,r1,Zm9vYmFyYmF6cXV4cXV1eA")
    await client.send("sub,many")
    assert "Limits.max_presence_shares" in await item(outcome)
    await client.close()


async def test_closing_the_server_ends_every_watch() -> None:
    server, _ = lobby_server()
    watch = server.presence("lobby")
    await next_event(watch)
    reader = asyncio.ensure_future(anext(watch))
    await settle()
    await server.close()
    with pytest.raises(StopAsyncIteration):
        await asyncio.wait_for(reader, TIMEOUT)
    await watch.aclose()  # closing it again does nothing


class FlakyBroker(InMemoryBroker):
    """Its first watch fails, as a broker whose backend refused it."""

    def __init__(self) -> None:
        super().__init__()
        self.failures = 1

    async def watch_presence(self, group: str) -> None:
        if self.failures:
            self.failures -= 1
            raise RuntimeError("refused")
        await super().watch_presence(group)


async def test_a_failed_broker_watch_fails_the_watch_and_the_next_one_tries_again() -> (
    None
):
    server, joined = lobby_server(broker=FlakyBroker())
    first = server.presence("lobby")
    with pytest.raises(RuntimeError, match="refused"):
        await next_event(first)
    with pytest.raises(StopAsyncIteration):
        await next_event(first)  # it ended
    async with server.presence("lobby") as second:
        assert await next_event(second) == PresenceSnapshot("lobby", frozenset())
        _, member_id = await member(server, joined)
        assert await next_event(second) == MemberJoined("lobby", member_id)
