"""RedisBroker against a real redis-server that the tests kill and restart.

Each :class:`Node` stands for one server process: a MultiplexServer with a
RedisBroker of its own (one subscriber connection, one publisher client).
"""

from __future__ import annotations

import asyncio
import gc
import logging
import sys
import warnings
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from websocket_multiplex import Backoff, Channel, MultiplexServer, RequestInfo
from websocket_multiplex.fanout import BrokerUnavailable, Delivery
from websocket_multiplex.testing import MemoryClient, connect_in_memory

from ..asyncio.helpers import TIMEOUT, frames, item, settle
from .proxy import Proxy
from .redis_server import RedisServer, unavailable

try:
    from redis.asyncio import Redis

    from websocket_multiplex.fanout import redis as redis_module
    from websocket_multiplex.fanout.redis import (
        DEFAULT_RECONNECT,
        RedisBroker,
        decode,
        encode,
        redact,
    )
except ImportError:  # pragma: no cover - the test extra installs redis
    unavailable("the redis package is not installed: pip install -e '.[test]'")

FAST = Backoff(initial=0.05, maximum=0.2)
LOBBY = "websocket-multiplex:group:lobby"
MEMBER_PROCESS = Path(__file__).with_name("member_process.py")


@dataclass
class Node:
    """One server process: a chat service whose channels join a room."""

    server: MultiplexServer
    joined: asyncio.Queue[Channel]

    async def connect(self, room: str = "lobby") -> tuple[MemoryClient, str]:
        """A client subscribed to ``chat`` in ``room``, and its member id;
        returns once the channel joined (Redis confirmed the subscription)."""
        request = RequestInfo(query_string=f"room={room}")
        client = await connect_in_memory(self.server, request)
        await client.send("sub,chat")
        channel = await item(self.joined)
        return client, channel.member_id


def chat_node(url: str, **options: object) -> Node:
    options.setdefault("reconnect", FAST)
    broker = RedisBroker(url, **options)  # type: ignore[arg-type]
    server = MultiplexServer(broker=broker)
    joined = asyncio.Queue[Channel]()

    @server.channel("chat")
    async def chat(channel: Channel) -> None:
        room = channel.request.query.get("room", "lobby")
        await channel.join(room)
        joined.put_nowait(channel)
        async for data in channel:
            await server.publish(room, data, exclude=channel)

    return Node(server, joined)


@pytest.fixture
async def nodes(redis_server: RedisServer) -> AsyncIterator[Callable[..., Node]]:
    """Make nodes on the test's Redis (or, with ``url=``, through a proxy)."""
    made: list[Node] = []

    def make(url: str = redis_server.url, **options: object) -> Node:
        made.append(chat_node(url, **options))
        return made[-1]

    yield make
    for node in made:
        await node.server.close()


@pytest.fixture
async def proxy(redis_server: RedisServer) -> AsyncIterator[Proxy]:
    """A relay to the test's Redis that the test can cut and restore."""
    relay = Proxy(redis_server.port)
    await relay.start()
    yield relay
    await relay.close()


@pytest.fixture
async def observer(redis_server: RedisServer) -> AsyncIterator[Redis]:
    """A plain Redis client, to look at what the brokers left in Redis."""
    client = Redis.from_url(redis_server.url)
    yield client
    await client.aclose()


async def eventually(check: Callable[[], Awaitable[bool]]) -> None:
    """Poll state that changes in Redis with no event to await; bounded."""
    async with asyncio.timeout(TIMEOUT):
        while not await check():
            await asyncio.sleep(0.01)


async def subscribers(observer: Redis, channel: str = LOBBY) -> int:
    ((_, count),) = await observer.pubsub_numsub(channel)
    return int(count)


async def is_up(node: Node) -> bool:
    try:
        await node.server.members("lobby")
    except BrokerUnavailable:
        return False
    return True


def a_channel(client: MemoryClient) -> Channel:
    (channel,) = client.connection.channels
    return channel


def messages(*texts: str) -> list[str | None]:
    return [f"msg,chat,{text}" for text in texts]


