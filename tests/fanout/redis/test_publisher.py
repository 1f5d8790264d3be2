"""publisher.py: publishes in order, and the backlog bounded by outage_buffer.

The focused tests drive a Publisher against the shared Redis, with a
:class:`~.support.SwitchLink` for the session: an outage is the link going
down, which the test decides. The others run whole nodes on a Redis of the
test's own, which they kill.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any

import pytest
from redis.asyncio import Redis
from redis.asyncio.client import PubSub

from websocket_multiplex.fanout import BrokerUnavailable, Delivery
from websocket_multiplex.fanout.redis.link import command_client
from websocket_multiplex.fanout.redis.publisher import PUBLISH_BATCH, Publisher
from websocket_multiplex.fanout.redis.wire import Names, decode, encode

from ...asyncio.helpers import TIMEOUT, frames, settle
from ...support.proxy import Proxy
from ..redis_server import RedisServer
from .support import REDIS_URL, Node, SwitchLink, messages, through


@pytest.fixture
async def listener(shared: Redis, names: Names) -> AsyncIterator[PubSub]:
    """Subscribed to group ``g``'s channel, and confirmed."""
    pubsub = shared.pubsub()
    await pubsub.subscribe(names.channel("g"))
    async with asyncio.timeout(TIMEOUT):
        while await pubsub.get_message(timeout=TIMEOUT) is None:
            pass  # the subscribe confirmation
    yield pubsub
    await pubsub.aclose()


async def heard(listener: PubSub, count: int) -> list[str]:
    """The next ``count`` messages published to group ``g``, decoded."""
    texts: list[str] = []
    async with asyncio.timeout(TIMEOUT):
        while len(texts) < count:
            message = await listener.get_message(
                ignore_subscribe_messages=True, timeout=TIMEOUT
            )
            if message is not None:
                delivery = decode("g", message["data"])
                assert delivery is not None, message
                texts.append(delivery.message)
    return texts


def publisher_on(
    names: Names, link: SwitchLink, outage_buffer: int = 1000
) -> Publisher:
    publisher = Publisher(names, link, outage_buffer=outage_buffer, where="test")
    link.on_down = publisher.release  # as the broker does when a session ends
    return publisher


@contextlib.asynccontextmanager
async def running(work: Coroutine[Any, Any, None]) -> AsyncIterator[None]:
    task = asyncio.create_task(work)
    try:
        yield
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


# -- the backlog, against the shared Redis ---------------------------------------------


async def test_the_backlog_is_held_during_an_outage_and_flushed_in_order_after_it(
    shared: Redis, client: Redis, names: Names, listener: PubSub
) -> None:
    link = SwitchLink()  # down: Redis is unreachable
    publisher = publisher_on(names, link)
    texts = [f"m{i}" for i in range(50)]
    async with running(publisher.run(client)):
        for text in texts:
            await publisher.publish(Delivery("g", text))  # returns: buffered
        assert publisher.buffered == len(texts)
        await settle()
        # Had any gone out while down, it would be heard before this one.
        await shared.publish(names.channel("g"), encode(Delivery("g", "marker")))
        assert await heard(listener, 1) == ["marker"]

        link.go_up()
        assert await heard(listener, len(texts)) == texts
        await publisher.publish(Delivery("g", "after"))  # returns once Redis took it
        assert publisher.buffered == 0
        assert await heard(listener, 1) == ["after"]


async def test_a_full_backlog_refuses_the_next_publish_and_keeps_the_rest(
    shared: Redis, client: Redis, names: Names, listener: PubSub
) -> None:
    link = SwitchLink()
    publisher = publisher_on(names, link, outage_buffer=3)
    for i in range(3):
        await publisher.publish(Delivery("g", f"kept {i}"))
    with pytest.raises(BrokerUnavailable, match=r"3 messages .*outage_buffer.*'g'"):
        await publisher.publish(Delivery("g", "one too many"))
    assert publisher.buffered == 3
    async with running(publisher.run(client)):
        link.go_up()
        await publisher.publish(Delivery("g", "after"))
        assert await heard(listener, 4) == ["kept 0", "kept 1", "kept 2", "after"]


async def test_a_backlog_longer_than_one_pipeline_keeps_its_order(
    client: Redis, names: Names, listener: PubSub
) -> None:
    link = SwitchLink()
    publisher = publisher_on(names, link, outage_buffer=3 * PUBLISH_BATCH)
    texts = [f"m{i}" for i in range(2 * PUBLISH_BATCH + 7)]
    for text in texts:
        await publisher.publish(Delivery("g", text))
    async with running(publisher.run(client)):
        link.go_up()
        assert await heard(listener, len(texts)) == texts


async def test_a_publish_waits_for_redis_until_the_session_ends(
    client: Redis, names: Names, listener: PubSub
) -> None:
    link = SwitchLink()
    link.go_up()
    publisher = publisher_on(names, link)
    waiting = asyncio.create_task(publisher.publish(Delivery("g", "held")))
    await settle()  # nothing writes: the publish waits for Redis to take it
    assert not waiting.done()
    link.fail(ConnectionError("lost"), link.session)
    async with asyncio.timeout(TIMEOUT):
        await waiting  # released: the message stays buffered for the next session
    assert publisher.buffered == 1
    async with running(publisher.run(client)):
        link.go_up()
        assert await heard(listener, 1) == ["held"]


async def test_a_pipeline_cut_by_a_lost_connection_ends_the_session_and_goes_again(
    shared_proxy: Proxy, names: Names, listener: PubSub
) -> None:
    client = command_client(through(shared_proxy, REDIS_URL), TIMEOUT)
    link = SwitchLink()
    link.go_up()
    publisher = publisher_on(names, link)
    try:
        async with running(publisher.run(client)):
            await publisher.publish(Delivery("g", "before"))
            assert await heard(listener, 1) == ["before"]
            shared_proxy.cut()
            await publisher.publish(Delivery("g", "cut"))  # released by the failure
            assert len(link.failures) == 1
            assert not link.up
            assert publisher.buffered == 1
            shared_proxy.restore()
            link.go_up()
            assert await heard(listener, 1) == ["cut"]
    finally:
        await client.aclose()


async def test_closing_drops_the_backlog_and_refuses_whoever_waits(
    names: Names, caplog: pytest.LogCaptureFixture
) -> None:
    link = SwitchLink()
    link.go_up()
    publisher = publisher_on(names, link)
    waiting = asyncio.create_task(publisher.publish(Delivery("g", "never")))
    await settle()
    publisher.drop()
    with pytest.raises(BrokerUnavailable, match="the broker closed"):
        await waiting
    assert publisher.buffered == 0
    assert "closing with 1 messages never published (redis unreachable at test)" in (
        caplog.text
    )


# -- whole nodes, on a Redis of the test's own -----------------------------------------


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
