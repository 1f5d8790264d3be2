"""Shared by the Redis broker tests: server nodes, a Link to switch by hand,
and bounded polls of state that changes in Redis.

Each :class:`Node` stands for one server process: a MultiplexServer with a
RedisBroker of its own (one subscriber connection, one publisher client).
The parts' own tests drive one part against the shared Redis on
127.0.0.1:6379 (``REDIS_URL``), under a key prefix of the test's own.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from urllib.parse import urlsplit, urlunsplit

from redis.asyncio import Redis

from websocket_multiplex import Backoff, Channel, MultiplexServer, RequestInfo
from websocket_multiplex.fanout import BrokerUnavailable
from websocket_multiplex.fanout.redis import RedisBroker
from websocket_multiplex.testing import MemoryClient, connect_in_memory

from ...asyncio.helpers import TIMEOUT, item
from ...support.proxy import Proxy

FAST = Backoff(initial=0.05, maximum=0.2)
LOBBY = "websocket-multiplex:group:lobby"
REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")


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


def through(proxy: Proxy, url: str = "redis://127.0.0.1/0") -> str:
    """``url`` (the test's Redis, or :data:`REDIS_URL`), reached through
    ``proxy``."""
    return urlunsplit(urlsplit(url)._replace(netloc=f"127.0.0.1:{proxy.port}"))


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


@dataclass
class SwitchLink:
    """A :class:`~websocket_multiplex.fanout.redis.link.Link` that the test
    takes up and down by hand, in place of the subscriber session: the
    seam the publisher and presence follow. ``on_down`` is what the broker
    does when a session ends (release the publisher's waiters)."""

    up: bool = False
    connected: bool = False
    session: int = 1
    failures: list[BaseException] = field(default_factory=list)
    on_down: Callable[[], None] = lambda: None
    _went_up: asyncio.Event = field(default_factory=asyncio.Event)

    def go_up(self) -> None:
        self.up = self.connected = True
        self._went_up.set()

    def go_down(self) -> None:
        self.up = self.connected = False
        self.session += 1
        self._went_up.clear()
        self.on_down()

    async def wait_up(self) -> None:
        await self._went_up.wait()

    def fail(self, exc: BaseException, session: int) -> None:
        if session == self.session:
            self.failures.append(exc)
            self.go_down()