# -- across processes ----------------------------------------------------------------


async def test_a_publish_reaches_members_on_every_server_but_the_excluded(
    nodes: Callable[..., Node],
) -> None:
    a, b = nodes(), nodes()
    alice, _ = await a.connect()
    bob, _ = await b.connect()
    carol, _ = await b.connect()
    await alice.send("msg,chat,hi from a")
    assert await frames(bob, 1) == messages("hi from a")
    assert await frames(carol, 1) == messages("hi from a")
    await bob.send("msg,chat,hi from b")
    assert await frames(alice, 1) == messages("hi from b")
    assert await frames(carol, 1) == messages("hi from b")
    # What one process publishes arrives in order: had the senders received
    # their own message, it would come before these markers.
    await a.server.publish("lobby", "marker a")
    await b.server.publish("lobby", "marker b")
    assert await frames(alice, 1) == messages("marker a")
    assert await frames(bob, 2) == messages("marker a", "marker b")


async def test_each_publisher_s_order_is_kept(nodes: Callable[..., Node]) -> None:
    a, b = nodes(), nodes()
    alice, _ = await a.connect()
    bob, _ = await b.connect()
    from_a = [f"a{i}" for i in range(200)]
    from_b = [f"b{i}" for i in range(200)]

    async def alice_sends() -> None:
        for text in from_a:
            await alice.send(f"msg,chat,{text}")

    async def server_b_publishes() -> None:
        for text in from_b:
            await b.server.publish("lobby", text)

    await asyncio.gather(alice_sends(), server_b_publishes())
    received = await frames(bob, 400)
    assert [m for m in received if m and m.startswith("msg,chat,a")] == messages(
        *from_a
    )
    assert [m for m in received if m and m.startswith("msg,chat,b")] == messages(
        *from_b
    )
    assert await frames(alice, 200) == messages(*from_b)


async def test_one_subscription_per_group_per_process_until_the_last_leaves(
    nodes: Callable[..., Node], observer: Redis
) -> None:
    a, b = nodes(), nodes()
    on_a = [await a.connect() for _ in range(3)]
    on_b = [await b.connect() for _ in range(2)]
    await a.connect("elsewhere")
    assert await subscribers(observer) == 2
    assert await subscribers(observer, "websocket-multiplex:group:elsewhere") == 1
    ids = sorted(member for _, member in on_a + on_b)
    assert await a.server.members("lobby") == ids
    assert await b.server.members("lobby") == ids

    for client, _ in on_a[:2]:
        await client.close()
    remaining = sorted(member for _, member in on_a[2:] + on_b)

    async def they_left() -> bool:
        return await a.server.members("lobby") == remaining

    await eventually(they_left)
    assert await subscribers(observer) == 2  # one member is left on a

    await on_a[2][0].close()

    async def a_unsubscribed() -> bool:
        return await subscribers(observer) == 1

    await eventually(a_unsubscribed)
    for client, _ in on_b:
        await client.close()

    async def nobody_left() -> bool:
        return (
            await subscribers(observer) == 0 and await b.server.members("lobby") == []
        )

    await eventually(nobody_left)
    assert await observer.exists("websocket-multiplex:presence:lobby") == 0


async def test_presence_expires_when_a_process_dies_without_cleaning_up(
    redis_server: RedisServer,
    nodes: Callable[..., Node],
    caplog: pytest.LogCaptureFixture,
) -> None:
    ttl = 0.6
    a = nodes(presence_ttl=ttl)
    _, alice_id = await a.connect()
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        str(MEMBER_PROCESS),
        redis_server.url,
        "lobby",
        str(ttl),
        stdout=asyncio.subprocess.PIPE,
    )
    try:
        assert process.stdout is not None
        async with asyncio.timeout(TIMEOUT):
            other_id = (await process.stdout.readline()).decode().strip()
        assert other_id, "the member process exited early"
        both = sorted([alice_id, other_id])
        assert await a.server.members("lobby") == both
        # Time itself is under test here: refreshed entries outlive the TTL.
        await asyncio.sleep(2 * ttl)
        assert await a.server.members("lobby") == both

        process.kill()  # no close(), no ZREM: only expiry can remove it
        await process.wait()

        async def only_alice() -> bool:
            return await a.server.members("lobby") == [alice_id]

        await eventually(only_alice)
        # Refreshes and PINGs every ttl / 3 kept a's connections alive.
        assert "unreachable" not in caplog.text
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


