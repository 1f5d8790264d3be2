"""What the server relies on from any broker, checked on both of ours."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from websocket_multiplex.fanout import Broker, Delivery, InMemoryBroker

from ..asyncio.helpers import item
from .redis_server import RedisServer, unavailable


@pytest.fixture(params=["memory", "redis"])
async def broker(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[Broker]:
    if request.param == "memory":
        memory = InMemoryBroker()
        yield memory
        await memory.close()
        return
    try:
        from websocket_multiplex.fanout.redis import RedisBroker
    except ImportError:  # pragma: no cover - the test extra installs redis
        unavailable("the redis package is not installed: pip install -e '.[test]'")
    server = RedisServer(tmp_path)
    await server.start()
    redis = RedisBroker(server.url)
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
    assert [await item(delivered) for _ in sent] == sent

    await broker.unsubscribe("g")
    await broker.subscribe("h")
    await broker.publish(Delivery("g", "after unsubscribe"))
    await broker.publish(Delivery("nobody", "to a group nobody subscribed"))
    await broker.publish(Delivery("h", "marker"))
    # Had either of the first two been delivered, it would come first.
    assert await item(delivered) == Delivery("h", "marker")
    assert delivered.empty()


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
