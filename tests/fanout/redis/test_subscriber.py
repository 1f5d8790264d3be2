"""subscriber.py: the pub/sub session, its reconnects and resubscriptions.

The focused tests run a Subscriber against the shared Redis (directly, or
through a proxy the test cuts), with an owner that only counts what it is
asked; the others run whole nodes on a Redis of the test's own.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

import pytest
from redis.asyncio import Redis

from websocket_multiplex import Backoff
from websocket_multiplex.fanout import BrokerUnavailable, Delivery
from websocket_multiplex.fanout.broker import Replay
from websocket_multiplex.fanout.redis import subscriber as subscriber_module
from websocket_multiplex.fanout.redis.subscriber import (
    DEFAULT_RECONNECT,
    STABLE_SESSION,
    Confirmations,
    Retries,
    Subscriber,
)
from websocket_multiplex.fanout.redis.wire import Names, encode
from websocket_multiplex.streams import Position

from ...asyncio.helpers import TIMEOUT, frames, item, settle
from ...support.proxy import Proxy
from .support import (
    FAST,
    LOBBY,
    REDIS_URL,
    Node,
    RecordedDelays,
    eventually,
    is_up,
    messages,
    subscribers,
    through,
)


@dataclass
class CountingOwner:
    """A SessionOwner that writes nothing and counts what it is asked."""

    buffered: int = 0
    restores: int = 0
    refreshes: int = 0
    endings: int = 0

    async def restore(self) -> None:
        self.restores += 1

    async def refresh(self) -> None:
        self.refreshes += 1

    def session_ended(self) -> None:
        self.endings += 1

    async def recover(self, group: str, since: Position | None) -> Replay:
        return Replay((), complete=True)

    async def head(self, group: str) -> Position | None:
        return None


@dataclass
class Running:
    """A started Subscriber, its owner, and what it delivered."""

    subscriber: Subscriber
    owner: CountingOwner
    delivered: asyncio.Queue[Delivery]

    async def up(self) -> bool:
        return self.subscriber.up

    async def down(self) -> bool:
        return not self.subscriber.up


@contextlib.asynccontextmanager
async def running(
    names: Names, url: str, *groups: str, keep_alive: float = 30.0
) -> AsyncIterator[Running]:
    """A Subscriber on ``url``, subscribed to ``groups`` before it started;
    yields once its first session went up or failed."""
    subscriber = Subscriber(url, names, reconnect=FAST, timeout=TIMEOUT)
    for group in groups:
        await subscriber.subscribe(group)
    it = Running(subscriber, CountingOwner(), asyncio.Queue())
    subscriber.start(it.delivered.put_nowait, it.owner)
    tasks = [
        asyncio.create_task(subscriber.run()),
        asyncio.create_task(subscriber.keep_alive(keep_alive)),
    ]
    try:
        async with asyncio.timeout(TIMEOUT):
            await subscriber.first_attempt()
        yield it
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await subscriber.close()


async def publish(shared: Redis, names: Names, group: str, text: str) -> None:
    await shared.publish(names.channel(group), encode(Delivery(group, text)))


# -- against the shared Redis ----------------------------------------------------------


async def test_a_session_subscribes_the_groups_wanted_and_delivers_theirs(
    shared: Redis, names: Names
) -> None:
    async with running(names, REDIS_URL, "g") as it:
        assert it.subscriber.up
        assert it.owner.restores == 1
        assert await subscribers(shared, names.channel("g")) == 1
        await shared.publish(names.channel("g"), encode(Delivery("g", "hi", "p/1")))
        assert await item(it.delivered) == Delivery("g", "hi", "p/1")

        await it.subscriber.subscribe("h")  # returns once Redis confirmed it
        assert await subscribers(shared, names.channel("h")) == 1
        await it.subscriber.unsubscribe("g")
        assert it.subscriber.groups == {"h"}
        await publish(shared, names, "g", "after unsubscribe")
        await publish(shared, names, "h", "marker")
        # Had the first been delivered, it would come first.
        assert await item(it.delivered) == Delivery("h", "marker")
        assert it.delivered.empty()


async def test_after_a_lost_connection_the_next_session_subscribes_again(
    shared: Redis, shared_proxy: Proxy, names: Names
) -> None:
    async with running(names, through(shared_proxy, REDIS_URL), "g", "h") as it:
        assert it.subscriber.up
        shared_proxy.cut()  # Redis keeps running: a partition
        await eventually(it.down)
        assert it.owner.endings >= 1
        await it.subscriber.subscribe("later")  # while down: the next session
        shared_proxy.restore()
        await eventually(it.up)
        assert it.owner.restores >= 2
        for group in ("g", "h", "later"):
            assert await subscribers(shared, names.channel(group)) == 1
            await publish(shared, names, group, f"to {group}")
            assert await item(it.delivered) == Delivery(group, f"to {group}")


async def test_a_failure_reported_for_an_earlier_session_is_ignored(
    names: Names,
) -> None:
    async with running(names, REDIS_URL) as it:
        session = it.subscriber.session
        it.subscriber.fail(ConnectionError("stale"), session - 1)
        await settle()
        assert it.subscriber.up and it.subscriber.session == session
        it.subscriber.fail(ConnectionError("lost"), session)
        assert not it.subscriber.up  # at once: publishes buffer from now on
        assert it.owner.endings >= 1
        await eventually(it.up)
        assert it.subscriber.session > session


async def test_a_silent_connection_is_noticed_by_the_keep_alive(
    shared_proxy: Proxy, names: Names, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="websocket_multiplex.fanout.redis")
    url = through(shared_proxy, REDIS_URL)
    async with running(names, url, "g", keep_alive=0.1) as it:
        session = it.subscriber.session

        async def refreshed() -> bool:
            return it.owner.refreshes >= 2  # PONGs came back in time

        await eventually(refreshed)
        shared_proxy.stall()  # nothing comes back: no PONG by the next tick
        await eventually(it.down)

        async def logged() -> bool:  # once the session has ended, after down
            return "the subscriber connection stopped answering" in caplog.text

        await eventually(logged)
        await eventually(it.up)  # new connections get through again
        assert it.subscriber.session > session


# -- pure parts ------------------------------------------------------------------------


def test_attempts_count_up_until_a_session_lasts() -> None:
    retries = Retries()
    assert retries.next(now=0.0) == (0, True)  # the first failure: a warning
    assert retries.next(now=1.0) == (1, False)
    assert retries.went_up(now=2.0) == 2.0  # down for 2 s
    assert retries.next(now=3.0) == (2, True)  # a short session: no start over
    assert retries.went_up(now=4.0) == 1.0
    assert retries.next(now=4.0 + STABLE_SESSION + 0.1) == (0, True)
    assert retries.went_up(now=20.0) == pytest.approx(20.0 - 4.0 - STABLE_SESSION - 0.1)


async def test_confirmations_come_in_order_per_channel_and_all_on_loss() -> None:
    confirmations = Confirmations()
    first, second = confirmations.expect(["a", "a"])
    (other,) = confirmations.expect(["b"])
    confirmations.confirm(b"a")
    assert first.done() and not second.done() and not other.done()
    confirmations.confirm(b"never expected")  # harmless
    confirmations.release_all()  # the connection is gone: nobody waits
    assert second.done() and other.done()


def test_the_default_reconnect_is_the_client_s_backoff_with_its_own_bounds() -> None:
    assert Backoff(initial=0.1, maximum=5.0) == DEFAULT_RECONNECT


# -- whole nodes, on a Redis of the test's own -----------------------------------------


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


async def test_reconnect_attempts_count_up_until_a_session_lasts(
    nodes: Callable[..., Node], proxy: Proxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    stable = 1.0
    monkeypatch.setattr(subscriber_module, "STABLE_SESSION", stable)
    delays = RecordedDelays()
    proxy.cut()  # accepts connections and closes them at once
    a = nodes(url=through(proxy), reconnect=delays)
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