async def test_a_channel_closed_while_redis_holds_its_join_leaves_no_ghost(
    nodes: Callable[..., Node], observer: Redis
) -> None:
    ttl = 4.5  # refreshed every 1.5 s: the PING check tolerates the pause
    a = nodes(presence_ttl=ttl)
    await eventually(lambda: is_up(a))
    await observer.client_pause(700, all=True)  # SUBSCRIBE waits, unanswered
    client = await connect_in_memory(a.server)
    await client.send("sub,chat")
    await settle()  # the join sent SUBSCRIBE and waits for Redis to confirm
    (channel,) = client.connection.channels
    assert channel.groups == {"lobby"}
    assert a.joined.empty(), "the join ended before the pause did"
    await client.close()  # returns once the handler, and so its join, ended
    assert a.joined.empty()  # the join did not complete: ChannelClosed
    await observer.ping()  # answered once the pause is over

    async def no_trace_left() -> bool:
        return (
            a.server._groups == {}
            and await subscribers(observer) == 0
            and await observer.zrange("websocket-multiplex:presence:lobby", 0, -1) == []
        )

    await eventually(no_trace_left)
    # Time itself is under test: a ghost would be written back by a refresh.
    await asyncio.sleep(ttl / 3 + 0.5)
    assert await observer.zrange("websocket-multiplex:presence:lobby", 0, -1) == []
    assert await a.server.members("lobby") == []


# -- Redis going away ------------------------------------------------------------------


async def test_groups_recover_and_buffered_messages_flow_after_a_redis_restart(
    redis_server: RedisServer,
    nodes: Callable[..., Node],
    observer: Redis,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="websocket_multiplex.fanout.redis")
    a, b = nodes(), nodes()
    alice, alice_id = await a.connect()
    ann, ann_id = await a.connect()
    bob, bob_id = await b.connect()

    await redis_server.kill()
    buffered = [f"during outage {i}" for i in range(3)]
    for text in buffered:
        await a.server.publish("lobby", text)  # neither raises nor waits
    with pytest.raises(BrokerUnavailable):
        await a.server.members("lobby")
    await redis_server.start()

    # a subscribes again before it flushes, so its own members get them all.
    assert await frames(alice, 3) == messages(*buffered)
    assert await frames(ann, 3) == messages(*buffered)
    await eventually(lambda: is_up(a))
    await eventually(lambda: is_up(b))

    # b hears the buffered messages published after it subscribed again:
    # a suffix of them, in order (Redis pub/sub keeps nothing for anyone).
    await ann.send("msg,chat,after")
    heard: list[str | None] = []
    async with asyncio.timeout(TIMEOUT):
        while (heard and heard[-1]) != "msg,chat,after":
            heard.append(await bob.receive())
    before = heard[:-1]
    assert before == messages(*buffered)[len(buffered) - len(before) :]
    assert await frames(alice, 1) == messages("after")

    await bob.send("msg,chat,reply")
    assert await frames(alice, 1) == messages("reply")
    assert await frames(ann, 1) == messages("reply")

    assert await subscribers(observer) == 2
    assert await b.server.members("lobby") == sorted([alice_id, ann_id, bob_id])
    assert f"redis unreachable at {redis_server.url}, retrying in" in caplog.text
    assert f"redis reachable again at {redis_server.url}" in caplog.text


