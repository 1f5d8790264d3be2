"""Presence events across server processes through a real Redis: each node
stands for one process; a killed subprocess stands for a dead one."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable
from pathlib import Path

from redis.asyncio import Redis

from websocket_multiplex import (
    LeaveReason,
    MemberJoined,
    MemberLeft,
    PresenceEvent,
    PresenceSnapshot,
    PresenceWatch,
)
from websocket_multiplex.fanout.redis.changes import decode_change

from ...asyncio.helpers import TIMEOUT
from ..redis_server import RedisServer
from .support import Node, eventually, is_up, subscribers

MEMBER_PROCESS = Path(__file__).with_name("member_process.py")
CHANGES = "websocket-multiplex:watch:lobby"


async def next_event(watch: PresenceWatch) -> PresenceEvent:
    async with asyncio.timeout(TIMEOUT):
        return await anext(watch)


async def test_joins_and_leaves_on_one_process_are_seen_on_another(
    nodes: Callable[..., Node], observer: Redis
) -> None:
    a, b = nodes(), nodes()
    _, alice_id = await a.connect()
    async with b.server.presence("lobby") as watch:
        assert await next_event(watch) == PresenceSnapshot(
            "lobby", frozenset({alice_id})
        )
        bob, bob_id = await a.connect()
        assert await next_event(watch) == MemberJoined("lobby", bob_id)
        _, carol_id = await b.connect()
        assert await next_event(watch) == MemberJoined("lobby", carol_id)
        await bob.close()
        assert await next_event(watch) == MemberLeft("lobby", bob_id)
        assert watch.members == {alice_id, carol_id}
        assert await subscribers(observer, CHANGES) == 1  # b only: it watches
    # The last watcher gone, b stops listening for changes.
    await eventually(lambda: no_subscriber(observer))


async def no_subscriber(observer: Redis) -> bool:
    return await subscribers(observer, CHANGES) == 0


async def test_a_dead_process_s_member_is_announced_expired_exactly_once(
    redis_server: RedisServer, nodes: Callable[..., Node], observer: Redis
) -> None:
    ttl = 0.6
    a, b = nodes(presence_ttl=ttl), nodes(presence_ttl=ttl)
    listener = observer.pubsub()
    await listener.subscribe(CHANGES)
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
            dead_id = (await process.stdout.readline()).decode().strip()
        assert dead_id, "the member process exited early"
        # Neither a nor b has a member: both sweep because they watch.
        watches = [a.server.presence("lobby"), b.server.presence("lobby")]
        for watch in watches:
            assert await next_event(watch) == PresenceSnapshot(
                "lobby", frozenset({dead_id})
            )
        process.kill()  # no close(), no ZREM: only expiry can remove it
        await process.wait()
        expired = MemberLeft("lobby", dead_id, LeaveReason.EXPIRED)
        for watch in watches:
            assert await next_event(watch) == expired
        # Both swept; Redis announced it once.
        await asyncio.sleep(ttl)  # time itself: more sweeps pass
        announced = []
        async with asyncio.timeout(TIMEOUT):
            while (message := await listener.get_message(timeout=0.05)) is not None:
                if message["type"] == "message":
                    announced.append(decode_change("lobby", message["data"]))
        assert announced == [MemberJoined("lobby", dead_id), expired]
        for watch in watches:
            assert watch.members == frozenset()
            await watch.aclose()
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
        await listener.aclose()


async def test_after_a_redis_restart_watchers_read_a_gap_with_the_members_now(
    redis_server: RedisServer, nodes: Callable[..., Node]
) -> None:
    a, b = nodes(), nodes()
    alice, alice_id = await a.connect()
    ann, _ = await b.connect()
    async with a.server.presence("lobby") as watch:
        first = await next_event(watch)
        assert isinstance(first, PresenceSnapshot) and len(first.members) == 2

        await redis_server.kill()

        async def a_is_down() -> bool:
            return not await is_up(a)

        await eventually(a_is_down)
        await ann.close()  # unheard: Redis is gone
        _, bob_id = await b.connect()  # joins locally, written on restore
        await redis_server.start()  # empty: every process writes its own again

        async with asyncio.timeout(TIMEOUT):
            event = await next_event(watch)
            while not (isinstance(event, PresenceSnapshot) and event.gap):
                event = await next_event(watch)  # a change the restore made
        await eventually(lambda: is_up(b))

        async def settled() -> bool:
            return sorted(await a.server.members("lobby")) == sorted([alice_id, bob_id])

        await eventually(settled)
        # Whatever the gap snapshot caught, the events after it complete it.
        async with asyncio.timeout(TIMEOUT):
            while watch.members != {alice_id, bob_id}:
                await next_event(watch)
        _, carol_id = await a.connect()
        assert await next_event(watch) == MemberJoined("lobby", carol_id)
    await alice.close()
