"""Resumed sessions over real sockets (docs/PROTOCOL-EXTENSIONS.md, section 3).

A TCP proxy between our client and our server cuts the connection at random
points, mid-frame included, while both sides stream numbered messages on
several channels: every message must arrive exactly once and in order both
ways, and no handler may see its channel close. Past the grace period, or
past the buffer bound, every channel ends with ``NOT_RESUMED`` on both sides.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from urllib.parse import urlsplit

import pytest

from websocket_multiplex import (
    ChannelGap,
    CloseReason,
    Limits,
    MultiplexServer,
)
from websocket_multiplex.asyncio import client as client_module
from websocket_multiplex.asyncio.client import (
    Carrier,
    ClientChannel,
    ClientState,
    MultiplexClient,
)
from websocket_multiplex.client import connect, open_carrier
from websocket_multiplex.resume import GOODBYE
from websocket_multiplex.testing import MemoryClient, connect_in_memory

from ..support.proxy import Proxy
from ..support.streaming import PAD, Stream, streaming_server
from .support import (
    FAST,
    NODE_DIR,
    TIMEOUT,
    NodeServer,
    States,
    make_server,
    serving,
    sockjs_app,
    uvicorn_serving,
)

MESSAGES = 10_000
CHANNELS = 3
DEADLINE = 120.0  # seconds for a whole stream; it takes a few


@dataclass
class Served:
    """A streaming server, listening; :meth:`url` is its endpoint at a port
    (the server's own or a proxy's)."""

    kind: str
    port: int
    server: MultiplexServer
    streams: dict[str, Stream]

    @property
    def transport(self) -> str:
        """The SockJS transport the client speaks to :meth:`url`."""
        return "xhr-polling" if self.kind == "xhr-polling" else "websocket"

    def url(self, port: int) -> str:
        if self.kind in ("sockjs", "xhr-polling"):
            return f"http://127.0.0.1:{port}/multiplex"
        if self.kind == "websocket":
            return f"ws://127.0.0.1:{port}/multiplex/websocket"
        return f"ws://127.0.0.1:{port}/multiplex"  # ASGI under uvicorn


@contextlib.asynccontextmanager
async def served(
    kind: str, count: int, limits: Limits | None = None
) -> AsyncIterator[Served]:
    server, streams = streaming_server(count, limits)
    if kind == "asgi":
        async with uvicorn_serving(server) as port:
            yield Served(kind, port, server, streams)
        return
    async with serving(sockjs_app(server)) as port:
        yield Served(kind, port, server, streams)


KINDS = ["websocket", "sockjs", "xhr-polling", "asgi"]


async def receive_all(channel: ClientChannel, count: int) -> list[int]:
    got = []
    async for data in channel:
        got.append(int(data.split(" ", 1)[0]))
        if len(got) == count:
            break
    return got


async def send_all(channel: ClientChannel, count: int) -> None:
    for n in range(1, count + 1):
        await channel.send(f"{n} {PAD}")


@pytest.mark.parametrize("kind", KINDS)
async def test_random_cuts_lose_and_repeat_nothing_either_way(kind: str) -> None:
    rng = random.Random(1234)
    async with served(kind, MESSAGES) as at, Proxy(at.port) as proxy:
        proxy.cut_after = lambda: rng.randrange(20_000, 100_000)
        client = await connect(
            at.url(proxy.port), reconnect=FAST, transport=at.transport
        )
        async with asyncio.timeout(DEADLINE):
            channels = [await client.channel("stream") for _ in range(CHANNELS)]
            sent = [asyncio.create_task(send_all(c, MESSAGES)) for c in channels]
            got = await asyncio.gather(*(receive_all(c, MESSAGES) for c in channels))
            await asyncio.gather(*sent)
            for channel in channels:  # everything sent reached the handlers
                await at.streams[channel.topic].complete.wait()
            cuts = proxy.cuts
            await client.close()
            for channel in channels:
                await at.streams[channel.topic].done.wait()
    assert cuts >= 10, "the proxy did not cut often enough to test anything"
    # Over xhr-polling a cut may fall on a pooled connection between two
    # requests, which the next request replaces unnoticed.
    least = 10 if at.transport == "xhr-polling" else cuts
    assert client.resumptions == client.reconnects >= least
    expected = list(range(1, MESSAGES + 1))
    for channel, received in zip(channels, got, strict=True):
        assert received == expected
        seen = at.streams[channel.topic]
        assert seen.received == expected
        assert seen.close_reason is CloseReason.CLIENT_CLOSED
    assert at.server.sessions is not None and len(at.server.sessions) == 0


@pytest.mark.parametrize("kind", KINDS)
async def test_past_the_grace_period_the_handler_ends_and_the_client_has_a_gap(
    kind: str,
) -> None:
    limits = Limits(resume_grace=0.2)
    async with served(kind, 1, limits) as at, Proxy(at.port) as proxy:
        states = States()
        client = await connect(
            at.url(proxy.port),
            reconnect=FAST,
            on_state=states,
            transport=at.transport,
        )
        stream = await client.channel("stream", report_gaps=True)
        assert await stream.receive(TIMEOUT) == f"1 {PAD}"
        assert client.resumable
        proxy.cut()  # and refuse new connections: longer than the grace
        [seen] = at.streams.values()
        # Between two polls the server cannot see a client go: it takes
        # SockJS's disconnect_delay (5 s) of no poll to know.
        wait = TIMEOUT + (5.0 if at.transport == "xhr-polling" else 0.0)
        async with asyncio.timeout(wait):
            await seen.done.wait()
        assert seen.close_reason is CloseReason.NOT_RESUMED
        await stream.send(f"7 {PAD}")  # kept: no connection to send it on
        proxy.restore()
        with pytest.raises(ChannelGap):  # never silently
            await stream.receive(TIMEOUT)
        # Subscribed again on a new session: a new handler greets again,
        # and gets what was sent while there was no connection.
        assert await stream.receive(TIMEOUT) == f"1 {PAD}"
        again = at.streams[stream.topic]
        assert again is not seen
        async with asyncio.timeout(TIMEOUT):
            await again.complete.wait()
        assert again.received == [7]
        assert (client.reconnects, client.resumptions) == (1, 0)
        assert states.reasons[-1] == "reconnected; the session was not resumed"
        assert client.resumable
        await client.close()


@pytest.fixture(scope="module")
def node() -> Iterator[NodeServer]:
    server = NodeServer(
        NODE_DIR / "reference_server.js", "--host", "127.0.0.1", "--port", "0"
    )
    yield server
    server.stop()


@pytest.mark.parametrize("kind", ["sockjs", "websocket"])
async def test_with_the_original_server_a_cut_is_a_base_reconnection(
    node: NodeServer, kind: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The original ignores the offer: the client speaks the base protocol,
    and a cut is a reconnection with a gap. Even when the original said
    nothing before the cut (a silent service), so that the client cannot
    know yet: it asks to resume, hears nothing, and falls back."""
    monkeypatch.setattr(client_module, "HELLO_TIMEOUT", 0.5)
    url = node.url if kind == "sockjs" else node.websocket
    port = urlsplit(url).port
    assert port is not None
    async with Proxy(port) as proxy:
        via = url.replace(f":{port}/", f":{proxy.port}/")
        client = await connect(via, reconnect=FAST)
        echo = await client.channel("echo", report_gaps=True)
        proxy.abort()  # before the original said anything at all
        with pytest.raises(ChannelGap):
            await echo.receive(TIMEOUT)
        await echo.send("a")
        assert await echo.receive(TIMEOUT) == "a"
        assert not client.resumable
        proxy.abort()
        with pytest.raises(ChannelGap):
            await echo.receive(TIMEOUT)
        await echo.send("b")
        assert await echo.receive(TIMEOUT) == "b"
        assert (client.reconnects, client.resumptions) == (2, 0)
        await client.close()


