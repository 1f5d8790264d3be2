"""Connection: independent channels, every handler ended, bounded output."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field

import pytest

from websocket_multiplex import (
    Channel,
    ChannelClosed,
    ChannelHandler,
    CloseReason,
    Limits,
    MultiplexServer,
    RequestInfo,
    Subscription,
)
from websocket_multiplex.testing import connect_in_memory

from .helpers import frame, frames, item, nothing_sent, settle


async def echo(channel: Channel) -> None:
    async for data in channel:
        await channel.send(data)


async def test_a_failing_handler_closes_only_its_channel(
    caplog: pytest.LogCaptureFixture,
) -> None:
    server = MultiplexServer()

    @server.channel("boom")
    async def boom(channel: Channel) -> None:
        await channel.receive()
        raise RuntimeError("kaboom")

    server.register("echo", echo)
    client = await connect_in_memory(server)
    for text in ("sub,boom", "sub,echo", "msg,boom,x"):
        await client.send(text)
    with caplog.at_level(logging.ERROR, logger="websocket_multiplex"):
        assert await frames(client, 2) == ["err,boom,500 service failed", "uns,boom"]
    await client.send("msg,echo,still here")
    assert await frame(client) == "msg,echo,still here"

    (record,) = [r for r in caplog.records if r.name == "websocket_multiplex"]
    assert "boom" in record.getMessage()
    assert record.exc_info is not None
    assert isinstance(record.exc_info[1], RuntimeError)
    assert "kaboom" in caplog.text  # the traceback is in the log
    assert [c.name for c in client.connection.channels] == ["echo"]
    await client.close()


async def test_a_failed_service_can_be_subscribed_again() -> None:
    server = MultiplexServer()
    attempts: list[int] = []

    @server.channel("flaky")
    async def flaky(channel: Channel) -> None:
        attempts.append(1)
        if len(attempts) == 1:
            raise RuntimeError("first time")
        await channel.send("ok")

    client = await connect_in_memory(server)
    await client.send("sub,flaky")
    assert await frames(client, 2) == ["err,flaky,500 service failed", "uns,flaky"]
    await client.send("sub,flaky")
    assert await frames(client, 2) == ["msg,flaky,ok", "uns,flaky"]
    await client.close()


async def test_a_slow_handler_does_not_delay_another_channel() -> None:
    server = MultiplexServer()
    release = asyncio.Event()

    @server.channel("slow")
    async def slow(channel: Channel) -> None:
        async for data in channel:
            await release.wait()
            await channel.send(data)

    server.register("fast", echo)
    client = await connect_in_memory(server)
    for text in ("sub,slow", "sub,fast", "msg,slow,first", "msg,fast,second"):
        await client.send(text)
    # The slow handler holds "first" until released; "second" overtakes it.
    assert await frame(client) == "msg,fast,second"
    assert not release.is_set()
    release.set()
    assert await frame(client) == "msg,slow,first"
    await client.close()


async def test_connection_lost_closes_every_channel() -> None:
    server = MultiplexServer()
    reasons: asyncio.Queue[tuple[str, CloseReason]] = asyncio.Queue()

    async def wait(channel: Channel) -> None:
        reasons.put_nowait((channel.name, await channel.wait_closed()))

    server.register("a", wait)
    server.register("b", wait)
    client = await connect_in_memory(server)
    await client.send("sub,a")
    await client.send("sub,b")
    connection = client.connection
    assert len(connection.channels) == 2
    await client.close()
    got = sorted([await item(reasons), await item(reasons)])
    assert got == [
        ("a", CloseReason.CONNECTION_LOST),
        ("b", CloseReason.CONNECTION_LOST),
    ]
    assert connection.closed
    assert connection.channels == []
    assert server.connections == set()
    assert nothing_sent(client)  # the carrier is gone: no uns goes out


async def test_frames_after_connection_lost_are_ignored() -> None:
    server = MultiplexServer()
    server.register("echo", echo)
    client = await connect_in_memory(server)
    await client.close()
    await client.send("sub,echo")
    assert client.connection.channels == []
    assert client.connection.counters.frames_received == 0
    await client.close()  # twice is fine


async def test_handlers_that_ignore_the_close_are_cancelled() -> None:
    server = MultiplexServer(handler_timeout=0.05)
    cancelled: asyncio.Queue[str] = asyncio.Queue()

    @server.channel("stubborn")
    async def stubborn(channel: Channel) -> None:
        try:
            await asyncio.Event().wait()  # never looks at its channel
        except asyncio.CancelledError:
            cancelled.put_nowait(channel.name)
            raise

    server.register("polite", echo)
    before = asyncio.all_tasks()
    client = await connect_in_memory(server)
    for text in ("sub,stubborn", "sub,polite", "msg,polite,x"):
        await client.send(text)
    assert await frame(client) == "msg,polite,x"
    assert len(asyncio.all_tasks() - before) == 3  # two handlers and the writer
    async with asyncio.timeout(5):
        await client.close()
    assert await item(cancelled) == "stubborn"
    await settle()
    assert asyncio.all_tasks() - before == set()


async def test_connection_lost_leaves_no_task_behind() -> None:
    server = MultiplexServer()
    server.register("echo", echo)
    before = asyncio.all_tasks()
    client = await connect_in_memory(server)
    await client.send("sub,echo")
    await client.close()
    leftover = asyncio.all_tasks() - before
    assert {task for task in leftover if not task.done()} <= {
        client.connection._outbox._writer
    }
    await settle()
    assert asyncio.all_tasks() - before == set()


async def test_counters() -> None:
    server = MultiplexServer()
    server.register("echo", echo)
    client = await connect_in_memory(server)
    for text in ("sub,echo", "junk", "sub,echo", "msg,nobody,x", "msg,echo,hi"):
        await client.send(text)
    assert await frame(client) == "msg,echo,hi"
    counters = client.connection.counters
    assert counters.frames_received == 5
    assert counters.invalid_frames == 1
    assert counters.ignored_frames == 2
    assert counters.frames_sent == 1
    await client.close()


async def test_request_and_repr() -> None:
    request = RequestInfo(path="/ws", remote_address="10.1.2.3")
    client = await connect_in_memory(MultiplexServer(), request)
    assert client.connection.request is request
    assert "10.1.2.3" in repr(client.connection)
    await client.close()


async def test_close_sends_uns_for_every_channel_then_closes_the_carrier() -> None:
    server = MultiplexServer()
    server.register("a", echo)
    server.register("b", echo)
    client = await connect_in_memory(server)
    await client.send("sub,a")
    await client.send("sub,b")
    await client.connection.close(4000, "bye")
    assert await frames(client, 5) == [
        "err,a,1001 server shutting down",
        "uns,a",
        "err,b,1001 server shutting down",
        "uns,b",
        None,
    ]
    assert client.transport.closed_with == (4000, "bye")
    assert client.connection.closed


async def test_a_sub_that_arrives_while_closing_is_told_the_server_is_going() -> None:
    # close() flushes the goodbyes before it closes the carrier; a "sub"
    # read meanwhile must not start a handler that would then end silently.
    server = MultiplexServer()
    started: list[str] = []

    @server.channel("a")
    async def a(channel: Channel) -> None:
        started.append(channel.topic)
        async for _ in channel:
            pass

    client = await connect_in_memory(server)
    await client.send("sub,a")
    await settle()
    closing = asyncio.ensure_future(client.connection.close(4000, "bye"))
    await asyncio.sleep(0)  # close() has begun: its goodbyes wait for the writer
    assert not closing.done()
    client.connection.receive("sub,a#2")
    await closing
    assert await frames(client, 5) == [
        "err,a,1001 server shutting down",
        "uns,a",
        "err,a#2,1001 server shutting down",
        "uns,a#2",
        None,
    ]
    assert started == ["a"]


# -- the inbox limits ------------------------------------------------------------

TIGHT = Limits(max_queue_size=20, max_connection_queue_size=20)


async def by_receive(channel: Channel) -> None:
    while True:
        try:
            data = await channel.receive()
        except ChannelClosed:
            return
        await channel.send(data)


@pytest.mark.parametrize("handler", [echo, by_receive], ids=["async-for", "receive"])
async def test_what_a_handler_reads_no_longer_counts(handler: object) -> None:
    # 36 characters a round, 180 in all, through inboxes bounded to 20 per
    # channel and 40 per connection; each round arrives in one go, so the
    # handlers find messages waiting as well as wait for them.
    limits = Limits(max_queue_size=20, max_connection_queue_size=40)
    server = MultiplexServer(limits=limits)
    server.register("a", handler)  # type: ignore[arg-type]
    server.register("b", handler)  # type: ignore[arg-type]
    client = await connect_in_memory(server)
    await client.send("sub,a")
    await client.send("sub,b")
    for i in range(5):
        sent = [f"msg,{name},{i}{j}{name * 4}" for name in "ab" for j in range(3)]
        for text in sent:
            client.connection.receive(text)
        assert sorted(await frames(client, 6)) == sent  # type: ignore[type-var]
    assert client.connection.counters.limits_hit == {}
    await client.close()


async def test_messages_held_during_authorization_are_released_once_handled() -> None:
    # A task-free service gets what arrived while its authorizer ran.
    allow = asyncio.Event()

    async def slow_yes(subscription: Subscription) -> bool:
        await allow.wait()
        return True

    class Echo(ChannelHandler):
        def on_message(self, data: str) -> None:
            self.channel.send_nowait(data)

    server = MultiplexServer(limits=TIGHT, authorize=slow_yes)
    server.register("echo", Echo)
    client = await connect_in_memory(server)
    await client.send("sub,echo")
    await client.send("msg,echo," + "a" * 15)  # waits in the inbox
    assert nothing_sent(client)
    allow.set()
    assert await frame(client) == "msg,echo," + "a" * 15
    await client.send("msg,echo," + "b" * 15)  # fits: the first is gone
    assert await frame(client) == "msg,echo," + "b" * 15
    assert client.connection.counters.limits_hit == {}
    await client.close()


# -- write_limit ---------------------------------------------------------------


@dataclass(eq=False)
class GatedTransport:
    """A carrier that takes one message at a time, and only when let through."""

    request: RequestInfo = field(default_factory=RequestInfo)
    gate: asyncio.Event = field(default_factory=asyncio.Event)
    writing: asyncio.Event = field(default_factory=asyncio.Event)
    sent: list[str] = field(default_factory=list)

    async def send(self, text: str) -> None:
        self.writing.set()
        await self.gate.wait()
        self.sent.append(text)

    async def close(self, code: int, reason: str) -> None:
        self.gate.set()

    async def send_many(self, texts: list[str]) -> None:
        for text in texts:
            await self.send(text)


async def test_send_waits_above_the_write_limit_until_drained() -> None:
    server = MultiplexServer(limits=Limits(write_limit=100))
    progress: list[int] = []
    done = asyncio.Event()
    payload = "x" * 40  # "msg,t," + 40 = 46 characters a frame

    @server.channel("t")
    async def flood(channel: Channel) -> None:
        for i in range(10):
            await channel.send(payload)
            progress.append(i)
        done.set()

    transport = GatedTransport()
    connection = server.accept(transport)
    connection.receive("sub,t")
    async with asyncio.timeout(5):
        await transport.writing.wait()  # the first frame is stuck in the carrier
    await settle()
    # Frames 0 to 2 made the queue 138 > 100; the writer took them in one
    # batch (stuck in the carrier); 3 and 4 fit under the mark again, and
    # frame 5 made it 138 > 100: blocked.
    assert progress == [0, 1, 2, 3, 4]
    assert not done.is_set()

    transport.gate.set()
    async with asyncio.timeout(5):
        await done.wait()
    assert progress == list(range(10))
    await settle()
    assert transport.sent == [f"msg,t,{payload}"] * 10 + ["uns,t"]
    await connection.connection_lost()


async def test_a_blocked_sender_is_released_when_the_connection_is_lost() -> None:
    server = MultiplexServer(limits=Limits(write_limit=10))
    outcome: asyncio.Queue[str | CloseReason] = asyncio.Queue()

    @server.channel("t")
    async def flood(channel: Channel) -> None:
        await channel.send("x" * 20)  # taken by the writer: in the carrier
        outcome.put_nowait("first sent")
        try:
            await channel.send("y" * 20)  # over the limit: waits
        except ChannelClosed as exc:
            outcome.put_nowait(exc.reason)

    transport = GatedTransport()
    connection = server.accept(transport)
    connection.receive("sub,t")
    assert await item(outcome) == "first sent"
    async with asyncio.timeout(5):
        await transport.writing.wait()
    await settle()
    assert outcome.empty()  # the second send is blocked
    await connection.connection_lost()
    assert await item(outcome) is CloseReason.CONNECTION_LOST


# -- failures of the carrier and of handlers ------------------------------------


async def test_a_failed_write_closes_the_connection() -> None:
    # The write loop used to swallow the error: senders then blocked above
    # the limit until the adapter noticed (handler_timeout bounds a regression).
    server = MultiplexServer(limits=Limits(write_limit=100), handler_timeout=0.1)
    progress: list[int] = []

    @dataclass(eq=False)
    class BrokenTransport:
        request: RequestInfo = field(default_factory=RequestInfo)

        async def send(self, text: str) -> None:
            raise ConnectionError("the carrier is gone")

        async def close(self, code: int, reason: str) -> None:
            pass

        async def send_many(self, texts: list[str]) -> None:
            for text in texts:
                await self.send(text)

    @server.channel("t")
    async def flood(channel: Channel) -> None:
        for i in range(10):
            await channel.send("x" * 40)
            progress.append(i)

    connection = server.accept(BrokenTransport())
    connection.receive("sub,t")
    await settle()
    try:
        assert connection.closed
        assert connection.channels == []
    finally:
        await connection.connection_lost()


async def test_a_handler_can_close_its_own_connection() -> None:
    server = MultiplexServer(handler_timeout=0.1)
    outcome: asyncio.Queue[str] = asyncio.Queue()

    @server.channel("kick")
    async def kick(channel: Channel) -> None:
        try:
            await channel.connection.close(4000, "kicked")
        except asyncio.CancelledError:
            outcome.put_nowait("cancelled")
            raise
        outcome.put_nowait("returned")

    client = await connect_in_memory(server)
    await client.send("sub,kick")
    assert await frames(client, 3) == [
        "err,kick,1001 server shutting down",
        "uns,kick",
        None,
    ]
    assert await item(outcome) == "returned"


async def test_close_gives_up_flushing_a_client_that_does_not_read() -> None:
    server = MultiplexServer(limits=Limits(write_limit=10), close_timeout=0.05)
    never = asyncio.Event()

    @dataclass(eq=False)
    class StuckTransport:
        request: RequestInfo = field(default_factory=RequestInfo)
        closed_with: tuple[int, str] | None = None

        async def send(self, text: str) -> None:
            await never.wait()  # the client stopped reading

        async def close(self, code: int, reason: str) -> None:
            self.closed_with = (code, reason)

        async def send_many(self, texts: list[str]) -> None:
            for text in texts:
                await self.send(text)

    @server.channel("t")
    async def chatty(channel: Channel) -> None:
        await channel.send("x" * 5)
        await channel.wait_closed()

    transport = StuckTransport()
    connection = server.accept(transport)
    connection.receive("sub,t")
    await settle()
    async with asyncio.timeout(5):
        await server.close()
    assert transport.closed_with == (1001, "server shutdown")
    assert connection.closed


async def test_closed_channel_errors_from_another_channel_fail_the_handler(
    caplog: pytest.LogCaptureFixture,
) -> None:
    server = MultiplexServer()
    other: asyncio.Queue[Channel] = asyncio.Queue()

    @server.channel("gone")
    async def gone(channel: Channel) -> None:
        other.put_nowait(channel)
        await channel.wait_closed()

    @server.channel("relay")
    async def relay(channel: Channel) -> None:
        departed = await item(other)
        async for data in channel:
            await departed.send(data)  # raises: that channel is closed

    leaver = await connect_in_memory(server)
    await leaver.send("sub,gone")
    stayer = await connect_in_memory(server)
    await stayer.send("sub,relay")
    await settle()
    await leaver.close()
    with caplog.at_level(logging.ERROR, logger="websocket_multiplex"):
        await stayer.send("msg,relay,hello")
        assert await frames(stayer, 2) == ["err,relay,500 service failed", "uns,relay"]
    assert "ChannelClosed" in caplog.text  # logged, not silently swallowed
    await stayer.close()


async def test_any_transport_failure_loses_the_connection(
    caplog: pytest.LogCaptureFixture,
) -> None:
    server = MultiplexServer(limits=Limits(write_limit=10))

    @dataclass(eq=False)
    class OddTransport:
        request: RequestInfo = field(default_factory=RequestInfo)

        async def send(self, text: str) -> None:
            raise OSError("an adapter that does not wrap its errors")

        async def close(self, code: int, reason: str) -> None:
            pass

        async def send_many(self, texts: list[str]) -> None:
            for text in texts:
                await self.send(text)

    outcome: asyncio.Queue[CloseReason | None] = asyncio.Queue()

    @server.channel("t")
    async def flood(channel: Channel) -> None:
        for _ in range(100):
            await channel.send("x" * 20)
        outcome.put_nowait(channel.close_reason)

    connection = server.accept(OddTransport())
    with caplog.at_level(logging.ERROR, logger="websocket_multiplex"):
        connection.receive("sub,t")
        await settle()
    assert connection.closed
    assert "the transport failed to send" in caplog.text
    await connection.connection_lost()


async def test_shutdown_is_bounded_even_if_a_handler_ignores_cancellation(
    caplog: pytest.LogCaptureFixture,
) -> None:
    server = MultiplexServer(handler_timeout=0.05, close_timeout=0.05)
    release = asyncio.Event()

    @server.channel("stubborn")
    async def stubborn(channel: Channel) -> None:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            await release.wait()  # cleanup that never ends on its own

    client = await connect_in_memory(server)
    await client.send("sub,stubborn")
    with caplog.at_level(logging.ERROR, logger="websocket_multiplex"):
        async with asyncio.timeout(5):
            await server.close()
    assert "ignores cancellation" in caplog.text
    release.set()  # let the test end with no task left behind
    await settle()