async def test_members_who_left_during_an_outage_are_removed_when_it_ends(
    nodes: Callable[..., Node], proxy: Proxy, observer: Redis
) -> None:
    a = nodes(url=proxy.url)  # presence_ttl 30 s: nothing expires meanwhile
    alice, alice_id = await a.connect()
    ann, ann_id = await a.connect()
    key = "websocket-multiplex:presence:lobby"
    assert sorted(await observer.zrange(key, 0, -1)) == sorted(
        [alice_id.encode(), ann_id.encode()]
    )

    proxy.cut()  # Redis keeps running, and keeps ann's entry

    async def a_is_down() -> bool:
        return not await is_up(a)

    await eventually(a_is_down)
    await ann.close()
    await settle()
    assert a.server._groups["lobby"] == {a_channel(alice)}
    assert ann_id.encode() in await observer.zrange(key, 0, -1)

    proxy.restore()

    async def ann_is_gone() -> bool:
        return await observer.zrange(key, 0, -1) == [alice_id.encode()]

    await eventually(ann_is_gone)
    await eventually(lambda: is_up(a))
    assert await a.server.members("lobby") == [alice_id]
    await a.server.publish("lobby", "still here")
    assert await frames(alice, 1) == messages("still here")


class RecordedDelays:
    """Reconnect delays of 10 ms that record each attempt number asked for."""

    def __init__(self) -> None:
        self.attempts = asyncio.Queue[int]()

    def delay(self, attempt: int) -> float:
        self.attempts.put_nowait(attempt)
        return 0.01

    async def next(self, count: int) -> list[int]:
        return [await item(self.attempts) for _ in range(count)]

    def drain(self) -> list[int]:
        return [self.attempts.get_nowait() for _ in range(self.attempts.qsize())]


async def test_reconnect_attempts_count_up_until_a_session_lasts(
    nodes: Callable[..., Node], proxy: Proxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    stable = 1.0
    monkeypatch.setattr(redis_module, "STABLE_SESSION", stable)
    delays = RecordedDelays()
    proxy.cut()  # accepts connections and closes them at once
    a = nodes(url=proxy.url, reconnect=delays)
    with pytest.raises(BrokerUnavailable):
        await a.server.members("lobby")  # starts the broker
    assert await delays.next(4) == [0, 1, 2, 3]

    # A session that ends at once (Redis accepts, then drops) is no reason
    # to start again from the shortest delay.
    proxy.restore()
    await eventually(lambda: is_up(a))
    last = max([3, *delays.drain()])
    proxy.cut()
    assert await delays.next(2) == [last + 1, last + 2]

    # A session that lasted STABLE_SESSION is: the next outage starts over.
    proxy.restore()
    await eventually(lambda: is_up(a))
    delays.drain()
    await asyncio.sleep(stable * 1.5)  # time itself is under test
    proxy.cut()
    assert await delays.next(3) == [0, 1, 2]


@pytest.mark.parametrize("attempt", range(8))
def test_the_default_reconnect_delays_double_up_to_five_seconds(attempt: int) -> None:
    ceiling = min(5.0, 0.1 * 2**attempt)
    delays = [DEFAULT_RECONNECT.delay(attempt) for _ in range(200)]
    assert all(0 <= delay <= ceiling for delay in delays)
    # Full jitter over the whole range: P(none above half) = 2 ** -200.
    assert max(delays) > ceiling / 2


async def test_a_full_outage_buffer_refuses_the_publish(
    redis_server: RedisServer, nodes: Callable[..., Node]
) -> None:
    a = nodes(outage_buffer=3)
    ann, _ = await a.connect()
    await redis_server.kill()
    for i in range(3):
        await a.server.publish("lobby", f"kept {i}")
    with pytest.raises(BrokerUnavailable, match="outage_buffer"):
        await a.server.publish("lobby", "one too many")
    await redis_server.start()
    assert await frames(ann, 3) == messages("kept 0", "kept 1", "kept 2")
    await a.server.publish("lobby", "after")
    assert await frames(ann, 1) == messages("after")  # and nothing in between


async def test_a_broker_started_while_redis_is_down_connects_when_it_is_up(
    redis_server: RedisServer, nodes: Callable[..., Node]
) -> None:
    await redis_server.kill()
    a = nodes()
    alice, alice_id = await a.connect()  # joining works offline
    ann, ann_id = await a.connect()
    await alice.send("msg,chat,sent offline")
    await redis_server.start()
    assert await frames(ann, 1) == messages("sent offline")
    assert await a.server.members("lobby") == sorted([alice_id, ann_id])


async def test_closing_during_an_outage_drops_the_buffer_with_a_warning(
    redis_server: RedisServer,
    nodes: Callable[..., Node],
    caplog: pytest.LogCaptureFixture,
) -> None:
    a = nodes()
    await a.connect()
    await redis_server.kill()
    await a.server.publish("lobby", "never sent")
    async with asyncio.timeout(TIMEOUT):
        await a.server.close()
    assert "closing with 1 messages never published" in caplog.text


# -- hygiene ---------------------------------------------------------------------------


async def test_close_leaves_no_task_connection_or_presence_behind(
    nodes: Callable[..., Node],
    observer: Redis,
    caplog: pytest.LogCaptureFixture,
) -> None:
    a = nodes()
    await a.connect()
    assert await subscribers(observer) == 1
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        await a.server.close()
        gc.collect()
    assert [w for w in caught if issubclass(w.category, ResourceWarning)] == []
    assert [t for t in asyncio.all_tasks() if "redis-broker" in t.get_name()] == []
    assert "Task was destroyed" not in caplog.text

    async def only_the_observer_is_connected() -> bool:
        return len(await observer.client_list()) == 1

    await eventually(only_the_observer_is_connected)
    assert await subscribers(observer) == 0
    assert await observer.exists("websocket-multiplex:presence:lobby") == 0


async def test_a_foreign_message_on_a_group_channel_is_ignored(
    nodes: Callable[..., Node],
    observer: Redis,
    caplog: pytest.LogCaptureFixture,
) -> None:
    a = nodes()
    alice, _ = await a.connect()
    await observer.publish(LOBBY, b"not json")
    await observer.publish(LOBBY, b'{"m": 42}')
    await a.server.publish("lobby", "still here")
    assert await frames(alice, 1) == messages("still here")
    assert caplog.text.count("that is not {m, x} JSON") == 2


# -- pure parts ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "delivery",
    [
        Delivery("g", "hello", None),
        Delivery("g", 'caf\u00e9 \U0001f600 \ud800 "quoted" \\', "p:1/2/chat"),
        Delivery("g", "", ""),
    ],
)
def test_the_wire_format_round_trips(delivery: Delivery) -> None:
    payload = encode(delivery)
    assert payload.isascii()
    assert decode("g", payload.encode()) == delivery


