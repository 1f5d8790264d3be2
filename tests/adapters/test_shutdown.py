"""Shutting down an aiohttp application under load loses no task.

Every kind of connection is live when the application stops: the raw
WebSocket, the plain WebSocket route, SockJS over WebSocket, xhr-polling
(with a poll outstanding) and xhr-streaming, each with channels whose
handlers echo, linger over cleanup after their channel closed, never look
at their channel (and are cancelled after ``handler_timeout``) or fail
while closing. Each run has an event loop of its own in asyncio's debug
mode, so that what asyncio reports only when a task is collected ("Task was
destroyed but it is pending", "Task exception was never retrieved") is
reported during the test, not at interpreter exit; and no task may be left
once the server and the clients are closed.
"""

from __future__ import annotations

import asyncio
import gc
import json
import logging
import signal
import time
import uuid
import warnings
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import aiohttp
import pytest
from aiohttp import web

from websocket_multiplex import Channel, MultiplexServer, ServerStats
from websocket_multiplex.adapters.aiohttp import (
    add_sockjs_endpoint,
    add_websocket_route,
    serve,
)

HANDLER_TIMEOUT = 0.5
SERVICES = ("echo", "lingering", "stuck", "broken")
TIMEOUT = 20.0  # for the whole scenario; a shutdown takes about one second


@dataclass
class Handlers:
    """The services, and what became of their handlers."""

    cleaned_up: int = 0
    cancelled: int = 0
    failed: int = 0

    def server(self) -> MultiplexServer:
        mux = MultiplexServer(handler_timeout=HANDLER_TIMEOUT, close_timeout=1.0)
        mux.register("echo", self.echo)
        mux.register("lingering", self.lingering)
        mux.register("stuck", self.stuck)
        mux.register("broken", self.broken)
        return mux

    async def echo(self, channel: Channel) -> None:
        async for data in channel:
            await channel.send(data)

    async def lingering(self, channel: Channel) -> None:
        """Cleans up after its channel closed, within handler_timeout."""
        await channel.wait_closed()
        await asyncio.sleep(HANDLER_TIMEOUT / 5)
        self.cleaned_up += 1

    async def stuck(self, channel: Channel) -> None:
        """Never looks at its channel: cancelled after handler_timeout."""
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            self.cancelled += 1
            raise

    async def broken(self, channel: Channel) -> None:
        """Fails once its channel closed (logged by the server)."""
        await channel.wait_closed()
        self.failed += 1
        raise RuntimeError("broken on the way out")


# -- the clients ---------------------------------------------------------------


class WebSocketClient:
    """raw, ``/ws`` or SockJS over WebSocket."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse, sockjs: bool) -> None:
        self.ws = ws
        self.sockjs = sockjs

    @classmethod
    async def connect(cls, http: aiohttp.ClientSession, url: str) -> WebSocketClient:
        sockjs = not url.endswith(("/multiplex/websocket", "/ws"))
        client = cls(await http.ws_connect(url), sockjs)
        if sockjs:
            assert await client.ws.receive_str() == "o"
        return client

    async def send(self, *frames: str) -> None:
        if self.sockjs:
            await self.ws.send_json(list(frames))
        else:
            for frame in frames:
                await self.ws.send_str(frame)

    async def receive(self) -> list[str]:
        """The next frames; ``[]`` once the server has closed."""
        message = await self.ws.receive()
        if message.type is not aiohttp.WSMsgType.TEXT:
            return []
        if not self.sockjs:
            return [message.data]
        if message.data.startswith("a"):
            return json.loads(message.data[1:])  # type: ignore[no-any-return]
        if message.data.startswith("c"):
            await self.ws.close()  # as sockjs-client does on a close frame
            return []
        return await self.receive()

    async def close(self) -> None:
        await self.ws.close()


class PollingClient:
    """SockJS xhr-polling, or xhr-streaming; sends with xhr_send."""

    def __init__(self, http: aiohttp.ClientSession, url: str, streaming: bool):
        self.http = http
        self.url = url
        self.streaming = streaming
        self.stream: aiohttp.ClientResponse | None = None

    @classmethod
    async def connect(
        cls, http: aiohttp.ClientSession, base: str, streaming: bool
    ) -> PollingClient:
        client = cls(http, f"{base}/000/{uuid.uuid4().hex[:8]}", streaming)
        assert await client._next_frame() == "o"
        return client

    async def _next_frame(self) -> str:
        if self.stream is None:
            transport = "xhr_streaming" if self.streaming else "xhr"
            self.stream = await self.http.post(f"{self.url}/{transport}")
        line = (await self.stream.content.readline()).decode().strip()
        if self.streaming and line == "h" * 2048:  # the prelude
            line = (await self.stream.content.readline()).decode().strip()
        if not self.streaming or not line:
            self.stream.close()
            self.stream = None
        return line

    async def send(self, *frames: str) -> None:
        async with self.http.post(f"{self.url}/xhr_send", json=list(frames)) as r:
            assert r.status == 204

    async def receive(self) -> list[str]:
        """The next frames; ``[]`` once the server has closed or is gone."""
        try:
            while (frame := await self._next_frame()) == "h":
                pass
        except aiohttp.ClientError:  # no longer listening
            return []
        if frame.startswith("a"):
            return json.loads(frame[1:])  # type: ignore[no-any-return]
        return []

    async def close(self) -> None:
        if self.stream is not None:
            self.stream.close()


Client = WebSocketClient | PollingClient


async def connect_every_kind(
    http: aiohttp.ClientSession, base: str
) -> dict[str, Client]:
    ws = base.replace("http", "ws", 1)
    session = f"{ws}/multiplex/000/{uuid.uuid4().hex[:8]}/websocket"
    return {
        "raw": await WebSocketClient.connect(http, f"{ws}/multiplex/websocket"),
        "ws": await WebSocketClient.connect(http, f"{ws}/ws"),
        "sockjs": await WebSocketClient.connect(http, session),
        "xhr": await PollingClient.connect(http, f"{base}/multiplex", False),
        "xhr_streaming": await PollingClient.connect(http, f"{base}/multiplex", True),
    }


async def open_channels(client: Client) -> None:
    """Subscribe every service; the echo proves the connection is live."""
    await client.send(*(f"sub,{name}" for name in SERVICES), "msg,echo,live")
    assert await client.receive() == ["msg,echo,live"]


async def hear_the_goodbyes(client: Client) -> list[str]:
    """Everything the client reads until the server closes."""
    frames: list[str] = []
    while batch := await client.receive():
        frames += batch
    return frames


# -- the two ways to stop an application ---------------------------------------

Stop = Callable[[], Awaitable[None]]
Start = Callable[[web.Application], Awaitable[tuple[str, Stop]]]


async def start_runner(app: web.Application) -> tuple[str, Stop]:
    """aiohttp's own AppRunner: the multiplexers close in ``on_shutdown``."""
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    return f"http://127.0.0.1:{runner.addresses[0][1]}", runner.cleanup


