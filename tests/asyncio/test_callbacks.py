"""Task-free ChannelHandler services: plain callbacks called as frames arrive.

A ChannelHandler subclass whose on_open, on_message and on_close are all
plain methods runs with no task per channel; it replies with
``Channel.send_nowait`` and ends the channel with ``Channel.close_nowait``.
"""

from __future__ import annotations

import asyncio
import gc
import inspect
import logging
import time
import warnings
import weakref
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import Any

import pytest

from websocket_multiplex import (
    Authorizer,
    Channel,
    ChannelClosed,
    ChannelHandler,
    CloseReason,
    Limits,
    MultiplexServer,
    RequestInfo,
    Subscription,
)
from websocket_multiplex.asyncio.callbacks import SLOW_CALLBACK
from websocket_multiplex.testing import MemoryClient, connect_in_memory

from .helpers import TIMEOUT, frame, frames, nothing_sent, settle

Calls = list[tuple[str, object]]


class Recorder(ChannelHandler):
    """Plain callbacks that record every call; ``fail_in`` makes one raise.

    It greets on open, echoes ``echo <data>``, closes on ``close`` and
    raises on ``fail``.
    """

    calls: Calls
    fail_in: str = ""

    def __init__(self, channel: Channel) -> None:
        super().__init__(channel)
        self.calls.append(("init", channel.topic))
        if self.fail_in == "init":
            raise RuntimeError("init failed")

    def on_open(self) -> None:
        self.calls.append(("open", self.channel.topic))
        if self.fail_in == "open":
            raise RuntimeError("open failed")
        self.channel.send_nowait("hello")

    def on_message(self, data: str) -> None:
        self.calls.append(("message", data))
        if data == "fail":
            raise RuntimeError("message failed")
        if data == "close":
            self.channel.close_nowait("bye")
            return
        self.channel.send_nowait(f"echo {data}")

    def on_close(self, reason: CloseReason) -> None:
        self.calls.append(("close", reason))
        if self.fail_in == "close":
            raise RuntimeError("close failed")


def recording(fail_in: str = "") -> tuple[type[Recorder], Calls]:
    """A fresh Recorder class and the list its instances record into."""
    calls: Calls = []
    cls = type("Rec", (Recorder,), {"calls": calls, "fail_in": fail_in})
    return cls, calls


async def open_service(
    fail_in: str = "", **server_args: object
) -> tuple[MultiplexServer, Calls, MemoryClient]:
    """A server offering a Recorder as ``svc``, and a client subscribed to it."""
    server = MultiplexServer(**server_args)  # type: ignore[arg-type]
    cls, calls = recording(fail_in)
    server.register("svc", cls)
    assert cls.runs_without_task()
    client = await connect_in_memory(server)
    await client.send("sub,svc")
    assert await frame(client) == "msg,svc,hello"
    return server, calls, client


def closes(calls: Calls) -> list[object]:
    return [reason for kind, reason in calls if kind == "close"]


