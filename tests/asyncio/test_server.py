"""MultiplexServer: the service registry, ChannelHandler classes, shutdown."""

from __future__ import annotations

import asyncio
import functools
import logging

import pytest

from websocket_multiplex import (
    Channel,
    ChannelHandler,
    CloseReason,
    LocalProtocolError,
    MultiplexServer,
    ServiceNotFound,
)
from websocket_multiplex.testing import MemoryClient, connect_in_memory

from .helpers import frame, frames, item, nothing_sent, settle


async def echo(channel: Channel) -> None:
    async for data in channel:
        await channel.send(data)


# -- registry ------------------------------------------------------------------


def test_register_and_decorator() -> None:
    server = MultiplexServer()
    service = server.register("a b", echo)
    assert (service.name, service.topic, service.handler) == ("a b", "a%20b", echo)

    @server.channel("c")
    async def c(channel: Channel) -> None:
        pass

    assert server.services == ["a b", "c"]


def test_duplicate_registration_is_an_error() -> None:
    server = MultiplexServer()
    server.register("news", echo)
    with pytest.raises(LocalProtocolError, match="already registered"):
        server.register("news", echo)


@pytest.mark.parametrize("name", ["", None, 42])
def test_a_name_must_be_a_non_empty_string(name: object) -> None:
    with pytest.raises(LocalProtocolError, match="non-empty string"):
        MultiplexServer().register(name, echo)  # type: ignore[arg-type]


def test_a_handler_must_be_callable() -> None:
    with pytest.raises(LocalProtocolError):
        MultiplexServer().register("x", "not a handler")  # type: ignore[arg-type]


def sync_handler(channel: Channel) -> None:
    pass


class NotAHandler:
    def __init__(self, channel: Channel) -> None:
        pass


@pytest.mark.parametrize("handler", [sync_handler, NotAHandler, print])
def test_a_handler_must_be_async_or_a_channel_handler(handler: object) -> None:
    with pytest.raises(LocalProtocolError, match="async function"):
        MultiplexServer().register("x", handler)  # type: ignore[arg-type]


def test_async_callables_are_handlers() -> None:
    class Service:
        async def __call__(self, channel: Channel) -> None:
            pass

    server = MultiplexServer()
    server.register("obj", Service())
    server.register("partial", functools.partial(Service().__call__))
    assert server.services == ["obj", "partial"]


def test_unregister_an_unknown_service() -> None:
    with pytest.raises(ServiceNotFound):
        MultiplexServer().unregister("nobody")
    with pytest.raises(LookupError):
        MultiplexServer().unregister("nobody")


async def test_unregister_refuses_new_subscriptions_but_keeps_open_channels() -> None:
    server = MultiplexServer()
    server.register("news", echo)
    first = await connect_in_memory(server)
    await first.send("sub,news")
    server.unregister("news")
    assert server.services == []

    await first.send("msg,news,still open")
    assert await frame(first) == "msg,news,still open"
    second = await connect_in_memory(server)
    await second.send("sub,news")
    await second.send("msg,news,x")
    assert await frames(second, 2) == ["err,news,404 no such service", "uns,news"]
    assert second.connection.counters.refused_subscriptions == 1
    assert second.connection.counters.ignored_frames == 1

    server.register("news", echo)  # registering again after unregister works
    await second.send("sub,news")
    await second.send("msg,news,back")
    assert await frame(second) == "msg,news,back"
    await first.close()
    await second.close()


# -- ChannelHandler ------------------------------------------------------------


class Recorder(ChannelHandler):
    """Sync callbacks; records every call in a queue the test reads."""

    calls: asyncio.Queue[tuple[str, object]]

    def on_open(self) -> None:
        self.calls.put_nowait(("open", self.channel.name))

    def on_message(self, data: str) -> None:
        self.calls.put_nowait(("message", data))
        if data == "close":
            self.closing = asyncio.ensure_future(self.channel.close("closing"))
        if data == "fail":
            raise ValueError("on_message failed")

    def on_close(self, reason: CloseReason) -> None:
        self.calls.put_nowait(("close", reason))


class AsyncRecorder(ChannelHandler):
    """The same with coroutine callbacks, replying on the channel."""

    calls: asyncio.Queue[tuple[str, object]]

    async def on_open(self) -> None:
        self.calls.put_nowait(("open", self.channel.name))
        await self.channel.send("welcome")

    async def on_message(self, data: str) -> None:
        self.calls.put_nowait(("message", data))
        if data == "close":
            await self.channel.close("closing")
        elif data == "fail":
            raise ValueError("on_message failed")
        else:
            await self.channel.send(f"got {data}")

    async def on_close(self, reason: CloseReason) -> None:
        await asyncio.sleep(0)
        self.calls.put_nowait(("close", reason))


