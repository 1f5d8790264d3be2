"""presence.py: this process's members in Redis, refreshed and expiring.

The focused tests drive Presence objects (one per process) against the
shared Redis, with a :class:`~.support.SwitchLink` for the session. The
others run whole nodes on a Redis of the test's own.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from redis.asyncio import Redis

from websocket_multiplex.fanout import BrokerUnavailable
from websocket_multiplex.fanout.redis.link import command_client
from websocket_multiplex.fanout.redis.presence import Presence
from websocket_multiplex.fanout.redis.wire import Names
from websocket_multiplex.testing import connect_in_memory

from ...asyncio.helpers import TIMEOUT, frames, settle
from ...support.proxy import Proxy
from ..redis_server import RedisServer
from .support import (
    REDIS_URL,
    Node,
    SwitchLink,
    a_channel,
    eventually,
    is_up,
    messages,
    subscribers,
    through,
)

MEMBER_PROCESS = Path(__file__).with_name("member_process.py")


def presence_on(
    names: Names, client: Redis, link: SwitchLink, ttl: float = 30.0
) -> Presence:
    """One process's presence, attached to ``client`` as on start."""
    presence = Presence(names, link, ttl=ttl, timeout=TIMEOUT, where="test")
    presence.attach(client)
    return presence


def connected() -> SwitchLink:
    link = SwitchLink()
    link.go_up()
    return link


async def in_redis(shared: Redis, names: Names, group: str = "g") -> list[str]:
    members = await shared.zrange(names.key(group), 0, -1)
    return sorted(member.decode() for member in members if isinstance(member, bytes))


# -- against the shared Redis ----------------------------------------------------------


async def test_members_are_listed_across_processes_until_they_leave(
    client: Redis, names: Names
) -> None:
    a = presence_on(names, client, connected())
    b = presence_on(names, client, connected())
    await a.set("g", "alice", True)
    await b.set("g", "bob", True)
    await b.set("h", "bob", True)
    assert await a.members("g") == ["alice", "bob"]
    await b.set("g", "bob", False)
    await b.set("g", "bob", False)  # twice is once
    await b.set("g", "never", False)  # harmless
    assert await a.members("g") == ["alice"]
    assert await a.members("h") == ["bob"]
    assert await a.members("empty") == []
    assert a.local and b.local


async def test_an_entry_expires_presence_ttl_after_its_last_refresh(
    shared: Redis, client: Redis, names: Names
) -> None:
    ttl = 0.6
    here = presence_on(names, client, connected(), ttl=ttl)
    dead = presence_on(names, client, connected(), ttl=ttl)  # never refreshes
    await here.set("g", "alice", True)
    await dead.set("g", "bob", True)
    assert await here.members("g") == ["alice", "bob"]
    # Time itself is under test: refreshes every ttl / 3 outlive the TTL.
    for _ in range(4):
        await asyncio.sleep(ttl / 3)
        await here.refresh()
    assert await here.members("g") == ["alice"]
    assert await in_redis(shared, names) == ["alice"]  # the refresh dropped bob
    # The key expires too, twice the TTL after: sweeps see expired entries.
    assert ttl * 1000 < await shared.pttl(names.key("g")) <= 2 * ttl * 1000


async def test_who_left_while_disconnected_is_removed_when_a_session_restores(
    shared: Redis, client: Redis, names: Names
) -> None:
    link = connected()
    presence = presence_on(names, client, link)
    await presence.set("g", "alice", True)
    await presence.set("g", "ann", True)
    link.go_down()
    await presence.set("g", "ann", False)  # recorded, not written
    await presence.set("g", "carl", True)
    assert await in_redis(shared, names) == ["alice", "ann"]
    with pytest.raises(BrokerUnavailable, match="members of 'g' across processes"):
        await presence.members("g")

    link.go_up()
    await presence.refresh()  # what each new session does
    assert await in_redis(shared, names) == ["alice", "carl"]
    assert await presence.members("g") == ["alice", "carl"]


async def test_a_refresh_writes_every_local_member_again(
    shared: Redis, client: Redis, names: Names
) -> None:
    presence = presence_on(names, client, connected())
    await presence.set("g", "alice", True)
    await shared.delete(names.key("g"))  # as a Redis restarted without its data
    await presence.refresh()
    assert await presence.members("g") == ["alice"]


async def test_forgetting_removes_this_process_s_members_only(
    client: Redis, names: Names
) -> None:
    a = presence_on(names, client, connected())
    b = presence_on(names, client, connected())
    await a.set("g", "alice", True)
    await b.set("g", "bob", True)
    await a.forget()
    assert await b.members("g") == ["bob"]


async def test_a_lost_connection_ends_the_session_and_members_are_unknown(
    shared_proxy: Proxy, names: Names
) -> None:
    client = command_client(through(shared_proxy, REDIS_URL), TIMEOUT)
    link = connected()
    presence = presence_on(names, client, link)
    try:
        await presence.set("g", "alice", True)
        shared_proxy.cut()
        with pytest.raises(BrokerUnavailable, match="redis unreachable at test"):
            await presence.members("g")
        assert len(link.failures) == 1 and not link.up
        await presence.set("g", "ann", True)  # not connected: recorded only
        shared_proxy.restore()
        link.go_up()
        await presence.refresh()
        assert await presence.members("g") == ["alice", "ann"]
    finally:
        await client.aclose()


# -- whole nodes, on a Redis of the test's own -----------------------------------------


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
            a.server.groups._groups == {}
            and await subscribers(observer) == 0
            and await observer.zrange("websocket-multiplex:presence:lobby", 0, -1) == []
        )

    await eventually(no_trace_left)
    # Time itself is under test: a ghost would be written back by a refresh.
    await asyncio.sleep(ttl / 3 + 0.5)
    assert await observer.zrange("websocket-multiplex:presence:lobby", 0, -1) == []
    assert await a.server.members("lobby") == []


async def test_members_who_left_during_an_outage_are_removed_when_it_ends(
    nodes: Callable[..., Node], proxy: Proxy, observer: Redis
) -> None:
    a = nodes(url=through(proxy))  # presence_ttl 30 s: nothing expires meanwhile
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
    assert a.server.groups._groups["lobby"] == {a_channel(alice)}
    assert ann_id.encode() in await observer.zrange(key, 0, -1)

    proxy.restore()

    async def ann_is_gone() -> bool:
        return await observer.zrange(key, 0, -1) == [alice_id.encode()]

    await eventually(ann_is_gone)
    await eventually(lambda: is_up(a))
    assert await a.server.members("lobby") == [alice_id]
    await a.server.publish("lobby", "still here")
    assert await frames(alice, 1) == messages("still here")
