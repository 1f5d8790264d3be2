"""Request/reply both ways between our Python client and our server, over
real sockets (docs/PROTOCOL-EXTENSIONS.md, section 5): replies by id,
errors with their codes, timeouts, the bounds, channels closing with
requests in flight, a resumed cut losing none, a lost session failing
them, and the original node server, which takes none."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field

import pytest

from websocket_multiplex import (
    Channel,
    ChannelClosed,
    ChannelHandler,
    CloseReason,
    Limits,
    MultiplexServer,
    Request,
    RequestFailed,
    RequestsNotSupported,
    RequestTimeout,
)
from websocket_multiplex.asyncio import client as client_module
from websocket_multiplex.asyncio.client import MultiplexClient
from websocket_multiplex.client import connect

from ..support.proxy import Proxy
from .support import FAST, NODE_DIR, TIMEOUT, NodeServer, serving, sockjs_app


@dataclass
class Services:
    """What the services saw, for the test to wait on."""

    held: list[Request] = field(default_factory=list)
    arrived: asyncio.Condition = field(default_factory=asyncio.Condition)
    ended: asyncio.Queue[CloseReason] = field(default_factory=asyncio.Queue)

    async def wait_held(self, count: int) -> None:
        async with asyncio.timeout(TIMEOUT), self.arrived:
            await self.arrived.wait_for(lambda: len(self.held) >= count)

    async def hold(self, request: Request) -> None:
        async with self.arrived:
            self.held.append(request)
            self.arrived.notify_all()


class TaskFree(ChannelHandler):
    def on_request(self, request: Request) -> None:
        request.reply_nowait(f"tf {request.data}")


class Refusing(ChannelHandler):
    """A task-free handler without ``on_request``: it answers 501."""

    def on_message(self, data: str) -> None:
        self.channel.send_nowait(data)


class AsyncAnswers(ChannelHandler):
    async def on_request(self, request: Request) -> None:
        await asyncio.sleep(0)
        if request.data == "raise":
            raise RuntimeError("the handler broke")
        await request.reply(f"async {request.data}")


def make_server(limits: Limits | None = None) -> tuple[MultiplexServer, Services]:
    server = MultiplexServer(limits=limits or Limits())
    seen = Services()

    async def calc(channel: Channel) -> None:
        async for request in channel.requests():
            if request.data.startswith("fail "):
                await request.fail(request.data[5:], 422)
            else:
                await request.reply(request.data.upper())

    async def reverse(channel: Channel) -> None:
        """Answers three requests at once, the last first."""
        batch: list[Request] = []
        async for request in channel.requests():
            batch.append(request)
            if len(batch) == 3:
                for held in reversed(batch):
                    await held.reply(f"re {held.data}")
                batch = []

    async def hold(channel: Channel) -> None:
        """Keeps every request unanswered; ``go`` answers them all,
        ``close`` closes the channel."""
        reader = asyncio.ensure_future(_hold_all(channel, seen))
        try:
            async for data in channel:
                if data == "go":
                    for request in seen.held:
                        if not request.answered:
                            await request.reply(f"held {request.data}")
                elif data == "close":
                    await channel.close()
        finally:
            reader.cancel()
            seen.ended.put_nowait(channel.close_reason or CloseReason.SERVER_CLOSED)

    async def silent(channel: Channel) -> None:
        async for _ in channel:  # reads messages, never requests
            pass

    async def unasked(channel: Channel) -> None:
        channel.refuse_requests()  # says so: no client waits for its timeout
        async for data in channel:
            await channel.send(data)

    async def asker(channel: Channel) -> None:
        """``ask <data> [<timeout>]``: asks the client, sends what came of it."""
        try:
            async for data in channel:
                _, question, timeout = [*data.split(" "), "5"][:3]
                try:
                    reply = await channel.ask(question, timeout=float(timeout))
                except (RequestFailed, RequestsNotSupported) as error:
                    reply = f"{type(error).__name__} {getattr(error, 'code', '')}"
                await channel.send(reply)
        finally:
            seen.ended.put_nowait(channel.close_reason or CloseReason.SERVER_CLOSED)

    for name, handler in [
        ("calc", calc),
        ("reverse", reverse),
        ("hold", hold),
        ("silent", silent),
        ("unasked", unasked),
        ("asker", asker),
    ]:
        server.register(name, handler)
    server.register("taskfree", TaskFree)

    async def slowly(subscription: object) -> bool:
        for _ in range(5):  # requests come meanwhile: they wait for on_open
            await asyncio.sleep(0)
        return True

    server.register("taskfree-authorized", TaskFree, authorize=slowly)
    server.register("refusing", Refusing)
    server.register("async", AsyncAnswers)
    return server, seen


async def _hold_all(channel: Channel, seen: Services) -> None:
    async for request in channel.requests():
        await seen.hold(request)


@dataclass
class Running:
    server: MultiplexServer
    seen: Services
    port: int

    def url(self, kind: str = "websocket", port: int | None = None) -> str:
        port = port or self.port
        if kind == "sockjs":
            return f"http://127.0.0.1:{port}/multiplex"
        return f"ws://127.0.0.1:{port}/multiplex/websocket"


@contextlib.asynccontextmanager
async def running(limits: Limits | None = None) -> AsyncIterator[Running]:
    server, seen = make_server(limits)
    async with serving(sockjs_app(server)) as port:
        yield Running(server, seen, port)


@contextlib.asynccontextmanager
async def connected(url: str, **options: object) -> AsyncIterator[MultiplexClient]:
    client = await connect(url, reconnect=FAST, **options)  # type: ignore[arg-type]
    try:
        yield client
    finally:
        await client.close()


@pytest.mark.parametrize("kind", ["websocket", "sockjs"])
async def test_the_client_asks_and_the_service_answers(kind: str) -> None:
    async with running() as at, connected(at.url(kind)) as client:
        calc = await client.channel("calc")
        assert await calc.request("2+2", timeout=TIMEOUT) == "2+2"
        assert await calc.request("héllo, 😀 a,b", timeout=TIMEOUT) == "HÉLLO, 😀 A,B"
        with pytest.raises(RequestFailed) as failed:
            await calc.request("fail no such sum", timeout=TIMEOUT)
        assert (failed.value.code, failed.value.text) == (422, "no such sum")
        assert "422 no such sum" in str(failed.value)
        assert await calc.request("", timeout=TIMEOUT) == ""
        assert not calc.closed  # errors are per request, not per channel


async def test_replies_are_routed_by_id_not_by_order() -> None:
    async with running() as at, connected(at.url()) as client:
        reverse = await client.channel("reverse")
        replies = await asyncio.gather(
            *(reverse.request(word, timeout=TIMEOUT) for word in ("a", "b", "c"))
        )
        assert replies == ["re a", "re b", "re c"]


async def test_no_reply_in_time_raises_request_timeout() -> None:
    async with running() as at, connected(at.url()) as client:
        silent = await client.channel("silent")
        with pytest.raises(RequestTimeout) as timed_out:
            await silent.request("anyone?", timeout=0.2)
        assert isinstance(timed_out.value, TimeoutError)
        assert timed_out.value.code == 504
        assert "no reply within 0.2 s" in str(timed_out.value)
        await silent.send("still usable")


async def test_a_late_reply_is_ignored_and_frees_nothing_twice() -> None:
    async with running() as at, connected(at.url()) as client:
        hold = await client.channel("hold")
        with pytest.raises(RequestTimeout):
            await hold.request("late", timeout=0.1)
        await at.seen.wait_held(1)
        waiting = asyncio.ensure_future(hold.request("next", timeout=TIMEOUT))
        await at.seen.wait_held(2)
        await hold.send("go")  # answers "late" (nobody waits) and "next"
        assert await waiting == "held next"


async def test_the_clients_own_bound_fails_at_once() -> None:
    async with (
        running() as at,
        connected(at.url(), max_outstanding_requests=2) as client,
    ):
        hold = await client.channel("hold")
        first = [
            asyncio.ensure_future(hold.request(str(n), timeout=TIMEOUT)) for n in (1, 2)
        ]
        await at.seen.wait_held(2)
        with pytest.raises(RequestFailed) as failed:
            await hold.request("3", timeout=TIMEOUT)
        assert failed.value.code == 429
        await hold.send("go")
        assert await asyncio.gather(*first) == ["held 1", "held 2"]
        fourth = asyncio.ensure_future(hold.request("4", timeout=TIMEOUT))
        await at.seen.wait_held(3)  # room again
        await hold.send("go")
        assert await fourth == "held 4"


async def test_the_servers_bound_answers_429() -> None:
    async with (
        running(Limits(max_outstanding_requests=1)) as at,
        connected(at.url()) as client,
    ):
        hold = await client.channel("hold")
        first = asyncio.ensure_future(hold.request("1", timeout=TIMEOUT))
        await at.seen.wait_held(1)
        with pytest.raises(RequestFailed) as failed:
            await hold.request("2", timeout=TIMEOUT)
        assert (failed.value.code, failed.value.text) == (429, "too many requests")
        await hold.send("go")
        assert await first == "held 1"


async def test_a_channel_closing_fails_every_request_in_flight() -> None:
    async with running() as at, connected(at.url()) as client:
        hold = await client.channel("hold")
        pending = [
            asyncio.ensure_future(hold.request(str(n), timeout=None)) for n in range(3)
        ]
        await at.seen.wait_held(3)
        await hold.send("close")
        for request in pending:
            with pytest.raises(ChannelClosed) as closed:
                await asyncio.wait_for(request, TIMEOUT)
            assert closed.value.reason is CloseReason.SERVER_CLOSED
        with pytest.raises(ChannelClosed):
            await hold.request("after", timeout=TIMEOUT)
        # The client closing its side does the same.
        again = await client.channel("hold")
        waiting = asyncio.ensure_future(again.request("x", timeout=None))
        await at.seen.wait_held(4)
        await again.close()
        with pytest.raises(ChannelClosed) as closed:
            await asyncio.wait_for(waiting, TIMEOUT)
        assert closed.value.reason is CloseReason.CLIENT_CLOSED


async def test_a_handler_that_takes_no_requests_refuses_them_with_501() -> None:
    async with running() as at, connected(at.url()) as client:
        unasked = await client.channel("unasked")
        with pytest.raises(RequestFailed) as failed:
            await unasked.request("a", timeout=TIMEOUT)
        assert (failed.value.code, failed.value.text) == (
            501,
            "this channel answers no requests",
        )
        await unasked.send("messages still work")
        assert await unasked.receive(TIMEOUT) == "messages still work"


async def test_unread_requests_count_in_the_inbox_bounds() -> None:
    """A handler that leaves requests unread loses its channel as one that
    leaves messages unread does (503), and every request in flight fails."""
    limits = Limits(max_queue=2, max_outstanding_requests=10)
    async with running(limits) as at, connected(at.url()) as client:
        silent = await client.channel("silent")
        pending = [
            asyncio.ensure_future(silent.request(str(n), timeout=TIMEOUT))
            for n in range(3)
        ]
        for request in pending:
            with pytest.raises(ChannelClosed) as closed:
                await request
            assert closed.value.reason is CloseReason.REFUSED
        assert silent.close_detail == "503 channel overloaded"


async def test_callback_handlers_answer_or_refuse_with_501() -> None:
    async with running() as at, connected(at.url()) as client:
        taskfree = await client.channel("taskfree")
        assert await taskfree.request("a", timeout=TIMEOUT) == "tf a"
        authorized = await client.channel("taskfree-authorized")
        assert await asyncio.gather(
            authorized.request("b", timeout=TIMEOUT),
            authorized.request("c", timeout=TIMEOUT),
        ) == ["tf b", "tf c"]
        refusing = await client.channel("refusing")
        with pytest.raises(RequestFailed) as failed:
            await refusing.request("a", timeout=TIMEOUT)
        assert failed.value.code == 501
        await refusing.send("messages still work")
        assert await refusing.receive(TIMEOUT) == "messages still work"
        answers = await client.channel("async")
        assert await answers.request("b", timeout=TIMEOUT) == "async b"
        with pytest.raises(ChannelClosed):  # a failing handler fails its channel
            await answers.request("raise", timeout=TIMEOUT)
        assert answers.close_detail == "500 service failed"


async def test_the_service_asks_the_client() -> None:
    async with running() as at, connected(at.url()) as client:
        asker = await client.channel("asker")

        async def answer() -> None:
            async for request in asker.requests():
                if request.data == "no":
                    await request.fail("will not", 409)
                else:
                    await request.reply(f"client {request.data}")

        answering = asyncio.ensure_future(answer())
        await asker.send("ask yes")
        assert await asker.receive(TIMEOUT) == "client yes"
        await asker.send("ask no")
        assert await asker.receive(TIMEOUT) == "RequestFailed 409"
        answering.cancel()
        await asker.send("ask unread 0.2")  # nobody reads the client's requests
        assert await asker.receive(TIMEOUT) == "RequestTimeout 504"


async def test_a_resumed_cut_loses_no_request_either_way() -> None:
    async with (
        running() as at,
        Proxy(at.port) as proxy,
        connected(at.url(port=proxy.port)) as client,
    ):
        hold = await client.channel("hold")
        pending = [
            asyncio.ensure_future(hold.request(str(n), timeout=TIMEOUT))
            for n in range(3)
        ]
        await at.seen.wait_held(3)
        assert client.resumable
        proxy.abort()  # the replies are written while the carrier is gone
        await hold.send("go")
        assert await asyncio.gather(*pending) == ["held 0", "held 1", "held 2"]
        assert client.resumptions >= 1
        asker = await client.channel("asker")
        requests = asker.requests()
        await asker.send("ask across")
        async with asyncio.timeout(TIMEOUT):
            request = await anext(requests)
        proxy.abort()  # the server's request in flight, the reply after
        await request.reply("the cut")
        assert await asker.receive(TIMEOUT) == "the cut"
        assert client.resumptions >= 2


async def test_a_session_not_resumed_fails_requests_in_flight_with_502() -> None:
    async with (
        running(Limits(resume_grace=0.2)) as at,
        Proxy(at.port) as proxy,
        connected(at.url(port=proxy.port)) as client,
    ):
        hold = await client.channel("hold")
        pending = asyncio.ensure_future(hold.request("lost", timeout=TIMEOUT))
        await at.seen.wait_held(1)
        proxy.cut()  # longer than the grace: the server ends the session
        async with asyncio.timeout(TIMEOUT):
            assert await at.seen.ended.get() is CloseReason.NOT_RESUMED
        proxy.restore()
        with pytest.raises(RequestFailed) as failed:
            await asyncio.wait_for(pending, TIMEOUT)
        assert failed.value.code == 502
        assert "may or may not have been answered" in failed.value.text
        # A new session: requests work again.
        calc = await client.channel("calc")
        assert await calc.request("again", timeout=TIMEOUT) == "AGAIN"


async def test_without_a_session_nothing_is_sent_and_the_error_says_why() -> None:
    async with running() as at, connected(at.url(), resume=False) as client:
        calc = await client.channel("calc")
        with pytest.raises(RequestsNotSupported, match="resume=False"):
            await calc.request("x", timeout=TIMEOUT)
        asker = await client.channel("asker")
        await asker.send("ask x")  # the server never sends req to it
        assert await asker.receive(TIMEOUT) == "RequestsNotSupported "
        await calc.send("messages work")


@pytest.fixture(scope="module")
def node() -> Iterator[NodeServer]:
    server = NodeServer(
        NODE_DIR / "reference_server.js", "--host", "127.0.0.1", "--port", "0"
    )
    yield server
    server.stop()


@pytest.mark.parametrize("kind", ["sockjs", "websocket"])
async def test_the_original_server_takes_no_requests(
    node: NodeServer, kind: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = node.url if kind == "sockjs" else node.websocket
    async with connected(url) as client:
        echo = await client.channel("echo")
        await echo.send("a")
        assert await echo.receive(TIMEOUT) == "a"  # the client knows now
        with pytest.raises(RequestsNotSupported, match="base protocol"):
            await echo.request("x", timeout=TIMEOUT)
        await echo.send("b")  # nothing went out: the channel is as it was
        assert await echo.receive(TIMEOUT) == "b"
    # A server that has said nothing yet: the client waits for its answer
    # to the offer as long as it would on a resume, then knows.
    monkeypatch.setattr(client_module, "HELLO_TIMEOUT", 0.3)
    async with connected(url) as client:
        echo = await client.channel("echo")
        with pytest.raises(RequestsNotSupported):
            await echo.request("x", timeout=TIMEOUT)
        await echo.send("c")
        assert await echo.receive(TIMEOUT) == "c"