@pytest.fixture(params=[Recorder, AsyncRecorder])
def recorder(request: pytest.FixtureRequest) -> type[ChannelHandler]:
    cls: type[ChannelHandler] = type(
        request.param.__name__, (request.param,), {"calls": asyncio.Queue()}
    )
    return cls


async def open_recorder(
    recorder: type[ChannelHandler],
) -> tuple[MultiplexServer, asyncio.Queue[tuple[str, object]], MemoryClient]:
    server = MultiplexServer(handler_timeout=0.5)
    server.register("rec", recorder)
    client = await connect_in_memory(server)
    await client.send("sub,rec")
    calls: asyncio.Queue[tuple[str, object]] = recorder.calls  # type: ignore[attr-defined]
    assert await item(calls) == ("open", "rec")
    if recorder.__mro__[1] is AsyncRecorder:
        assert await frame(client) == "msg,rec,welcome"
    return server, calls, client


async def closes_once(calls: asyncio.Queue[tuple[str, object]]) -> CloseReason:
    kind, reason = await item(calls)
    assert kind == "close"
    await settle()
    assert calls.empty(), "on_close ran more than once"
    assert isinstance(reason, CloseReason)
    return reason


async def test_handler_messages_then_client_close(
    recorder: type[ChannelHandler],
) -> None:
    _, calls, client = await open_recorder(recorder)
    await client.send("msg,rec,1")
    await client.send("msg,rec,2")
    assert [await item(calls), await item(calls)] == [
        ("message", "1"),
        ("message", "2"),
    ]
    await client.send("uns,rec")
    assert await closes_once(calls) is CloseReason.CLIENT_CLOSED
    await client.close()


async def test_handler_closes_its_channel(recorder: type[ChannelHandler]) -> None:
    _, calls, client = await open_recorder(recorder)
    if recorder.__mro__[1] is AsyncRecorder:
        await client.send("msg,rec,x")
        assert await item(calls) == ("message", "x")
        assert await frame(client) == "msg,rec,got x"
    await client.send("msg,rec,close")
    assert await item(calls) == ("message", "close")
    assert await closes_once(calls) is CloseReason.SERVER_CLOSED
    assert await frames(client, 2) == ["msg,rec,closing", "uns,rec"]
    await client.close()


async def test_handler_fails(
    recorder: type[ChannelHandler], caplog: pytest.LogCaptureFixture
) -> None:
    _, calls, client = await open_recorder(recorder)
    with caplog.at_level(logging.ERROR, logger="websocket_multiplex"):
        await client.send("msg,rec,fail")
        assert await item(calls) == ("message", "fail")
        assert await closes_once(calls) is CloseReason.HANDLER_FAILED
        assert await frames(client, 2) == ["err,rec,500 service failed", "uns,rec"]
    assert "on_message failed" in caplog.text
    await client.close()


async def test_handler_sees_connection_lost(recorder: type[ChannelHandler]) -> None:
    _, calls, client = await open_recorder(recorder)
    await client.close()
    assert await closes_once(calls) is CloseReason.CONNECTION_LOST


async def test_handler_failing_in_on_open(caplog: pytest.LogCaptureFixture) -> None:
    reasons: list[CloseReason] = []

    class Broken(ChannelHandler):
        async def on_open(self) -> None:
            raise RuntimeError("cannot open")

        def on_close(self, reason: CloseReason) -> None:
            reasons.append(reason)

    server = MultiplexServer()
    server.register("broken", Broken)
    client = await connect_in_memory(server)
    with caplog.at_level(logging.ERROR, logger="websocket_multiplex"):
        await client.send("sub,broken")
        assert await frames(client, 2) == [
            "err,broken,500 service failed",
            "uns,broken",
        ]
    assert reasons == [CloseReason.HANDLER_FAILED]
    assert "cannot open" in caplog.text
    await client.close()


async def test_default_callbacks_do_nothing() -> None:
    server = MultiplexServer()
    server.register("plain", ChannelHandler)
    client = await connect_in_memory(server)
    await client.send("sub,plain")
    await client.send("msg,plain,ignored")
    await client.send("uns,plain")
    await settle()
    assert nothing_sent(client)
    await client.close()


