"""broker.py: RedisBroker, the facade, against a real redis-server that the
tests kill and restart; each Node stands for one server process."""

from __future__ import annotations

import asyncio
import gc
import logging
import warnings
from collections.abc import Callable

import pytest
from redis.asyncio import Redis

from websocket_multiplex.exceptions import LocalProtocolError
from websocket_multiplex.fanout import BrokerUnavailable, Delivery
from websocket_multiplex.fanout.redis import RedisBroker
from websocket_multiplex.fanout.redis.wire import Names, redact

from ...asyncio.helpers import frames
from ...support.proxy import Proxy
from ..redis_server import RedisServer
from .support import (
    REDIS_URL,
    Node,
    eventually,
    is_up,
    messages,
    subscribers,
    through,
)

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

    # b hears every buffered message, in order, once: those published before
    # it subscribed again from the group's history (a new one: this Redis
    # kept nothing), the others live.
    await ann.send("msg,chat,after")
    assert await frames(bob, 4) == messages(*buffered, "after")
    assert await frames(alice, 1) == messages("after")

    await bob.send("msg,chat,reply")
    assert await frames(alice, 1) == messages("reply")
    assert await frames(ann, 1) == messages("reply")

    assert await subscribers(observer) == 2
    assert await b.server.members("lobby") == sorted([alice_id, ann_id, bob_id])
    assert f"redis unreachable at {redis_server.url}, retrying in" in caplog.text
    assert f"redis reachable again at {redis_server.url}" in caplog.text


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


@pytest.mark.parametrize(
    "options", [{"outage_buffer": -1}, {"presence_ttl": 0}, {"timeout": -1.0}]
)
def test_nonsense_settings_are_refused(options: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        RedisBroker(**options)  # type: ignore[arg-type]


async def test_a_broker_serves_one_server_once(shared: Redis, names: Names) -> None:
    broker = RedisBroker(REDIS_URL, channel_prefix=names.prefix)
    assert repr(broker) == f"<RedisBroker {redact(REDIS_URL)} down>"
    with pytest.raises(BrokerUnavailable, match="not running"):
        await broker.publish(Delivery("g", "before start"))
    await broker.start(lambda delivery: None)
    try:
        assert repr(broker) == f"<RedisBroker {redact(REDIS_URL)} up>"
        with pytest.raises(LocalProtocolError):
            await broker.start(lambda delivery: None)
    finally:
        await broker.close()
    assert repr(broker) == f"<RedisBroker {redact(REDIS_URL)} closed>"
    await broker.close()  # twice is once
    with pytest.raises(BrokerUnavailable, match="not running"):
        await broker.publish(Delivery("g", "after close"))
    with pytest.raises(LocalProtocolError):
        await broker.start(lambda delivery: None)


def test_the_url_in_the_repr_hides_the_password() -> None:
    broker = RedisBroker("redis://user:secret@redis:6379/0")
    assert repr(broker) == "<RedisBroker redis://user:***@redis:6379/0 down>"


async def test_a_process_cut_off_from_redis_gets_what_others_published_meanwhile(
    nodes: Callable[..., Node], proxy: Proxy
) -> None:
    a, b = nodes(url=through(proxy)), nodes()
    alice, _ = await a.connect()
    bob, _ = await b.connect()
    await b.server.publish("lobby", "before")
    assert await frames(alice, 1) == messages("before")
    proxy.cut()  # Redis keeps running, and keeps the group's history

    async def a_is_down() -> bool:
        return not await is_up(a)

    await eventually(a_is_down)
    missed = [f"missed {i}" for i in range(5)]
    for text in missed:
        await b.server.publish("lobby", text)
    proxy.restore()
    # From the history, once, in order, before what comes live.
    await eventually(lambda: is_up(a))
    await bob.send("msg,chat,live")
    assert await frames(alice, 6) == messages(*missed, "live")
    await b.server.publish("lobby", "marker")
    assert await frames(alice, 1) == messages("marker")  # and nothing twice


async def test_a_process_back_after_the_history_was_trimmed_warns_of_the_loss(
    nodes: Callable[..., Node], proxy: Proxy, caplog: pytest.LogCaptureFixture
) -> None:
    a, b = nodes(url=through(proxy), history_size=2), nodes(history_size=2)
    alice, _ = await a.connect()
    await b.connect()
    await b.server.publish("lobby", "before")
    assert await frames(alice, 1) == messages("before")
    proxy.cut()

    async def a_is_down() -> bool:
        return not await is_up(a)

    await eventually(a_is_down)
    for i in range(5):
        await b.server.publish("lobby", f"missed {i}")
    proxy.restore()
    await eventually(lambda: is_up(a))
    assert await frames(alice, 2) == messages("missed 3", "missed 4")
    assert "are no longer in its history: lost for this process" in caplog.text
