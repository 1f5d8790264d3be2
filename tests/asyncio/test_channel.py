"""Channel: what a service sees, driven through an in-memory connection."""

from __future__ import annotations

import asyncio

import pytest

from websocket_multiplex import (
    Channel,
    ChannelClosed,
    CloseReason,
    Headers,
    LocalProtocolError,
    MultiplexServer,
    RequestInfo,
)
from websocket_multiplex.testing import connect_in_memory

from .helpers import drain, frame, frames, item, nothing_sent, settle


def server_with(name: str, handler: object) -> MultiplexServer:
    server = MultiplexServer(handler_timeout=0.5)
    server.register(name, handler)  # type: ignore[arg-type]
    return server


async def test_greet_and_echo() -> None:
    async def ann(channel: Channel) -> None:
        await channel.send("Ann says hi!")
        async for data in channel:
            await channel.send(f"Ann nods: {data}")

    client = await connect_in_memory(server_with("ann", ann))
    await client.send("sub,ann")
    assert await frame(client) == "msg,ann,Ann says hi!"
    await client.send("msg,ann,a,b")
    await client.send("msg,ann,😀\n")
    assert await frames(client, 2) == [
        "msg,ann,Ann nods: a,b",
        "msg,ann,Ann nods: 😀\n",
    ]
    await client.close()


async def test_iteration_ends_when_the_client_unsubscribes() -> None:
    received: asyncio.Queue[list[str]] = asyncio.Queue()

    async def collect(channel: Channel) -> None:
        received.put_nowait([data async for data in channel])

    client = await connect_in_memory(server_with("c", collect))
    for text in ("sub,c", "msg,c,1", "msg,c,2", "uns,c", "msg,c,late"):
        await client.send(text)
    assert await item(received) == ["1", "2"]
    assert nothing_sent(client)  # uns from the client gets no reply
    await client.close()


async def test_receive_with_a_timeout() -> None:
    results: asyncio.Queue[object] = asyncio.Queue()
    go = asyncio.Event()

    async def handler(channel: Channel) -> None:
        try:
            await channel.receive(timeout=0.01)
        except TimeoutError as exc:
            results.put_nowait(exc)
        await go.wait()
        results.put_nowait(await channel.receive(timeout=5))

    client = await connect_in_memory(server_with("t", handler))
    await client.send("sub,t")
    assert isinstance(await item(results), TimeoutError)
    await client.send("msg,t,after the timeout")
    go.set()
    assert await item(results) == "after the timeout"
    await client.close()


async def test_messages_before_the_close_are_still_received() -> None:
    results: asyncio.Queue[object] = asyncio.Queue()
    go = asyncio.Event()

    async def handler(channel: Channel) -> None:
        await go.wait()
        results.put_nowait(await channel.receive())
        results.put_nowait(await channel.receive())
        try:
            await channel.receive()
        except ChannelClosed as exc:
            results.put_nowait(exc)

    client = await connect_in_memory(server_with("t", handler))
    for text in ("sub,t", "msg,t,1", "msg,t,2", "uns,t"):
        await client.send(text)
    go.set()
    assert [await item(results), await item(results)] == ["1", "2"]
    closed = await item(results)
    assert isinstance(closed, ChannelClosed)
    assert closed.reason is CloseReason.CLIENT_CLOSED
    assert closed.name == "t"
    await client.close()


async def test_close_with_a_message_sends_msg_then_uns() -> None:
    async def handler(channel: Channel) -> None:
        await channel.close("bye")

    client = await connect_in_memory(server_with("t", handler))
    await client.send("sub,t")
    assert await frames(client, 2) == ["msg,t,bye", "uns,t"]
    await client.close()


async def test_after_close_send_raises_and_close_does_nothing() -> None:
    results: asyncio.Queue[object] = asyncio.Queue()

    async def handler(channel: Channel) -> None:
        await channel.close()
        await channel.close()  # closing twice does nothing
        results.put_nowait(channel.close_reason)
        try:
            await channel.send("late")
        except ChannelClosed as exc:
            results.put_nowait(exc.reason)

    client = await connect_in_memory(server_with("t", handler))
    await client.send("sub,t")
    assert await item(results) is CloseReason.SERVER_CLOSED
    assert await item(results) is CloseReason.SERVER_CLOSED
    await settle()
    assert drain(client) == ["uns,t"]
    await client.close()