def errors(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [
        r
        for r in caplog.records
        if r.name == "websocket_multiplex" and r.levelno >= logging.ERROR
    ]


# -- replies -------------------------------------------------------------------


async def test_echo_with_send_nowait_in_order_after_the_greeting() -> None:
    _, calls, client = await open_service()
    for i in range(5):
        await client.send(f"msg,svc,{i}")
    assert await frames(client, 5) == [f"msg,svc,echo {i}" for i in range(5)]
    assert calls == [
        ("init", "svc"),
        ("open", "svc"),
        *[("message", str(i)) for i in range(5)],
    ]
    await client.close()
    assert closes(calls) == [CloseReason.CONNECTION_LOST]


async def test_callbacks_run_synchronously_as_frames_arrive() -> None:
    server = MultiplexServer()
    cls, calls = recording()
    server.register("svc", cls)
    client = await connect_in_memory(server)
    # No yield between the frames and the check: no task had a chance to run.
    client.connection.receive("sub,svc")
    client.connection.receive("msg,svc,a")
    client.connection.receive("msg,svc,b")
    assert calls == [
        ("init", "svc"),
        ("open", "svc"),
        ("message", "a"),
        ("message", "b"),
    ]
    assert await frames(client, 3) == [
        "msg,svc,hello",
        "msg,svc,echo a",
        "msg,svc,echo b",
    ]
    await client.close()


async def test_the_base_class_is_a_silent_task_free_service() -> None:
    server = MultiplexServer()
    service = server.register("plain", ChannelHandler)
    assert service.callbacks is ChannelHandler
    client = await connect_in_memory(server)
    await client.send("sub,plain")
    await client.send("msg,plain,ignored")
    await client.send("uns,plain")
    await settle()
    assert nothing_sent(client)
    assert client.connection.channels == []
    await client.close()


async def test_instance_topics_each_get_their_own_handler() -> None:
    server = MultiplexServer()
    cls, calls = recording()
    server.register("svc", cls)
    client = await connect_in_memory(server)
    await client.send("sub,svc#1")
    await client.send("sub,svc#2")
    assert await frames(client, 2) == ["msg,svc#1,hello", "msg,svc#2,hello"]
    await client.send("msg,svc#2,x")
    await client.send("msg,svc#1,y")
    assert await frames(client, 2) == ["msg,svc#2,echo x", "msg,svc#1,echo y"]
    await client.send("uns,svc#1")
    await client.send("msg,svc#2,z")
    assert await frame(client) == "msg,svc#2,echo z"
    assert ("close", CloseReason.CLIENT_CLOSED) in calls
    assert [c.topic for c in client.connection.channels] == ["svc#2"]
    await client.close()


async def test_unregister_keeps_open_task_free_channels_going() -> None:
    server, _, client = await open_service()
    server.unregister("svc")
    await client.send("msg,svc,still")
    assert await frame(client) == "msg,svc,echo still"
    await client.close()


# -- no task per channel -------------------------------------------------------


class SyncEcho(ChannelHandler):
    def on_message(self, data: str) -> None:
        self.channel.send_nowait(data)


class AsyncEcho(ChannelHandler):
    async def on_message(self, data: str) -> None:
        await self.channel.send(data)


class AsyncOpen(ChannelHandler):
    async def on_open(self) -> None:
        pass


class AsyncClose(ChannelHandler):
    async def on_close(self, reason: CloseReason) -> None:
        pass


def test_runs_without_task_only_when_every_callback_is_plain() -> None:
    assert ChannelHandler.runs_without_task()
    assert SyncEcho.runs_without_task()
    assert Recorder.runs_without_task()
    assert not AsyncEcho.runs_without_task()
    assert not AsyncOpen.runs_without_task()
    assert not AsyncClose.runs_without_task()

    class Inherits(AsyncOpen):  # an async callback inherited counts too
        def on_message(self, data: str) -> None:
            pass

    assert not Inherits.runs_without_task()


def test_register_records_the_class_only_for_task_free_services() -> None:
    server = MultiplexServer()
    assert server.register("sync", SyncEcho).callbacks is SyncEcho
    assert server.register("async", AsyncEcho).callbacks is None
    assert server.register("close", AsyncClose).callbacks is None


@pytest.mark.parametrize(
    ("cls", "tasks_per_channel"),
    [(SyncEcho, 0), (AsyncEcho, 1), (AsyncOpen, 1), (AsyncClose, 1)],
)
async def test_tasks_per_channel(
    cls: type[ChannelHandler], tasks_per_channel: int
) -> None:
    server = MultiplexServer(handler_timeout=1.0)
    server.register("svc", cls)
    client = await connect_in_memory(server)
    await settle()  # the connection's writer has started
    before = len(asyncio.all_tasks())
    for i in range(50):
        await client.send(f"sub,svc#{i}")
    await settle()
    assert len(client.connection.channels) == 50
    assert len(asyncio.all_tasks()) == before + 50 * tasks_per_channel
    if cls is not AsyncOpen and cls is not AsyncClose:  # they do not echo
        for i in range(50):
            await client.send(f"msg,svc#{i},{i}")
        got = await frames(client, 50)
        assert sorted(got, key=str) == sorted(
            (f"msg,svc#{i},{i}" for i in range(50)), key=str
        )
        if cls is SyncEcho:  # in order, as they arrived
            assert got == [f"msg,svc#{i},{i}" for i in range(50)]
    await client.close()
    await settle()
    assert len(asyncio.all_tasks()) <= before


# -- closing from the server ---------------------------------------------------


async def test_close_nowait_sends_the_message_then_uns() -> None:
    server = MultiplexServer()
    calls: Calls = []
    channels: list[Channel] = []

    class Closer(ChannelHandler):
        def on_open(self) -> None:
            channels.append(self.channel)

        def on_message(self, data: str) -> None:
            self.channel.close_nowait("bye")
            try:
                self.channel.send_nowait("too late")
            except ChannelClosed as exc:
                calls.append(("late send", exc.reason))
            self.channel.close_nowait("again")  # closing twice does nothing

        def on_close(self, reason: CloseReason) -> None:
            calls.append(("close", reason))

    server.register("svc", Closer)
    client = await connect_in_memory(server)
    await client.send("sub,svc")
    await client.send("msg,svc,x")
    assert await frames(client, 2) == ["msg,svc,bye", "uns,svc"]
    assert calls == [
        ("close", CloseReason.SERVER_CLOSED),
        ("late send", CloseReason.SERVER_CLOSED),
    ]
    (channel,) = channels
    assert channel.close_reason is CloseReason.SERVER_CLOSED
    with pytest.raises(ChannelClosed) as raised:
        channel.send_nowait("later still")
    assert raised.value.reason is CloseReason.SERVER_CLOSED
    await client.send("msg,svc,ignored")  # the channel is gone
    await settle()
    assert nothing_sent(client)
    assert len(calls) == 2
    assert client.connection.stats.handler_failures == 0
    await client.close()
    assert len(calls) == 2  # on_close is not called again


async def test_close_nowait_from_the_recorder() -> None:
    _, calls, client = await open_service()
    await client.send("msg,svc,close")
    assert await frames(client, 2) == ["msg,svc,bye", "uns,svc"]
    assert closes(calls) == [CloseReason.SERVER_CLOSED]
    await client.close()
    assert closes(calls) == [CloseReason.SERVER_CLOSED]


async def test_close_nowait_in_on_open() -> None:
    server = MultiplexServer()
    calls: Calls = []

    class Refuser(ChannelHandler):
        def on_open(self) -> None:
            self.channel.close_nowait("not today")

        def on_message(self, data: str) -> None:
            calls.append(("message", data))

        def on_close(self, reason: CloseReason) -> None:
            calls.append(("close", reason))

    server.register("svc", Refuser)
    client = await connect_in_memory(server)
    await client.send("sub,svc")
    await client.send("msg,svc,x")
    assert await frames(client, 2) == ["msg,svc,not today", "uns,svc"]
    assert calls == [("close", CloseReason.SERVER_CLOSED)]
    assert client.connection.channels == []
    await client.send("sub,svc")  # a new subscription gets a new instance
    assert await frames(client, 2) == ["msg,svc,not today", "uns,svc"]
    assert calls == [("close", CloseReason.SERVER_CLOSED)] * 2
    await client.close()


async def test_send_nowait_carries_text_only() -> None:
    server = MultiplexServer()
    outcome: list[str] = []

    class Bytes(ChannelHandler):
        def on_open(self) -> None:
            try:
                self.channel.send_nowait(b"bytes")  # type: ignore[arg-type]
            except TypeError as exc:
                outcome.append(str(exc))
            self.channel.send_nowait("text")

    server.register("svc", Bytes)
    client = await connect_in_memory(server)
    await client.send("sub,svc")
    assert await frame(client) == "msg,svc,text"
    assert outcome and "encode bytes" in outcome[0]
    await client.close()


# -- closing from the client and the connection ---------------------------------


async def test_client_uns_calls_on_close_once() -> None:
    _, calls, client = await open_service()
    await client.send("uns,svc")
    await settle()
    assert closes(calls) == [CloseReason.CLIENT_CLOSED]
    assert nothing_sent(client)
    await client.close()
    assert closes(calls) == [CloseReason.CLIENT_CLOSED]


async def test_connection_lost_calls_on_close_once() -> None:
    server, calls, client = await open_service()
    await client.close()
    assert closes(calls) == [CloseReason.CONNECTION_LOST]
    await client.close()  # twice is fine
    await settle()
    assert closes(calls) == [CloseReason.CONNECTION_LOST]
    assert server.connections == set()


async def test_server_close_sends_going_away_and_calls_on_close_once() -> None:
    server, calls, client = await open_service()
    async with asyncio.timeout(TIMEOUT):
        await server.close()
    assert await frames(client, 3) == [
        "err,svc,1001 server shutting down",
        "uns,svc",
        None,
    ]
    assert client.transport.closed_with == (1001, "server shutdown")
    assert closes(calls) == [CloseReason.SHUTDOWN]
    await settle()
    assert closes(calls) == [CloseReason.SHUTDOWN]
    assert server.connections == set()


# -- failures ------------------------------------------------------------------


async def test_on_message_raising_fails_only_its_channel(
    caplog: pytest.LogCaptureFixture,
) -> None:
    server = MultiplexServer()
    cls, calls = recording()
    server.register("svc", cls)
    client = await connect_in_memory(server)
    await client.send("sub,svc#a")
    await client.send("sub,svc#b")
    assert await frames(client, 2) == ["msg,svc#a,hello", "msg,svc#b,hello"]
    with caplog.at_level(logging.ERROR, logger="websocket_multiplex"):
        await client.send("msg,svc#a,fail")
        assert await frames(client, 2) == [
            "err,svc#a,500 service failed",
            "uns,svc#a",
        ]
    assert closes(calls) == [CloseReason.HANDLER_FAILED]
    (record,) = errors(caplog)
    assert record.exc_info is not None
    assert isinstance(record.exc_info[1], RuntimeError)
    assert "message failed" in caplog.text  # the traceback is in the log
    assert client.connection.stats.handler_failures == 1

    await client.send("msg,svc#b,still here")
    assert await frame(client) == "msg,svc#b,echo still here"
    await client.send("msg,svc#a,gone")  # ignored: the channel is closed
    await client.send("sub,svc#a")  # a fresh subscription works again
    assert await frame(client) == "msg,svc#a,hello"
    assert [c.topic for c in client.connection.channels] == ["svc#b", "svc#a"]
    await client.close()
    assert (
        closes(calls)
        == [CloseReason.HANDLER_FAILED] + [CloseReason.CONNECTION_LOST] * 2
    )


async def test_on_open_raising_fails_the_channel(
    caplog: pytest.LogCaptureFixture,
) -> None:
    server = MultiplexServer()
    cls, calls = recording(fail_in="open")
    server.register("svc", cls)
    server.register("echo", SyncEcho)
    client = await connect_in_memory(server)
    await client.send("sub,echo")
    with caplog.at_level(logging.ERROR, logger="websocket_multiplex"):
        await client.send("sub,svc")
        await client.send("msg,svc,x")  # ignored: already closed
        assert await frames(client, 2) == ["err,svc,500 service failed", "uns,svc"]
    assert calls == [
        ("init", "svc"),
        ("open", "svc"),
        ("close", CloseReason.HANDLER_FAILED),
    ]
    (record,) = errors(caplog)
    assert record.exc_info is not None
    assert "open failed" in caplog.text
    await client.send("msg,echo,fine")
    assert await frame(client) == "msg,echo,fine"
    await client.close()
    assert len(calls) == 3


async def test_constructor_raising_fails_the_channel_and_calls_nothing(
    caplog: pytest.LogCaptureFixture,
) -> None:
    server = MultiplexServer()
    cls, calls = recording(fail_in="init")
    server.register("svc", cls)
    server.register("echo", SyncEcho)
    client = await connect_in_memory(server)
    await client.send("sub,echo")
    with caplog.at_level(logging.ERROR, logger="websocket_multiplex"):
        await client.send("sub,svc")
        await client.send("msg,svc,x")
        assert await frames(client, 2) == ["err,svc,500 service failed", "uns,svc"]
    assert calls == [("init", "svc")]  # no on_open, on_message nor on_close
    (record,) = errors(caplog)
    assert record.exc_info is not None
    assert "init failed" in caplog.text
    assert "Rec()" in record.getMessage()
    assert client.connection.stats.handler_failures == 1
    await client.send("msg,echo,fine")
    assert await frame(client) == "msg,echo,fine"
    await client.close()
    assert calls == [("init", "svc")]


class Messages(logging.Handler):
    """Keeps the text of each record only: a record holds its arguments
    alive, and pytest's own handlers keep every record to the test's end."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


async def test_a_plain_callback_returning_a_coroutine_fails_the_channel() -> None:
    server = MultiplexServer()
    reasons: list[CloseReason] = []
    made: list[weakref.ref[Coroutine[Any, Any, None]]] = []

    class Forgot(ChannelHandler):
        def on_message(self, data: str) -> Coroutine[Any, Any, None]:
            coroutine = self.channel.send(data)  # meant: async def and await
            made.append(weakref.ref(coroutine))
            return coroutine

        def on_close(self, reason: CloseReason) -> None:
            reasons.append(reason)

    assert Forgot.runs_without_task()
    server.register("svc", Forgot)
    server.register("echo", SyncEcho)
    client = await connect_in_memory(server)
    await client.send("sub,echo")
    logs = Messages()
    logger = logging.getLogger("websocket_multiplex")
    logger.addHandler(logs)
    logger.propagate = False  # so that nothing keeps the coroutine alive
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            await client.send("sub,svc")
            await client.send("msg,svc,x")
            # Nothing was sent: the coroutine never ran.
            assert await frames(client, 2) == [
                "err,svc,500 service failed",
                "uns,svc",
            ]
            (ref,) = made
            coroutine = ref()
            # Closed (so it can never warn), or already gone (and it would
            # have warned by now, in this block).
            assert coroutine is None or (
                inspect.getcoroutinestate(coroutine) == inspect.CORO_CLOSED
            )
            del coroutine
            gc.collect()
            await settle()
            gc.collect()
    finally:
        logger.propagate = True
        logger.removeHandler(logs)
    assert made[0]() is None
    assert [str(w.message) for w in caught if "never awaited" in str(w.message)] == []
    assert not [w for w in caught if issubclass(w.category, RuntimeWarning)]
    (message,) = logs.messages
    assert "async def" in message
    assert "Forgot.on_message" in message
    assert reasons == [CloseReason.HANDLER_FAILED]
    assert client.connection.stats.handler_failures == 1
    await client.send("msg,echo,fine")
    assert await frame(client) == "msg,echo,fine"
    await client.close()
    assert reasons == [CloseReason.HANDLER_FAILED]


async def test_a_plain_callback_returning_a_value_fails_the_channel(
    caplog: pytest.LogCaptureFixture,
) -> None:
    server = MultiplexServer()

    class Returns(ChannelHandler):
        def on_open(self) -> bool:  # type: ignore[override]
            return True

    server.register("svc", Returns)
    client = await connect_in_memory(server)
    with caplog.at_level(logging.ERROR, logger="websocket_multiplex"):
        await client.send("sub,svc")
        assert await frames(client, 2) == ["err,svc,500 service failed", "uns,svc"]
    (record,) = errors(caplog)
    assert "returned True" in record.getMessage()
    await client.close()


@pytest.mark.parametrize("how", ["uns", "connection lost", "server close"])
async def test_on_close_raising_is_logged_and_breaks_nothing(
    how: str, caplog: pytest.LogCaptureFixture
) -> None:
    server = MultiplexServer()
    cls, calls = recording(fail_in="close")
    server.register("svc", cls)
    server.register("echo", SyncEcho)
    client = await connect_in_memory(server)
    await client.send("sub,svc")
    await client.send("sub,echo")
    assert await frame(client) == "msg,svc,hello"
    with caplog.at_level(logging.ERROR, logger="websocket_multiplex"):
        if how == "uns":
            await client.send("uns,svc")
        elif how == "connection lost":
            async with asyncio.timeout(TIMEOUT):
                await client.close()
        else:
            async with asyncio.timeout(TIMEOUT):
                await server.close()
        await settle()
    (record,) = errors(caplog)
    assert record.exc_info is not None
    assert "close failed" in caplog.text
    assert len(closes(calls)) == 1
    if how == "uns":
        assert nothing_sent(client)  # no err for a channel the client closed
        await client.send("msg,echo,fine")
        assert await frame(client) == "msg,echo,fine"
        await client.send("sub,svc")
        assert await frame(client) == "msg,svc,hello"
        await client.close()
    elif how == "server close":
        assert await frames(client, 5) == [
            "err,svc,1001 server shutting down",
            "uns,svc",
            "err,echo,1001 server shutting down",
            "uns,echo",
            None,
        ]
    else:
        assert nothing_sent(client)  # the carrier is gone: nothing goes out
    assert server.connections == set()  # every case ended the connection


# -- authorization -------------------------------------------------------------


def gated_authorizer(answer: bool) -> tuple[asyncio.Event, Authorizer]:
    """An authorizer that answers ``answer`` once the returned event is set."""
    release = asyncio.Event()

    async def authorize(subscription: Subscription) -> bool:
        await release.wait()
        return answer

    return release, authorize


async def test_messages_sent_while_authorizing_arrive_in_order_after_on_open() -> None:
    server = MultiplexServer()
    cls, calls = recording()
    release = asyncio.Event()
    asked: list[str] = []

    async def slow_yes(subscription: Subscription) -> bool:
        asked.append(subscription.name)
        await release.wait()
        return True

    server.register("svc", cls, authorize=slow_yes)
    client = await connect_in_memory(server)
    await settle()
    before = len(asyncio.all_tasks())
    await client.send("sub,svc")
    for i in range(3):
        await client.send(f"msg,svc,{i}")
    await settle()
    assert asked == ["svc"]
    assert calls == []  # nothing is made before the authorizer answers
    assert nothing_sent(client)
    assert len(asyncio.all_tasks()) == before + 1  # the authorization

    release.set()
    client.connection.receive("msg,svc,3")  # after the answer, before it is seen
    assert await frames(client, 5) == [
        "msg,svc,hello",
        *[f"msg,svc,echo {i}" for i in range(4)],
    ]
    await client.send("msg,svc,4")
    assert await frame(client) == "msg,svc,echo 4"
    assert calls == [
        ("init", "svc"),
        ("open", "svc"),
        *[("message", str(i)) for i in range(5)],
    ]
    await settle()
    assert len(asyncio.all_tasks()) == before  # no task once authorized
    await client.send("uns,svc")
    assert closes(calls) == [CloseReason.CLIENT_CLOSED]
    await client.close()
    assert closes(calls) == [CloseReason.CLIENT_CLOSED]


async def test_a_message_closing_the_channel_while_draining_stops_the_drain() -> None:
    server = MultiplexServer()
    cls, calls = recording()
    release, slow_yes = gated_authorizer(True)
    server.register("svc", cls, authorize=slow_yes)
    client = await connect_in_memory(server)
    for text in ("sub,svc", "msg,svc,a", "msg,svc,close", "msg,svc,b"):
        await client.send(text)
    release.set()
    assert await frames(client, 4) == [
        "msg,svc,hello",
        "msg,svc,echo a",
        "msg,svc,bye",
        "uns,svc",
    ]
    await settle()
    assert calls == [
        ("init", "svc"),
        ("open", "svc"),
        ("message", "a"),
        ("message", "close"),
        ("close", CloseReason.SERVER_CLOSED),
    ]
    assert nothing_sent(client)
    await client.close()


async def test_a_refusing_authorizer_runs_no_callback() -> None:
    server = MultiplexServer()
    cls, calls = recording()
    release, slow_no = gated_authorizer(False)
    server.register("svc", cls, authorize=slow_no)
    client = await connect_in_memory(server)
    await client.send("sub,svc")
    await client.send("msg,svc,sneaky")
    release.set()
    assert await frames(client, 2) == ["err,svc,403 refused", "uns,svc"]
    await settle()
    assert calls == []  # not even made
    assert client.connection.stats.authorization_refusals == 1
    await client.close()
    assert calls == []


async def test_client_gone_while_authorizing_runs_no_callback() -> None:
    server = MultiplexServer()
    cls, calls = recording()
    release, slow_yes = gated_authorizer(True)
    server.register("svc", cls, authorize=slow_yes)
    client = await connect_in_memory(server)
    await client.send("sub,svc")
    await client.send("uns,svc")
    release.set()
    await settle()
    assert calls == []
    assert nothing_sent(client)
    await client.close()
    assert calls == []


async def test_the_server_wide_authorizer_guards_task_free_services() -> None:
    def only_alice(subscription: Subscription) -> bool:
        subscription.identity = subscription.request.query.get("user")
        return subscription.identity == "alice"

    server = MultiplexServer(authorize=only_alice)
    identities: list[object] = []
    cls, calls = recording()

    class WhoAmI(cls):  # type: ignore[valid-type,misc]
        def on_open(self) -> None:
            identities.append(self.channel.identity)
            super().on_open()

    server.register("svc", WhoAmI)
    alice = await connect_in_memory(server, RequestInfo(query_string="user=alice"))
    await alice.send("sub,svc")
    await alice.send("msg,svc,early")
    assert await frames(alice, 2) == ["msg,svc,hello", "msg,svc,echo early"]
    assert identities == ["alice"]

    mallory = await connect_in_memory(server, RequestInfo(query_string="user=mallory"))
    await mallory.send("sub,svc")
    await mallory.send("msg,svc,sneaky")
    assert await frames(mallory, 2) == ["err,svc,403 refused", "uns,svc"]
    await settle()
    assert identities == ["alice"]
    assert calls == [("init", "svc"), ("open", "svc"), ("message", "early")]
    await alice.close()
    await mallory.close()
    assert closes(calls) == [CloseReason.CONNECTION_LOST]


# -- a client too slow for send_nowait -----------------------------------------


@dataclass(eq=False)
class GatedTransport:
    """A carrier that takes one message at a time, and only when let through."""

    request: RequestInfo = field(default_factory=RequestInfo)
    gate: asyncio.Event = field(default_factory=asyncio.Event)
    writing: asyncio.Event = field(default_factory=asyncio.Event)
    closed: asyncio.Event = field(default_factory=asyncio.Event)
    sent: list[str] = field(default_factory=list)
    closed_with: tuple[int, str] | None = None

    async def send(self, text: str) -> None:
        self.writing.set()
        await self.gate.wait()
        self.sent.append(text)

    async def close(self, code: int, reason: str) -> None:
        self.closed_with = (code, reason)
        self.closed.set()
        self.gate.set()

    async def send_many(self, texts: list[str]) -> None:
        for text in texts:
            await self.send(text)


async def closed_with(transport: GatedTransport) -> tuple[int, str] | None:
    async with asyncio.timeout(TIMEOUT):
        await transport.closed.wait()
    return transport.closed_with


async def test_a_flood_to_a_client_that_does_not_read_drops_the_connection() -> None:
    server = MultiplexServer(limits=Limits(write_limit=100, slow_client_timeout=30))
    stopped: list[tuple[int, CloseReason]] = []
    reasons: list[CloseReason] = []

    class Flood(ChannelHandler):
        def on_message(self, data: str) -> None:
            for i in range(100_000):
                try:
                    self.channel.send_nowait("x" * 50)  # 60-character frames
                except ChannelClosed as exc:
                    stopped.append((i, exc.reason))
                    return

        def on_close(self, reason: CloseReason) -> None:
            reasons.append(reason)

    server.register("flood", Flood)
    transport = GatedTransport()
    connection = server.accept(transport)
    connection.receive("sub,flood")
    connection.receive("msg,flood,go")
    # Four times the write limit is as far as the queue may go: the
    # seventh frame (420 characters) drops the client, at once.
    assert stopped == [(7, CloseReason.LIMIT_EXCEEDED)]
    assert reasons == [CloseReason.LIMIT_EXCEEDED]
    assert connection.closed
    assert connection.stats.slow_client_closes == 1
    assert connection.stats.handler_failures == 0
    assert await closed_with(transport) == (4008, "slow client")
    async with asyncio.timeout(TIMEOUT):
        await connection.connection_lost()
    assert reasons == [CloseReason.LIMIT_EXCEEDED]
    assert server.stats().slow_client_closes == 1
    assert server.connections == set()
    assert transport.sent == []  # nothing of the flood was held for it


async def test_a_client_above_the_write_limit_too_long_is_dropped() -> None:
    timeout = 0.01
    server = MultiplexServer(
        limits=Limits(write_limit=100, slow_client_timeout=timeout)
    )
    reasons: list[CloseReason] = []

    class Big(ChannelHandler):
        def on_message(self, data: str) -> None:
            self.channel.send_nowait("y" * 150)  # above the limit, under 4x

        def on_close(self, reason: CloseReason) -> None:
            reasons.append(reason)

    server.register("big", Big)
    transport = GatedTransport()
    connection = server.accept(transport)
    connection.receive("sub,big")
    connection.receive("msg,big,1")
    async with asyncio.timeout(TIMEOUT):
        await transport.writing.wait()  # the first frame is stuck in the carrier
    connection.receive("msg,big,2")  # queued, over the limit: the clock starts
    assert not connection.closed
    # Time passing is what is under test: there is nothing else to wait for.
    await asyncio.sleep(timeout * 3)
    connection.receive("msg,big,3")
    assert connection.closed
    assert connection.stats.slow_client_closes == 1
    assert reasons == [CloseReason.LIMIT_EXCEEDED]
    assert await closed_with(transport) == (4008, "slow client")
    async with asyncio.timeout(TIMEOUT):
        await connection.connection_lost()
    assert server.stats().slow_client_closes == 1


async def test_a_client_that_keeps_up_is_not_dropped() -> None:
    server = MultiplexServer(limits=Limits(write_limit=100, slow_client_timeout=30))
    server.register("echo", SyncEcho)
    client = await connect_in_memory(server)
    await client.send("sub,echo")
    for i in range(200):  # 200 x ~60 characters, each written before the next
        await client.send(f"msg,echo,{i:050d}")
    got = await frames(client, 200)
    assert got == [f"msg,echo,{i:050d}" for i in range(200)]
    assert not client.connection.closed
    assert client.connection.stats.slow_client_closes == 0
    await client.close()


class UncaughtFlood(ChannelHandler):
    """Sends until the connection is dropped, letting ChannelClosed escape,
    as a handler's ``send`` loop does when its client goes."""

    def on_message(self, data: str) -> None:
        while True:
            self.channel.send_nowait("x" * 50)


class AsyncUncaughtFlood(ChannelHandler):
    async def on_message(self, data: str) -> None:
        while True:
            self.channel.send_nowait("x" * 50)
            await asyncio.sleep(0)


@pytest.mark.parametrize(
    "cls",
    [
        UncaughtFlood,
        AsyncUncaughtFlood,
    ],
)
async def test_channel_closed_escaping_after_a_slow_client_drop_is_no_failure(
    cls: type[ChannelHandler], caplog: pytest.LogCaptureFixture
) -> None:
    server = MultiplexServer(limits=Limits(write_limit=100, slow_client_timeout=30))
    server.register("flood", cls)
    transport = GatedTransport()
    with caplog.at_level(logging.ERROR, logger="websocket_multiplex"):
        connection = server.accept(transport)
        connection.receive("sub,flood")
        connection.receive("msg,flood,go")
        assert await closed_with(transport) == (4008, "slow client")
        async with asyncio.timeout(TIMEOUT):
            await connection.connection_lost()
        await settle()
    assert connection.stats.slow_client_closes == 1
    assert errors(caplog) == []
    assert connection.stats.handler_failures == 0


# -- the inbox limit -----------------------------------------------------------


async def test_the_inbox_limit_does_not_apply_to_task_free_channels() -> None:
    server = MultiplexServer(limits=Limits(max_queue=4))
    server.register("echo", SyncEcho)
    client = await connect_in_memory(server)
    await client.send("sub,echo")
    for i in range(50):  # in one go: nothing else runs in between
        client.connection.receive(f"msg,echo,{i}")
    assert await frames(client, 50) == [f"msg,echo,{i}" for i in range(50)]
    assert [c.name for c in client.connection.channels] == ["echo"]
    await settle()
    assert nothing_sent(client)
    await client.close()


async def test_the_inbox_limit_still_applies_to_async_callbacks() -> None:
    # The contrast that shows the test above exercises the limit.
    server = MultiplexServer(limits=Limits(max_queue=4))
    server.register("echo", AsyncEcho)
    client = await connect_in_memory(server)
    await client.send("sub,echo")
    for i in range(50):
        client.connection.receive(f"msg,echo,{i}")
    assert await frames(client, 2) == ["err,echo,503 channel overloaded", "uns,echo"]
    await client.close()


# -- isolation: a slow on_message delays others by at most one callback --------


def busy() -> None:
    """Keep the CPU busy past SLOW_CALLBACK, as CPU-bound code does."""
    started = time.perf_counter()
    while time.perf_counter() - started < 2 * SLOW_CALLBACK:
        pass


async def test_a_slow_service_delays_another_by_at_most_one_callback() -> None:
    """Twenty messages for a service whose on_message is slow, then one for a
    fast one, all read in one go: the fast one is called after one slow
    callback, not twenty; the slow one still gets all of its, in order."""
    server = MultiplexServer()
    calls: list[str] = []
    done = asyncio.Event()

    class Slow(ChannelHandler):
        def on_message(self, data: str) -> None:
            busy()
            calls.append(f"slow {data}")
            if data == "19":
                done.set()

    class Fast(ChannelHandler):
        def on_message(self, data: str) -> None:
            calls.append(f"fast {data}")

    server.register("slow", Slow)
    server.register("fast", Fast)
    client = await connect_in_memory(server)
    client.connection.receive("sub,slow")
    client.connection.receive("sub,fast")
    for i in range(20):
        client.connection.receive(f"msg,slow,{i}")
    client.connection.receive("msg,fast,x")
    assert calls == ["slow 0", "fast x"]  # no yield yet: the rest wait in turn
    async with asyncio.timeout(TIMEOUT):
        await done.wait()
    assert [call for call in calls if call.startswith("slow")] == [
        f"slow {i}" for i in range(20)
    ]
    await client.close()


async def test_a_slow_service_takes_one_turn_per_loop_iteration() -> None:
    """While a slow service works through its backlog, a message for a fast
    one that arrives meanwhile waits for one slow callback at most."""
    server = MultiplexServer()
    calls: list[str] = []
    fast_called = asyncio.Event()

    class Slow(ChannelHandler):
        def on_message(self, data: str) -> None:
            busy()
            calls.append("slow")

    class Fast(ChannelHandler):
        def on_message(self, data: str) -> None:
            calls.append("fast")
            fast_called.set()

    server.register("slow", Slow)
    server.register("fast", Fast)
    client = await connect_in_memory(server)
    client.connection.receive("sub,slow")
    client.connection.receive("sub,fast")
    for i in range(10):
        client.connection.receive(f"msg,slow,{i}")
    await asyncio.sleep(0)  # one iteration: one more slow callback
    before = calls.count("slow")
    client.connection.receive("msg,fast,x")
    async with asyncio.timeout(TIMEOUT):
        await fast_called.wait()
    assert calls.count("slow") == before  # called at once, before the next turn
    assert before < 10
    await client.close()


async def test_a_service_that_caught_up_is_called_at_once_again() -> None:
    """Slow once, then fast: once its backlog is gone, its messages are
    handled as they arrive again, with no yield in between."""
    server = MultiplexServer()
    calls: list[str] = []
    caught_up = asyncio.Event()

    class OnceSlow(ChannelHandler):
        def on_message(self, data: str) -> None:
            if data == "slow":
                busy()
            calls.append(data)
            if data == "a":
                caught_up.set()

    server.register("svc", OnceSlow)
    client = await connect_in_memory(server)
    client.connection.receive("sub,svc")
    client.connection.receive("msg,svc,slow")
    client.connection.receive("msg,svc,a")  # in turn: it was slow
    assert calls == ["slow"]
    async with asyncio.timeout(TIMEOUT):
        await caught_up.wait()
    assert calls == ["slow", "a"]
    client.connection.receive("msg,svc,b")  # fast again: at once
    assert calls == ["slow", "a", "b"]
    await client.close()