# -- connections and shutdown --------------------------------------------------


async def test_close_sends_uns_for_every_channel_on_every_connection() -> None:
    server = MultiplexServer()
    reasons: asyncio.Queue[CloseReason] = asyncio.Queue()

    async def wait(channel: Channel) -> None:
        reasons.put_nowait(await channel.wait_closed())

    server.register("a", wait)
    server.register("b", wait)
    clients = [await connect_in_memory(server) for _ in range(2)]
    for client in clients:
        await client.send("sub,a")
        await client.send("sub,b")
    assert len(server.connections) == 2

    await server.close()
    for client in clients:
        assert await frames(client, 5) == [
            "err,a,1001 server shutting down",
            "uns,a",
            "err,b,1001 server shutting down",
            "uns,b",
            None,
        ]
        assert client.transport.closed_with == (1001, "server shutdown")
    assert [await item(reasons) for _ in range(4)] == [CloseReason.SHUTDOWN] * 4
    assert server.connections == set()


async def test_close_without_connections() -> None:
    await MultiplexServer().close()


async def test_close_flushes_what_handlers_sent_first() -> None:
    server = MultiplexServer()
    sent = asyncio.Event()

    @server.channel("last")
    async def last(channel: Channel) -> None:
        await channel.send("last words")
        sent.set()
        await channel.wait_closed()

    client = await connect_in_memory(server)
    await client.send("sub,last")
    async with asyncio.timeout(5):
        await sent.wait()
    await server.close()
    assert await frames(client, 4) == [
        "msg,last,last words",
        "err,last,1001 server shutting down",
        "uns,last",
        None,
    ]


async def test_a_handler_can_close_the_server() -> None:
    server = MultiplexServer(handler_timeout=0.1)
    outcome: asyncio.Queue[str] = asyncio.Queue()

    @server.channel("shutdown")
    async def shutdown(channel: Channel) -> None:
        try:
            await server.close()
        except asyncio.CancelledError:
            outcome.put_nowait("cancelled")
            raise
        outcome.put_nowait("returned")

    client = await connect_in_memory(server)
    await client.send("sub,shutdown")
    assert await frames(client, 3) == [
        "err,shutdown,1001 server shutting down",
        "uns,shutdown",
        None,
    ]
    assert await item(outcome) == "returned"


# -- extension: several channels to one service ---------------------------------


async def test_instance_topics_are_independent_channels_of_one_service() -> None:
    server = MultiplexServer()
    seen: list[tuple[str, str]] = []

    @server.channel("news")
    async def news(channel: Channel) -> None:
        seen.append((channel.name, channel.topic))
        await channel.send(f"hello {channel.topic}")
        async for data in channel:
            await channel.send(f"{channel.topic} got {data}")

    client = await connect_in_memory(server)
    await client.send("sub,news")
    await client.send("sub,news#1")
    assert await frames(client, 2) == ["msg,news,hello news", "msg,news#1,hello news#1"]
    await client.send("msg,news#1,x")
    assert await frame(client) == "msg,news#1,news#1 got x"
    await client.send("uns,news")
    await client.send("msg,news#1,y")
    assert await frame(client) == "msg,news#1,news#1 got y"
    assert seen == [("news", "news"), ("news", "news#1")]
    await client.send("sub,nobody#1")
    assert await frames(client, 2) == [
        "err,nobody#1,404 no such service",
        "uns,nobody#1",
    ]
    await client.close()


# -- misuse that is refused at once, with what to write instead ---------------------


def test_the_channel_decorator_without_parentheses_says_how_to_write_it() -> None:
    server = MultiplexServer()
    with pytest.raises(LocalProtocolError, match=r'@mux.channel\("chat"\)'):

        @server.channel  # type: ignore[arg-type]
        async def chat(channel: Channel) -> None:
            pass

    assert server.services == []


@pytest.mark.parametrize("authorize", [42, "yes", True])
def test_an_authorizer_that_cannot_be_called_is_refused_at_once(
    authorize: object,
) -> None:
    with pytest.raises(TypeError, match="authorize must be a function"):
        MultiplexServer(authorize=authorize)  # type: ignore[arg-type]
    server = MultiplexServer()
    with pytest.raises(TypeError, match="authorize must be a function"):
        server.register("x", echo, authorize=authorize)  # type: ignore[arg-type]
    assert server.services == []
