"""What the server relies on from any broker, checked on both of ours."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from websocket_multiplex.fanout import Broker, Delivery, InMemoryBroker
from websocket_multiplex.fanout.broker import Replay
from websocket_multiplex.streams import Position

from ..asyncio.helpers import item
from .redis_server import RedisServer, unavailable


@pytest.fixture(params=["memory", "redis"])
async def broker(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[Broker]:
    async with made(request.param, tmp_path) as broker:
        yield broker


@contextlib.asynccontextmanager
async def made(kind: str, tmp_path: Path, **history: Any) -> AsyncIterator[Broker]:
    if kind == "memory":
        memory = InMemoryBroker(**history)
        yield memory
        await memory.close()
        return
    try:
        from websocket_multiplex.fanout.redis import RedisBroker
    except ImportError:  # pragma: no cover - the test extra installs redis
        unavailable("the redis package is not installed: pip install -e '.[test]'")
    server = RedisServer(tmp_path)
    await server.start()
    redis = RedisBroker(server.url, **history)
    try:
        yield redis
    finally:
        await redis.close()
        await server.kill()


async def test_deliveries_follow_subscriptions_in_publish_order(broker: Broker) -> None:
    delivered = asyncio.Queue[Delivery]()
    await broker.start(delivered.put_nowait)
    await broker.subscribe("g")
    await broker.subscribe("g")  # twice is once
    sent = [Delivery("g", f"m{i}", "p/1/chat" if i % 2 else None) for i in range(20)]
    for delivery in sent:
        await broker.publish(delivery)
    got = [await item(delivered) for _ in sent]
    assert [replace(d, position=None) for d in got] == sent
    # Each has its place in the group's history: one epoch, offsets 1, 2, ...
    assert len({d.position.epoch for d in got if d.position}) == 1
    assert [d.position.offset for d in got if d.position] == [
        str(n) for n in range(1, 21)
    ]

    await broker.unsubscribe("g")
    await broker.subscribe("h")
    await broker.publish(Delivery("g", "after unsubscribe"))
    await broker.publish(Delivery("nobody", "to a group nobody subscribed"))
    await broker.publish(Delivery("h", "marker"))
    # Had either of the first two been delivered, it would come first.
    assert replace(await item(delivered), position=None) == Delivery("h", "marker")
    assert delivered.empty()


async def test_the_history_gives_what_follows_a_position(broker: Broker) -> None:
    delivered = asyncio.Queue[Delivery]()
    await broker.start(delivered.put_nowait)
    await broker.subscribe("g")
    for n in range(1, 6):
        await broker.publish(Delivery("g", f"m{n}", "p/1/chat" if n == 4 else None))
    got = [await item(delivered) for _ in range(5)]
    second = got[1].position
    assert second is not None
    replay = await broker.history("g", second)
    assert replay.complete
    assert replay.deliveries == tuple(got[2:])  # exclusions kept: joins apply them
    last = got[-1].position
    assert last is not None
    assert await broker.history("g", last) == Replay((), complete=True)
    # Published while nobody was subscribed: still in the history.
    await broker.unsubscribe("g")
    await broker.publish(Delivery("g", "m6"))
    [sixth] = (await broker.history("g", last)).deliveries
    assert (sixth.message, sixth.position) == ("m6", Position(last.epoch, "6"))
    # Another epoch, a position never given, another group: nothing to go on.
    for group, position in [
        ("g", Position("other", "2")),
        ("g", Position(last.epoch, "99")),
        ("h", second),
    ]:
        assert await broker.history(group, position) == Replay((), complete=False)


@pytest.mark.parametrize("kind", ["memory", "redis"])
async def test_a_trimmed_history_says_it_is_not_complete(
    kind: str, tmp_path: Path
) -> None:
    async with made(kind, tmp_path, history_size=3) as broker:
        delivered = asyncio.Queue[Delivery]()
        await broker.start(delivered.put_nowait)
        await broker.subscribe("g")
        for n in range(1, 7):
            await broker.publish(Delivery("g", f"m{n}"))
        got = [await item(delivered) for _ in range(6)]
        first, third = got[0].position, got[2].position
        assert first is not None and third is not None
        replay = await broker.history("g", first)  # 2 and 3 are gone
        assert not replay.complete
        assert [d.message for d in replay.deliveries] == ["m4", "m5", "m6"]
        replay = await broker.history("g", third)  # 4, 5, 6 are kept
        assert replay.complete
        assert [d.message for d in replay.deliveries] == ["m4", "m5", "m6"]


@pytest.mark.parametrize("kind", ["memory", "redis"])
async def test_messages_older_than_the_history_age_are_not_replayed(
    kind: str, tmp_path: Path
) -> None:
    async with made(kind, tmp_path, history_age=0.2) as broker:
        delivered = asyncio.Queue[Delivery]()
        await broker.start(delivered.put_nowait)
        await broker.subscribe("g")
        for n in range(1, 4):
            await broker.publish(Delivery("g", f"m{n}"))
        got = [await item(delivered) for _ in range(3)]
        first = got[0].position
        assert first is not None
        assert (await broker.history("g", first)).complete
        await asyncio.sleep(0.3)  # the age itself is what the test waits for
        assert await broker.history("g", first) == Replay((), complete=False)


@pytest.mark.parametrize("kind", ["memory", "redis"])
async def test_without_a_history_messages_have_no_position(
    kind: str, tmp_path: Path
) -> None:
    async with made(kind, tmp_path, history_size=0) as broker:
        delivered = asyncio.Queue[Delivery]()
        await broker.start(delivered.put_nowait)
        await broker.subscribe("g")
        await broker.publish(Delivery("g", "m"))
        assert await item(delivered) == Delivery("g", "m")
        assert await broker.history("g", Position("e", "1")) == Replay((), False)


async def test_presence_lists_who_is_in_and_forgets_who_left(broker: Broker) -> None:
    await broker.start(lambda delivery: None)
    await broker.set_presence("g", "b", True)
    await broker.set_presence("g", "a", True)
    await broker.set_presence("h", "c", True)
    assert await broker.members("g") == ["a", "b"]
    await broker.set_presence("g", "b", False)
    await broker.set_presence("g", "b", False)  # twice is once
    await broker.set_presence("g", "never", False)  # harmless
    assert await broker.members("g") == ["a"]
    assert await broker.members("h") == ["c"]
    assert await broker.members("empty") == []