async def test_send_refuses_bytes() -> None:
    results: asyncio.Queue[BaseException] = asyncio.Queue()

    async def handler(channel: Channel) -> None:
        try:
            await channel.send(b"bytes")  # type: ignore[arg-type]
        except TypeError as exc:
            results.put_nowait(exc)

    client = await connect_in_memory(server_with("t", handler))
    await client.send("sub,t")
    error: BaseException = await item(results)
    assert "encode" in str(error)
    await client.close()


async def test_wait_closed_returns_the_reason() -> None:
    results: asyncio.Queue[CloseReason] = asyncio.Queue()

    async def handler(channel: Channel) -> None:
        results.put_nowait(await channel.wait_closed())

    client = await connect_in_memory(server_with("t", handler))
    await client.send("sub,t")
    await client.send("uns,t")
    assert await item(results) is CloseReason.CLIENT_CLOSED
    await client.close()


async def test_name_topic_request_and_repr() -> None:
    channels: asyncio.Queue[Channel] = asyncio.Queue()

    async def handler(channel: Channel) -> None:
        channels.put_nowait(channel)
        await channel.wait_closed()

    request = RequestInfo(
        path="/multiplex",
        query_string="token=t0k&lang=fr",
        headers=Headers([("Cookie", "session=s1"), ("User-Agent", "test")]),
        remote_address="127.0.0.1",
    )
    name = "weird name,ü/%😀"
    client = await connect_in_memory(server_with(name, handler), request)
    await client.send("sub,weird%20name%2C%FC/%25%uD83D%uDE00")
    channel = await item(channels)
    assert channel.name == name
    assert channel.topic == "weird%20name%2C%FC/%25%uD83D%uDE00"
    assert channel.request is request
    assert channel.request.query == {"token": "t0k", "lang": "fr"}
    assert channel.request.cookies == {"session": "s1"}
    assert channel.request.headers["user-agent"] == "test"
    assert channel.request.remote_address == "127.0.0.1"
    assert channel.connection is client.connection
    assert not channel.closed
    assert "OPEN" in repr(channel)
    await client.close()
    assert channel.closed
    assert "CONNECTION_LOST" in repr(channel)


async def test_send_after_the_connection_is_lost_raises() -> None:
    results: asyncio.Queue[object] = asyncio.Queue()

    async def handler(channel: Channel) -> None:
        await channel.wait_closed()
        try:
            await channel.send("too late")
        except ChannelClosed as exc:
            results.put_nowait(exc.reason)

    client = await connect_in_memory(server_with("t", handler))
    await client.send("sub,t")
    await client.close()
    assert await item(results) is CloseReason.CONNECTION_LOST


@pytest.mark.parametrize("count", [1, 50])
async def test_messages_arrive_in_order(count: int) -> None:
    async def echo(channel: Channel) -> None:
        async for data in channel:
            await channel.send(data)

    client = await connect_in_memory(server_with("e", echo))
    await client.send("sub,e")
    for i in range(count):
        await client.send(f"msg,e,{i}")
    assert await frames(client, count) == [f"msg,e,{i}" for i in range(count)]
    await client.close()


async def test_a_second_concurrent_receive_is_refused() -> None:
    # Concurrent misuse fails at once, as websockets raises ConcurrencyError;
    # the first receiver still gets its message (it once waited forever).
    outcomes: asyncio.Queue[str] = asyncio.Queue()
    waiting = asyncio.Event()

    async def handler(channel: Channel) -> None:
        async def reader() -> None:
            try:
                outcomes.put_nowait(await channel.receive())
            except LocalProtocolError:
                outcomes.put_nowait("refused")

        readers = [asyncio.create_task(reader()) for _ in range(2)]
        await settle()
        waiting.set()
        try:
            await asyncio.wait(readers)
        finally:
            for task in readers:
                task.cancel()

    server = MultiplexServer(handler_timeout=0.05)
    server.register("t", handler)
    client = await connect_in_memory(server)
    await client.send("sub,t")
    async with asyncio.timeout(5):
        await waiting.wait()
    await client.send("msg,t,1")
    await client.send("msg,t,2")
    await client.send("uns,t")
    await settle()
    await client.close()
    got = sorted(outcomes.get_nowait() for _ in range(outcomes.qsize()))
    assert got == ["1", "refused"]
