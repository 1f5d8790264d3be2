"""Groups and publish, with the in-memory broker (one process)."""

from __future__ import annotations

import asyncio

import pytest

from websocket_multiplex import Channel, ChannelClosed, Limits, MultiplexServer
from websocket_multiplex.fanout import BrokerUnavailable, InMemoryBroker
from websocket_multiplex.fanout.broker import Deliver
from websocket_multiplex.testing import MemoryClient, connect_in_memory

from .helpers import TIMEOUT, frames, item, nothing_sent, settle


def chat_server(**kwargs: object) -> MultiplexServer:
    server = MultiplexServer(**kwargs)  # type: ignore[arg-type]

    @server.channel("chat")
    async def chat(channel: Channel) -> None:
        room = channel.request.query.get("room", "lobby")
        await channel.join(room)
        async for data in channel:
            if data == "/leave":
                await channel.leave(room)
            elif data == "/ping":
                await channel.send("pong")
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
    assert server.groups._groups == {}
    await sender.close()


async def test_leave() -> None:
    server = chat_server()
    a, b, c = [await connect_in_memory(server) for _ in range(3)]
    for client in (a, b, c):
        await client.send("sub,chat")
    await settle()
    await b.send("msg,chat,/leave")
    await settle()
    assert len(await server.members("lobby")) == 2
    await a.send("msg,chat,anyone?")
    assert await frames(c, 1) == ["msg,chat,anyone?"]  # a member still hears it
    # Had b heard it, it would come before the answer to a later /ping.
    await b.send("msg,chat,/ping")
    assert await frames(b, 1) == ["msg,chat,pong"]
    for client in (a, b, c):
        await client.close()


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
    limit = 1000
    server = chat_server(limits=Limits(write_limit=limit))
    fast = await connect_in_memory(server)

    class Stuck:
        """A carrier whose first send never completes: the client stopped
        reading."""

        from websocket_multiplex import RequestInfo

        request = RequestInfo()
        closed_with: tuple[int, str] | None = None
        stuck = False

        async def send(self, text: str) -> None:
            self.stuck = True
            await asyncio.Event().wait()

        async def close(self, code: int, reason: str) -> None:
            self.closed_with = (code, reason)

        async def send_many(self, texts: list[str]) -> None:
            for text in texts:
                await self.send(text)

    stuck_transport = Stuck()
    stuck = server.accept(stuck_transport)
    stuck.receive("sub,chat")
    await fast.send("sub,chat")
    await settle()

    async def publish(count: int) -> None:
        for i in range(count):
            async with asyncio.timeout(TIMEOUT):
                await server.publish("lobby", "x" * 50 + str(i))
            await asyncio.sleep(0)  # a real publisher yields now and then

    # Twice the write limit waits for the stuck member: it is slow, not yet
    # dropped (that takes four times the limit), and publishing went on.
    await publish(2 * limit // 60)
    assert stuck_transport.stuck
    assert stuck.stats.chars_sent > limit
    assert not stuck.closed
    assert stuck_transport.closed_with is None
    assert len(await frames(fast, 2 * limit // 60)) == 2 * limit // 60

    await publish(4 * limit // 60)
    assert len(await frames(fast, 4 * limit // 60)) == 4 * limit // 60
    await settle()
    assert stuck.closed
    assert stuck_transport.closed_with == (4008, "slow client")
    assert server.stats().slow_client_closes == 1
    await fast.close()
    await stuck.connection_lost()


# -- a join in flight --------------------------------------------------------------


async def test_a_channel_closed_during_a_new_server_s_first_join_is_in_no_group() -> (
    None
):
    server = MultiplexServer()  # the default in-memory broker, not started yet
    joining = asyncio.Queue[Channel]()
    outcome = asyncio.Queue[str]()

    @server.channel("chat")
    async def chat(channel: Channel) -> None:
        joining.put_nowait(channel)
        try:
            await channel.join("lobby")  # waits for the broker to start
        except ChannelClosed:
            outcome.put_nowait("closed")
            raise
        outcome.put_nowait("joined")

    client = await connect_in_memory(server)
    await client.send("sub,chat")
    channel = await item(joining)
    await client.close()
    assert channel.closed
    assert await item(outcome) == "closed"
    await settle()
    assert channel.groups == frozenset()
    assert server.groups._groups == {}
    assert await server.members("lobby") == []


class GatedBroker(InMemoryBroker):
    """The in-memory broker with one step of the first join held until the
    test opens the gate: a broker slow to start, to subscribe or to write
    presence."""

    def __init__(self, step: str) -> None:
        super().__init__()
        self.step = step
        self.reached = asyncio.Event()
        self.gate = asyncio.Event()
        self.calls: list[str] = []  # subscribe and unsubscribe, in call order

    async def _hold(self, step: str) -> None:
        if step == self.step and not self.gate.is_set():
            self.reached.set()
            await self.gate.wait()

    async def start(self, deliver: Deliver) -> None:
        await self._hold("start")
        await super().start(deliver)

    async def subscribe(self, group: str) -> None:
        self.calls.append(f"subscribe {group}")
        await self._hold("subscribe")
        await super().subscribe(group)

    async def unsubscribe(self, group: str) -> None:
        self.calls.append(f"unsubscribe {group}")
        await super().unsubscribe(group)

    async def set_presence(self, group: str, member: str, present: bool) -> None:
        if present:
            # Held before it is recorded: a removal can overtake it.
            await self._hold("presence")
        await super().set_presence(group, member, present)


@pytest.mark.parametrize("step", ["start", "subscribe", "presence"])
@pytest.mark.parametrize("undo", ["close", "leave"])
async def test_a_channel_that_closes_or_leaves_during_its_join_is_in_no_group(
    step: str, undo: str
) -> None:
    broker = GatedBroker(step)
    server = MultiplexServer(broker=broker)
    joins = asyncio.Queue[asyncio.Future[None]]()

    @server.channel("chat")
    async def chat(channel: Channel) -> None:
        joins.put_nowait(asyncio.ensure_future(channel.join("lobby")))
        async for data in channel:  # meanwhile
            if data == "/leave":
                await channel.leave("lobby")
            else:
                await channel.send("pong")

    if step != "start":
        await server.members("lobby")  # the broker starts at once
    client = await connect_in_memory(server)
    await client.send("sub,chat")
    join = await item(joins)
    async with asyncio.timeout(TIMEOUT):
        await broker.reached.wait()
    (channel,) = client.connection.channels
    await client.send("uns,chat" if undo == "close" else "msg,chat,/leave")
    assert channel.groups == frozenset()
    broker.gate.set()
    async with asyncio.timeout(TIMEOUT):
        (joined,) = await asyncio.gather(join, return_exceptions=True)
    if undo == "close":
        assert isinstance(joined, ChannelClosed)
    else:
        assert joined is None  # superseded by the leave() that came after it
    await settle()
    assert channel.groups == frozenset()
    assert server.groups._groups == {}
    assert await server.members("lobby") == []
    assert broker._groups == set()  # a subscribe that landed late is undone
    if undo == "leave":  # the channel is still open, and hears nothing
        await server.publish("lobby", "not for you")
        await client.send("msg,chat,ping")
        assert await frames(client, 1) == ["msg,chat,pong"]
    await client.close()


async def test_a_join_cancelled_while_the_broker_starts_can_be_tried_again() -> None:
    broker = GatedBroker("start")
    server = MultiplexServer(broker=broker)
    channels = asyncio.Queue[Channel]()

    @server.channel("chat")
    async def chat(channel: Channel) -> None:
        channels.put_nowait(channel)
        async for _ in channel:
            pass

    client = await connect_in_memory(server)
    await client.send("sub,chat")
    channel = await item(channels)
    join = asyncio.ensure_future(channel.join("lobby"))
    async with asyncio.timeout(TIMEOUT):
        await broker.reached.wait()
    join.cancel()
    with pytest.raises(asyncio.CancelledError):
        await join
    assert channel.groups == frozenset()
    broker.gate.set()
    async with asyncio.timeout(TIMEOUT):
        await channel.join("lobby")
    assert await server.members("lobby") == [channel.member_id]
    await server.publish("lobby", "welcome")
    assert await frames(client, 1) == ["msg,chat,welcome"]
    await client.close()


async def two_members_subscribing() -> tuple[
    GatedBroker, tuple[MemoryClient, Channel], tuple[MemoryClient, Channel]
]:
    """Two clients with a "chat" channel each, on a server whose broker holds
    the group's subscribe until the test opens its gate."""
    broker = GatedBroker("subscribe")
    server = MultiplexServer(broker=broker)
    channels = asyncio.Queue[Channel]()

    @server.channel("chat")
    async def chat(channel: Channel) -> None:
        channels.put_nowait(channel)
        async for _ in channel:
            pass

    await server.members("lobby")  # the broker starts at once
    first, second = await connect_in_memory(server), await connect_in_memory(server)
    await first.send("sub,chat")
    await second.send("sub,chat")
    return broker, (first, await item(channels)), (second, await item(channels))


async def test_a_second_member_joins_once_the_subscription_is_in_place() -> None:
    """The group's one broker subscription is shared: a join that finds it
    still on its way waits for it, so a publish right after any join
    reaches that member."""
    broker, (first, a), (second, b) = await two_members_subscribing()
    server = a.connection.server
    join_a = asyncio.ensure_future(a.join("lobby"))
    async with asyncio.timeout(TIMEOUT):
        await broker.reached.wait()
    join_b = asyncio.ensure_future(b.join("lobby"))
    await settle()
    assert not join_a.done() and not join_b.done()
    broker.gate.set()
    async with asyncio.timeout(TIMEOUT):
        await asyncio.gather(join_a, join_b)
    await server.publish("lobby", "hello")
    assert await frames(first, 1) == ["msg,chat,hello"]
    assert await frames(second, 1) == ["msg,chat,hello"]
    await first.close()
    await second.close()


async def test_a_member_joining_as_the_last_one_leaves_shares_its_subscription() -> (
    None
):
    """The last member leaves while the group's subscribe is on its way; a
    new member joins meanwhile: the one subscription serves it, and is
    dropped when that member leaves."""
    broker, (first, a), (second, b) = await two_members_subscribing()
    server = a.connection.server
    join_a = asyncio.ensure_future(a.join("lobby"))
    async with asyncio.timeout(TIMEOUT):
        await broker.reached.wait()
    leave_a = asyncio.ensure_future(a.leave("lobby"))
    await settle()
    join_b = asyncio.ensure_future(b.join("lobby"))
    await settle()
    assert not join_b.done()
    broker.gate.set()
    async with asyncio.timeout(TIMEOUT):
        await asyncio.gather(join_a, leave_a, join_b)
    assert broker.calls == ["subscribe lobby"]
    assert await server.members("lobby") == [b.member_id]
    await server.publish("lobby", "hello")
    assert await frames(second, 1) == ["msg,chat,hello"]
    assert nothing_sent(first)
    async with asyncio.timeout(TIMEOUT):
        await b.leave("lobby")
    assert broker.calls == ["subscribe lobby", "unsubscribe lobby"]
    assert broker._groups == set()
    await first.close()
    await second.close()


class FailingBroker(GatedBroker):
    """The gated broker whose held step then fails, the first time only."""

    failed = False

    async def _hold(self, step: str) -> None:
        await super()._hold(step)
        if step == self.step and not self.failed:
            self.failed = True
            raise BrokerUnavailable(f"{step} failed")


async def open_channel(server: MultiplexServer) -> tuple[Channel, MemoryClient]:
    """A client with one open channel of a service that only reads."""
    opened = asyncio.Queue[Channel]()

    @server.channel("chat")
    async def chat(channel: Channel) -> None:
        opened.put_nowait(channel)
        async for _ in channel:
            pass

    client = await connect_in_memory(server)
    await client.send("sub,chat")
    return await item(opened), client


@pytest.mark.parametrize("step", ["subscribe", "presence"])
async def test_a_join_that_failed_is_undone_and_can_be_tried_again(step: str) -> None:
    broker = FailingBroker(step)
    broker.gate.set()  # fails at once
    server = MultiplexServer(broker=broker)
    channel, client = await open_channel(server)
    async with asyncio.timeout(TIMEOUT):
        with pytest.raises(BrokerUnavailable):
            await channel.join("lobby")
    assert channel.groups == frozenset()
    assert server.groups._groups == {}
    assert server.groups._subscriptions == {}
    assert broker._groups == set()
    assert await server.members("lobby") == []
    async with asyncio.timeout(TIMEOUT):
        await channel.join("lobby")
    assert await server.members("lobby") == [channel.member_id]
    await server.publish("lobby", "welcome")
    assert await frames(client, 1) == ["msg,chat,welcome"]
    await client.close()


@pytest.mark.parametrize("first_join", ["succeeds", "fails"])
async def test_joining_again_while_joining_waits_for_the_first_join(
    first_join: str,
) -> None:
    """A second join of the same channel returns once the first one's
    subscription is in place; if the first failed, it tries again."""
    broker = (GatedBroker if first_join == "succeeds" else FailingBroker)("subscribe")
    server = MultiplexServer(broker=broker)
    await server.members("lobby")  # the broker starts at once
    channel, client = await open_channel(server)
    first = asyncio.ensure_future(channel.join("lobby"))
    async with asyncio.timeout(TIMEOUT):
        await broker.reached.wait()
    second = asyncio.ensure_future(channel.join("lobby"))
    await settle()
    assert not second.done()
    broker.gate.set()
    async with asyncio.timeout(TIMEOUT):
        outcome, _ = await asyncio.gather(first, second, return_exceptions=True)
    if first_join == "fails":
        assert isinstance(outcome, BrokerUnavailable)
    else:
        assert outcome is None
    assert second.result() is None
    assert await server.members("lobby") == [channel.member_id]
    await server.publish("lobby", "once")
    assert await frames(client, 1) == ["msg,chat,once"]
    await settle()
    assert nothing_sent(client)
    await client.close()