async def start_serve(app: web.Application) -> tuple[str, Stop]:
    """The adapter's ``serve``, stopped by SIGTERM as in production."""
    listening: asyncio.Future[str] = asyncio.get_running_loop().create_future()
    serving = asyncio.create_task(serve(app, port=0, ready=listening.set_result))
    base = await listening

    async def stop() -> None:
        signal.raise_signal(signal.SIGTERM)
        await serving

    return base.rstrip("/"), stop


@dataclass
class Outcome:
    goodbyes: dict[str, list[str]]  # what each client heard, by kind
    shutdown_seconds: float
    tasks_left: list[str]
    stats: ServerStats


async def shut_down_under_load(start: Start, handlers: Handlers) -> Outcome:
    mux = handlers.server()
    app = web.Application()
    add_sockjs_endpoint(app, mux, prefix="/multiplex")
    add_websocket_route(app, mux, "/ws")
    async with asyncio.timeout(TIMEOUT):
        base, stop = await start(app)
        async with aiohttp.ClientSession() as http:
            clients = await connect_every_kind(http, base)
            for client in clients.values():
                await open_channels(client)
            # Every client waits for the server, the polling one with a poll
            # outstanding (or about to be), as a browser would.
            listening = {
                kind: asyncio.create_task(hear_the_goodbyes(client))
                for kind, client in clients.items()
            }
            started = time.monotonic()
            await stop()
            shutdown_seconds = time.monotonic() - started
            goodbyes = {kind: await task for kind, task in listening.items()}
            for client in clients.values():
                await client.close()
    # Tasks that end as their sockets close need a few turns of the loop;
    # collecting garbage makes asyncio report tasks dropped while pending.
    for _ in range(20):
        await asyncio.sleep(0)
    gc.collect()
    others = asyncio.all_tasks() - {asyncio.current_task()}
    return Outcome(goodbyes, shutdown_seconds, sorted(map(repr, others)), mux.stats())


GOODBYE = sorted(
    frame
    for name in SERVICES
    for frame in (f"err,{name},1001 server shutting down", f"uns,{name}")
)


@pytest.mark.parametrize(
    "start", [start_runner, start_serve], ids=["AppRunner", "serve"]
)
def test_shutdown_with_every_kind_of_connection_loses_no_task(
    start: Start, caplog: pytest.LogCaptureFixture
) -> None:
    handlers = Handlers()
    with warnings.catch_warnings(record=True) as warned:
        warnings.simplefilter("always")
        with caplog.at_level(logging.WARNING, logger="asyncio"):
            outcome = asyncio.run(shut_down_under_load(start, handlers), debug=True)
            gc.collect()

    lost = [
        record.getMessage()
        for record in caplog.records
        if record.name == "asyncio" and record.levelno >= logging.ERROR
    ]
    assert lost == []  # "Task was destroyed but it is pending!" and the like
    assert [str(w.message) for w in warned if "never awaited" in str(w.message)] == []
    assert outcome.tasks_left == []
    assert outcome.stats.connections == 0
    assert outcome.stats.connections_accepted == 5
    assert (handlers.cleaned_up, handlers.cancelled, handlers.failed) == (5, 5, 5)
    assert outcome.stats.handler_failures == 5
    assert outcome.shutdown_seconds < 2 * HANDLER_TIMEOUT + 2
    # Channels say goodbye. Behind a bare AppRunner, aiohttp stops
    # listening before the multiplexer closes, so a polling client between
    # two requests cannot fetch its goodbyes (README: use serve/run_app).
    for kind, heard in outcome.goodbyes.items():
        if not (start is start_runner and kind == "xhr"):
            assert sorted(heard) == GOODBYE, kind
