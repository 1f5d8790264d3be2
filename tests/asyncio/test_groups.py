"""Groups and publish, with the in-memory broker (one process)."""

from __future__ import annotations

import asyncio

from websocket_multiplex import Channel, Limits, MultiplexServer
from websocket_multiplex.fanout import Broker, InMemoryBroker
from websocket_multiplex.testing import connect_in_memory

from .helpers import frames, nothing_sent, settle


def chat_server(**kwargs: object) -> MultiplexServer:
    server = MultiplexServer(**kwargs)  # type: ignore[arg-type]

    @server.channel("chat")
    async def chat(channel: Channel) -> None:
        room = channel.request.query.get("room", "lobby")
        await channel.join(room)
        async for data in channel:
            if data == "/leave":
                await channel.leave(room)
            else:
                await server.publish(room, data, exclude=channel)

    return server


def in_room(room: str) -> object:
    from websocket_multiplex import RequestInfo

    return RequestInfo(query_string=f"room={room}")


async def test_publish_reaches_every_member_but_the_excluded_sender() -> None:
    server = chat_server()
    alice, bob, carol, dave = [
        await connect_in_memory(server, in_room(room))  # type: ignore[arg-type]
        for room in ("a", "a", "a", "b")
    ]
    for client in (alice, bob, carol, dave):
        await client.send("sub,chat")
    await settle()
    assert sorted(m.split("/")[1] for m in await server.members("a")) == sorted(
        str(c.connection.id) for c in (alice, bob, carol)
    )
    await alice.send("msg,chat,hello a")
    assert await frames(bob, 1) == ["msg,chat,hello a"]
    assert await frames(carol, 1) == ["msg,chat,hello a"]
    assert nothing_sent(alice)
    assert nothing_sent(dave)
    for client in (alice, bob, carol, dave):
        await client.close()


async def test_messages_keep_publish_order_and_groups_are_left_on_close() -> None:
    server = chat_server()
    sender = await connect_in_memory(server)
    listener = await connect_in_memory(server)
    await sender.send("sub,chat")
    await listener.send("sub,chat")
    await settle()
    for i in range(50):
        await sender.send(f"msg,chat,{i}")
    assert await frames(listener, 50) == [f"msg,chat,{i}" for i in range(50)]
    await listener.close()
    await settle()
    assert len(await server.members("lobby")) == 1
    await sender.send("uns,chat")
    await settle()
    assert await server.members("lobby") == []
    assert server._groups == {}
    await sender.close()


async def test_leave() -> None:
    server = chat_server()
    a = await connect_in_memory(server)
    b = await connect_in_memory(server)
    await a.send("sub,chat")
    await b.send("sub,chat")
    await settle()
    await b.send("msg,chat,/leave")
    await settle()
    await a.send("msg,chat,anyone?")
    await settle()
    assert nothing_sent(b)
    await a.close()
    await b.close()


async def test_publish_from_outside_a_handler() -> None:
    server = chat_server()
    client = await connect_in_memory(server)
    await client.send("sub,chat")
    await settle()
    await server.publish("lobby", "announcement")
    assert await frames(client, 1) == ["msg,chat,announcement"]
    await server.publish("empty room", "nobody hears this")
    await client.close()


async def test_a_slow_member_is_dropped_without_delaying_the_others() -> None:
    server = chat_server(limits=Limits(write_limit=1000))
    fast = await connect_in_memory(server)

    class Stuck:
        from websocket_multiplex import RequestInfo

        request = RequestInfo()
        closed_with: tuple[int, str] | None = None

        async def send(self, text: str) -> None:
            await asyncio.Event().wait()

        async def close(self, code: int, reason: str) -> None:
            self.closed_with = (code, reason)

    stuck_transport = Stuck()
    stuck = server.accept(stuck_transport)  # type: ignore[arg-type]
    stuck.receive("sub,chat")
    await fast.send("sub,chat")
    await settle()
    for i in range(100):
        await server.publish("lobby", "x" * 50 + str(i))  # never waits ...
        await asyncio.sleep(0)  # ... and a real publisher yields now and then
    assert len(await frames(fast, 100)) == 100
    await settle()
    assert stuck.closed
    assert stuck_transport.closed_with == (4008, "slow client")
    assert server.stats().slow_client_closes == 1
    await fast.close()
    await stuck.connection_lost()


def test_the_in_memory_broker_is_a_broker() -> None:
    assert isinstance(InMemoryBroker(), Broker)