class HeldCarrier:
    """A memory carrier whose numbered frames can be held back, as behind
    a full socket (``held``); ``holding`` is set once one is."""

    def __init__(self, memory: MemoryClient, held: bool) -> None:
        self.memory = memory
        self.sent: list[str] = []
        self.released = asyncio.Event()
        self.holding = asyncio.Event()
        self.closed = False
        if not held:
            self.released.set()

    @property
    def close_frame(self) -> tuple[int, str] | None:
        return self.memory.close_frame

    async def send(self, text: str) -> None:
        if not self.released.is_set() and not text.startswith(("hey,", "ack,")):
            self.holding.set()
            await self.released.wait()
        if self.closed:
            raise ConnectionError("the carrier is gone")
        self.sent.append(text)
        await self.memory.send(text)

    async def receive(self) -> str | None:
        return await self.memory.receive()

    async def close(self) -> None:
        self.closed = True
        self.released.set()
        await self.memory.close()

    async def lose(self) -> None:
        """The network drops it: no close frame either way (a send held
        fails once released)."""
        self.closed = True
        self.memory.transport.to_client.put_nowait(None)
        await self.memory.connection.connection_lost()


async def test_a_goodbye_whose_carrier_drops_during_the_catch_up_goes_on_the_next() -> (
    None
):
    """close() waits for the catch-up before its goodbye; the carrier dies
    meanwhile: the goodbye goes on the next one, and the server forgets the
    session at once instead of holding it for resume_grace."""
    server, _ = make_server()
    carriers: list[HeldCarrier] = []
    second = asyncio.Event()

    async def open_carrier() -> HeldCarrier:
        carrier = HeldCarrier(await connect_in_memory(server), held=len(carriers) == 1)
        carriers.append(carrier)
        if len(carriers) == 2:
            second.set()
        return carrier

    client = MultiplexClient(open_carrier, reconnect=FAST)
    await client.start()
    channel = await client.channel("echo")
    await channel.send("m1")
    assert await channel.receive(TIMEOUT) == "m1"
    await carriers[0].lose()
    carriers[0].released.set()
    await channel.send("m2")  # kept: the catch-up on the next carrier resends it
    async with asyncio.timeout(TIMEOUT):
        await second.wait()
        await client.wait_for(ClientState.OPEN)
        await carriers[1].holding.wait()  # the catch-up is stuck
    closing = asyncio.create_task(client.close())
    for _ in range(20):  # let close() reach its wait for the catch-up
        await asyncio.sleep(0)
    assert not closing.done()
    await carriers[1].lose()
    async with asyncio.timeout(TIMEOUT):
        # The client saw it go before the stuck send fails.
        await client.wait_for(ClientState.RECONNECTING)
        carriers[1].released.set()
        await closing
    assert len(carriers) == 3
    assert GOODBYE in carriers[2].sent
    sessions = server.sessions
    assert sessions is not None
    assert (len(sessions), sessions.detached_count) == (0, 0)