@pytest.mark.parametrize(
    "payload", [b"", b"[]", b'{"x": null}', b'{"m": 1}', b'{"m": "a", "x": 2}', b"\xff"]
)
def test_foreign_payloads_decode_to_none(payload: bytes) -> None:
    assert decode("g", payload) is None


def test_log_lines_never_show_a_password() -> None:
    assert redact("redis://user:secret@host:6379/0") == "redis://user:***@host:6379/0"
    assert redact("redis://:secret@host/0") == "redis://:***@host/0"
    assert redact("redis://host:6379/0") == "redis://host:6379/0"


@pytest.mark.parametrize(
    "options", [{"outage_buffer": -1}, {"presence_ttl": 0}, {"timeout": -1.0}]
)
def test_nonsense_settings_are_refused(options: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        RedisBroker(**options)  # type: ignore[arg-type]


async def test_killing_the_publisher_connection_alone_loses_no_message(
    nodes: Callable[..., Node], observer: Redis
) -> None:
    a = nodes()
    ann, _ = await a.connect()
    await a.server.publish("lobby", "before")
    assert await frames(ann, 1) == messages("before")
    killed = await observer.client_kill_filter(_type="normal")
    assert killed >= 1  # the publisher client; the subscriber is TYPE pubsub
    # Either the pool notices and reconnects, or the publish fails, the
    # message is buffered and the broker reconnects: it arrives either way.
    await a.server.publish("lobby", "after")
    assert await frames(ann, 1) == messages("after")
