"""Authorization hooks: global and per service, plain and async."""

from __future__ import annotations

import asyncio
import logging

import pytest

from websocket_multiplex import (
    Channel,
    CloseReason,
    Headers,
    MultiplexServer,
    RequestInfo,
    Subscription,
)
from websocket_multiplex.testing import connect_in_memory

from .helpers import frames, item

ALICE = RequestInfo(headers=Headers([("Cookie", "token=alice-token")]))
MALLORY = RequestInfo(headers=Headers([("Cookie", "token=forged")]))
USERS = {"alice-token": "alice"}


def by_cookie(subscription: Subscription) -> bool:
    subscription.identity = USERS.get(subscription.request.cookies.get("token", ""))
    return subscription.identity is not None


def server_with_whoami(
    **kwargs: object,
) -> tuple[MultiplexServer, asyncio.Queue[Channel]]:
    server = MultiplexServer(**kwargs)  # type: ignore[arg-type]
    opened: asyncio.Queue[Channel] = asyncio.Queue()

    async def whoami(channel: Channel) -> None:
        opened.put_nowait(channel)
        await channel.send(f"you are {channel.identity}")
        async for data in channel:
            await channel.send(data)

    server.register("whoami", whoami)
    return server, opened


async def test_a_global_authorizer_accepts_and_attaches_an_identity() -> None:
    server, opened = server_with_whoami(authorize=by_cookie)
    client = await connect_in_memory(server, ALICE)
    await client.send("sub,whoami")
    assert await frames(client, 1) == ["msg,whoami,you are alice"]
    assert (await item(opened)).identity == "alice"
    await client.close()


async def test_a_refusal_answers_err_403_then_uns_and_runs_no_handler(
    caplog: pytest.LogCaptureFixture,
) -> None:
    server, opened = server_with_whoami(authorize=by_cookie)
    client = await connect_in_memory(server, MALLORY)
    with caplog.at_level(logging.INFO, logger="websocket_multiplex"):
        await client.send("sub,whoami")
        await client.send("msg,whoami,sneaky")  # arrives while authorizing
        assert await frames(client, 2) == ["err,whoami,403 refused", "uns,whoami"]
    assert opened.empty()
    assert client.connection.stats.authorization_refusals == 1
    assert "refused 'whoami'" in caplog.text
    await client.close()


async def test_per_service_async_authorizer_runs_after_the_global_one() -> None:
    calls: list[str] = []

    def everyone(subscription: Subscription) -> bool:
        calls.append(f"global {subscription.name}")
        return True

    async def admins_only(subscription: Subscription) -> bool:
        await asyncio.sleep(0)
        calls.append(f"admin {subscription.topic}")
        return subscription.request.query.get("role") == "admin"

    server = MultiplexServer(authorize=everyone)

    @server.channel("admin", authorize=admins_only)
    async def admin(channel: Channel) -> None:
        await channel.send("welcome")

    @server.channel("public")
    async def public(channel: Channel) -> None:
        await channel.send("hi")

    guest = await connect_in_memory(server, RequestInfo(query_string="role=guest"))
    await guest.send("sub,admin")
    assert await frames(guest, 2) == ["err,admin,403 refused", "uns,admin"]
    await guest.send("sub,public")
    assert await frames(guest, 2) == ["msg,public,hi", "uns,public"]
    boss = await connect_in_memory(server, RequestInfo(query_string="role=admin"))
    await boss.send("sub,admin")
    assert await frames(boss, 2) == ["msg,admin,welcome", "uns,admin"]
    assert calls == [
        "global admin",
        "admin admin",
        "global public",
        "global admin",
        "admin admin",
    ]
    await guest.close()
    await boss.close()


async def test_a_failing_authorizer_refuses(caplog: pytest.LogCaptureFixture) -> None:
    def broken(subscription: Subscription) -> bool:
        raise RuntimeError("database down")

    server, _ = server_with_whoami(authorize=broken)
    client = await connect_in_memory(server)
    with caplog.at_level(logging.ERROR, logger="websocket_multiplex"):
        await client.send("sub,whoami")
        assert await frames(client, 2) == ["err,whoami,403 refused", "uns,whoami"]
    assert "database down" in caplog.text
    await client.close()


async def test_only_true_accepts() -> None:
    server, _ = server_with_whoami(authorize=lambda subscription: "yes")  # type: ignore[arg-type,return-value]
    client = await connect_in_memory(server)
    await client.send("sub,whoami")
    assert await frames(client, 2) == ["err,whoami,403 refused", "uns,whoami"]
    await client.close()


async def test_messages_sent_while_authorizing_reach_the_handler() -> None:
    gate = asyncio.Event()

    async def slow_check(subscription: Subscription) -> bool:
        await gate.wait()
        return True

    server, opened = server_with_whoami(authorize=slow_check)
    client = await connect_in_memory(server)
    await client.send("sub,whoami")
    await client.send("msg,whoami,early")
    gate.set()
    assert await frames(client, 2) == ["msg,whoami,you are None", "msg,whoami,early"]
    channel = await item(opened)
    await client.close()
    assert await channel.wait_closed() is CloseReason.CONNECTION_LOST