class LosesAnAnswer:
    """An xhr-polling carrier that loses the rest of an answer, from its
    ``at``-th message on, once, as a browser loses an answer it asked for
    again (nothing ends, nothing says so); the server's next ``seq`` comes
    through."""

    def __init__(self, inner: Carrier, at: int) -> None:
        self.inner = inner
        self.at = at
        self.count = 0
        self.losing = False
        self.lost: list[str] = []

    @property
    def close_frame(self) -> tuple[int, str] | None:
        frame: tuple[int, str] | None = getattr(self.inner, "close_frame", None)
        return frame

    async def send(self, text: str) -> None:
        await self.inner.send(text)

    async def receive(self) -> str | None:
        while (text := await self.inner.receive()) is not None:
            if text.startswith("seq,"):
                self.losing = False  # the next answer
                return text
            self.count += 1
            if self.count == self.at:
                self.losing = True
            if self.losing:
                self.lost.append(text)
                continue
            return text
        return None

    async def close(self) -> None:
        await self.inner.close()


async def test_an_answer_lost_without_a_cut_is_resent_on_a_new_carrier() -> None:
    """The server's seq says how many messages a SockJS HTTP session brought
    before each answer (or instead of a heartbeat): a client that counted
    fewer resumes on a new carrier, which brings what was lost, once, in
    order."""
    server, _ = make_server()
    # A quiet poll shows the loss within a heartbeat: make that soon.
    async with serving(sockjs_app(server, heartbeat_delay=0.2)) as port:
        carriers: list[LosesAnAnswer] = []

        async def open_lossy() -> LosesAnAnswer:
            url = f"http://127.0.0.1:{port}/multiplex"
            inner = await open_carrier(url, transport="xhr-polling")
            # The first carrier loses an answer's tail; the next ones nothing.
            at = 10 if not carriers else 1 << 30
            carriers.append(LosesAnAnswer(inner, at))
            return carriers[-1]

        client = MultiplexClient(open_lossy, reconnect=FAST)
        await client.start()
        try:
            channel = await client.channel("echo")
            for n in range(100):
                await channel.send(str(n))
            got = [await channel.receive(TIMEOUT) for _ in range(100)]
            assert got == [str(n) for n in range(100)]
            assert carriers[0].lost  # it did lose some
            assert client.resumptions >= 1
        finally:
            await client.close()
