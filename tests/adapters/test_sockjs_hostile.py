"""Hostile SockJS clients, against both drivers, over real sockets on 127.0.0.1.

Every test runs twice: under aiohttp (``add_sockjs_endpoint`` on a plain
``web.AppRunner``) and under ASGI (``SockJSASGI`` in a real uvicorn,
configured as :func:`websocket_multiplex.adapters.uvicorn.config` does).
Each shows that one bound of docs/LIMITS.md holds when a client does not
cooperate: packed messages do not stall the event loop, too many frames and
too large messages are refused whole (and exactly as many as the limit are
taken), malformed input costs no traceback, the session cap refuses and
recovers, long session ids are refused, foreign origins get no CORS grant,
and every answer says ``nosniff``. Every wait is bounded, every server
listens on 127.0.0.1 on a port of its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import logging
import socket
import struct
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote as url_quote

import aiohttp
import pytest
from aiohttp import web
from yarl import URL

from websocket_multiplex import Channel, Limits, MultiplexServer
from websocket_multiplex.adapters.aiohttp import SOCKJS_ENDPOINTS, add_sockjs_endpoint
from websocket_multiplex.adapters.asgi import SockJSASGI
from websocket_multiplex.adapters.uvicorn import config as uvicorn_config
from websocket_multiplex.asyncio.sockjs import SockJSEndpoint
from websocket_multiplex.sockjs.session import SessionState

from ..servers import uvicorn_running
from .carriers import RawWebSocketCarrier, SockJSXhrPollingCarrier, wait_until

PREFIX = "/mx"
TIMEOUT = 5.0  # seconds any single wait may take
NOSNIFF = ("X-Content-Type-Options", "nosniff")
FORM = "application/x-www-form-urlencoded"


# -- what the server runs --------------------------------------------------------


class Services:
    """A multiplexer with one service, ``echo``, that notes for every message
    it echoes how many frames the *other* connections had sent by then: the
    packed-message tests read the hostile client's progress off it."""

    def __init__(self, limits: Limits | None = None) -> None:
        self.limits = limits or Limits()
        self.server = MultiplexServer(limits=self.limits, handler_timeout=1.0)
        self.echoed: list[tuple[str, int]] = []
        self.channels: list[Channel] = []
        self.server.register("echo", self.echo)

    async def echo(self, channel: Channel) -> None:
        self.channels.append(channel)
        async for data in channel:
            self.echoed.append((data, self.frames_received(but=channel)))
            await channel.send(data)

    def frames_received(self, but: Channel | None = None) -> int:
        """Frames the server has handled, from any connection but ``but``'s."""
        total = self.server.stats().frames_received
        if but is not None:
            total -= but.connection.counters.frames_received
        return total

    def echoed_texts(self) -> list[str]:
        return [text for text, _ in self.echoed]


@dataclass
class Served:
    """One running endpoint: its URL, the endpoint, what serves it."""

    url: str
    """``http://127.0.0.1:PORT/mx``."""
    endpoint: SockJSEndpoint
    services: Services

    @property
    def ws_url(self) -> str:
        return "ws" + self.url[len("http") :]

    @property
    def address(self) -> tuple[str, int]:
        parsed = URL(self.url)
        assert parsed.host is not None and parsed.port is not None
        return parsed.host, parsed.port

    def new_session(self) -> str:
        """The URL of a session that does not exist yet."""
        return f"{self.url}/000/{uuid.uuid4().hex[:8]}"


Serve = Callable[..., AbstractAsyncContextManager[Served]]

IDLE = 0.5
"""``disconnect_delay`` unless a test says otherwise: sessions no request
holds end soon after the test, so that shutdown does not give each a
second to fetch its goodbyes (a test that needs one to live holds it)."""


async def let_idle_sessions_end(served: Served, options: dict[str, Any]) -> None:
    delay = options["disconnect_delay"]
    if delay <= IDLE:
        with contextlib.suppress(TimeoutError):
            await wait_until(lambda: not served.endpoint.sessions, timeout=delay + 1)


@contextlib.asynccontextmanager
async def serve_aiohttp(services: Services, **options: Any) -> AsyncIterator[Served]:
    options.setdefault("disconnect_delay", IDLE)
    app = web.Application()
    add_sockjs_endpoint(
        app, services.server, prefix=PREFIX, limits=services.limits, **options
    )
    runner = web.AppRunner(app, shutdown_timeout=TIMEOUT)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    port = runner.addresses[0][1]
    served = Served(
        f"http://127.0.0.1:{port}{PREFIX}", app[SOCKJS_ENDPOINTS][PREFIX], services
    )
    try:
        yield served
        await let_idle_sessions_end(served, options)
    finally:
        await runner.cleanup()


@contextlib.asynccontextmanager
async def serve_asgi(services: Services, **options: Any) -> AsyncIterator[Served]:
    options.setdefault("disconnect_delay", IDLE)
    app = SockJSASGI(services.server, prefix=PREFIX, limits=services.limits, **options)
    config = uvicorn_config(
        app,
        ws="wsproto",
        lifespan="on",
        log_config=None,
        log_level="warning",
        timeout_graceful_shutdown=TIMEOUT,
    )
    async with uvicorn_running(config) as port:
        served = Served(f"http://127.0.0.1:{port}{PREFIX}", app.endpoint, services)
        yield served
        await let_idle_sessions_end(served, options)


@pytest.fixture(params=["aiohttp", "asgi"])
def serve(request: pytest.FixtureRequest) -> Serve:
    """How to run an endpoint: ``async with serve(services, **options)``."""
    drivers: dict[str, Serve] = {"aiohttp": serve_aiohttp, "asgi": serve_asgi}
    return drivers[request.param]


# -- what the clients do -------------------------------------------------------------


def client() -> aiohttp.ClientSession:
    """An HTTP client none of whose requests may take long, each on a
    connection of its own (a refused WebSocket handshake under uvicorn ends
    its connection without saying ``Connection: close``)."""
    return aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(force_close=True),
        timeout=aiohttp.ClientTimeout(total=3 * TIMEOUT),
    )


def packed(texts: list[str]) -> str:
    """One SockJS message carrying ``texts``, as compact as JSON goes."""
    return json.dumps(texts, separators=(",", ":"))


def assert_nosniff(response: aiohttp.ClientResponse | RawResponse) -> None:
    assert response.headers.get(NOSNIFF[0]) == NOSNIFF[1], (
        response.status,
        dict(response.headers),
    )


async def post(
    http: aiohttp.ClientSession, url: str, data: bytes | str = b"", **kwargs: Any
) -> tuple[int, str]:
    """POST, read the whole answer; checks ``nosniff`` on the way."""
    async with http.post(url, data=data, **kwargs) as response:
        assert_nosniff(response)
        return response.status, await response.text()


async def poll(http: aiohttp.ClientSession, session: str) -> list[str]:
    """One xhr poll: the messages of the frame it carries."""
    status, body = await post(http, f"{session}/xhr")
    assert status == 200, (status, body)
    frame = body.rstrip("\n")
    assert frame.startswith("a["), frame
    messages = json.loads(frame[1:])
    assert isinstance(messages, list)
    return messages


async def open_session(http: aiohttp.ClientSession, session: str) -> None:
    assert await post(http, f"{session}/xhr") == (200, "o\n")


@contextlib.asynccontextmanager
async def held_session(
    served: Served, http: aiohttp.ClientSession
) -> AsyncIterator[str]:
    """An open session whose poll is held while the block runs (so it does
    not expire however long the block takes); yields its path below the
    prefix. At the end, an echo through it must still come back."""
    session = served.new_session()
    await open_session(http, session)
    assert await post(http, f"{session}/xhr_send", packed(["sub,echo"])) == (204, "")
    holding = asyncio.create_task(poll(http, session))
    session_id = URL(session).name
    await wait_until(lambda: served.endpoint.sessions[session_id].held)
    try:
        yield session[len(served.url) :]
        assert not holding.done(), holding
        await post(http, f"{session}/xhr_send", packed(["msg,echo,held"]))
        async with asyncio.timeout(TIMEOUT):
            assert await holding == ["msg,echo,held"]
    finally:
        if not holding.done():  # the block failed: stop polling
            holding.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await holding


async def websocket_echo(served: Served, text: str = "still alive") -> None:
    """Another client gets its echo over the raw WebSocket."""
    carrier = await RawWebSocketCarrier.connect(f"{served.ws_url}/websocket")
    try:
        await carrier.send("sub,echo")
        await carrier.send(f"msg,echo,{text}")
        async with asyncio.timeout(TIMEOUT):
            assert await carrier.receive() == f"msg,echo,{text}"
    finally:
        await carrier.close()


async def echo_round_trip(served: Served, text: str = "still alive") -> None:
    """Others still get their echo: over the raw WebSocket and over
    xhr-polling, each on a connection of its own."""
    await websocket_echo(served, text)
    polling = await SockJSXhrPollingCarrier.connect(served.url)
    try:
        await polling.send("sub,echo")
        await polling.send(f"msg,echo,{text}")
        async with asyncio.timeout(TIMEOUT):
            assert await polling.receive() == f"msg,echo,{text}"
    finally:
        await polling.close()


@dataclass
class RawResponse:
    status: int
    headers: dict[str, str]
    body: bytes


async def raw_request(served: Served, request: bytes) -> RawResponse:
    """Send ``request`` as is on a connection of its own; the answer up to
    the end of the connection (``request`` says ``Connection: close``)."""
    reader, writer = await asyncio.open_connection(*served.address)
    try:
        writer.write(request)
        await writer.drain()
        async with asyncio.timeout(TIMEOUT):
            data = await reader.read()
    finally:
        writer.close()
    head, _, body = data.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines:
        name, _, value = line.partition(":")
        headers[name.strip().title()] = value.strip()
    return RawResponse(int(status_line.split()[1]), headers, body)


def reset(writer: asyncio.StreamWriter) -> None:
    """Drop the connection with a TCP reset, as a crashing client does."""
    sock = writer.get_extra_info("socket")
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


@contextlib.contextmanager
def no_tracebacks(
    caplog: pytest.LogCaptureFixture, loggers: tuple[str, ...] | None = None
) -> Iterator[None]:
    """Fail if any record at WARNING or above carries a traceback (from
    one of ``loggers`` and their children, if given)."""
    caplog.set_level(logging.WARNING)
    yield
    gc.collect()  # "Task exception was never retrieved" is logged on collection
    tracebacks = [
        f"{record.name}: {record.getMessage()} {record.exc_info[1]!r}"
        for record in caplog.records
        if record.levelno >= logging.WARNING
        and record.exc_info
        and (
            loggers is None
            or any(record.name.partition(".")[0] == name for name in loggers)
        )
    ]
    assert not tracebacks, tracebacks


# -- 1. packed messages leave the loop to others ------------------------------------

PACKED = 20_000  # frames in one hostile message: all max_message_frames allows
PACKED_LIMITS = Limits(max_message_frames=PACKED, frame_rate=40_000.0)
"""At this rate, a second packed message right after the first (which
spends the burst) takes about half a second to deliver."""


@contextlib.asynccontextmanager
async def control_client(served: Served) -> AsyncIterator[ControlClient]:
    """A well-behaved client on a connection of its own (the raw WebSocket),
    its echo channel open."""
    carrier = await RawWebSocketCarrier.connect(f"{served.ws_url}/websocket")
    try:
        await carrier.send("sub,echo")
        await carrier.send("msg,echo,ready")
        async with asyncio.timeout(TIMEOUT):
            assert await carrier.receive() == "msg,echo,ready"
        yield ControlClient(carrier, served.services)
    finally:
        await carrier.close()


@dataclass
class ControlClient:
    carrier: RawWebSocketCarrier
    services: Services

    def __post_init__(self) -> None:
        self.channel = self.services.channels[-1]

    def others_frames(self) -> int:
        """Frames the server has handled from the other connections."""
        return self.services.frames_received(but=self.channel)

    async def probe(self) -> int:
        """An echo round trip; returns how many frames the other connections
        had sent when the server echoed it. Nothing else was echoed since
        the control's ``ready``."""
        await self.carrier.send("msg,echo,probe")
        async with asyncio.timeout(TIMEOUT):
            assert await self.carrier.receive() == "msg,echo,probe"
        assert self.services.echoed_texts() == ["ready", "probe"]
        return self.services.echoed[-1][1]


async def test_a_packed_xhr_send_leaves_the_loop_to_others(serve: Serve) -> None:
    """A hostile xhr_send packed with ``max_message_frames`` tiny frames is
    delivered a few hundred frames per event-loop turn, at ``frame_rate``:
    a control client on another connection gets its echo while the hostile
    request is still being handled (its 204 has not come back, and only
    part of its frames had been delivered when the server echoed the
    control's). Were a message handled in one go, the server would have
    seen all of them first."""
    services = Services(PACKED_LIMITS)
    body = packed(["x"] * PACKED)
    async with (
        serve(services) as served,
        client() as http,
        control_client(served) as control,
        held_session(served, http) as hostile_path,
    ):
        session = served.url + hostile_path
        before = control.others_frames()
        # The first packed message spends the burst (it goes in slices, but
        # unpaced); the second is paced, and is the one the control races.
        assert await post(http, f"{session}/xhr_send", body) == (204, "")
        assert control.others_frames() - before == PACKED
        hostile = asyncio.create_task(post(http, f"{session}/xhr_send", body))
        await wait_until(lambda: control.others_frames() - before > PACKED)

        seen = await control.probe() - before
        assert not hostile.done(), "the hostile request finished first"
        assert PACKED < seen < 2 * PACKED, seen

        async with asyncio.timeout(TIMEOUT):
            assert await hostile == (204, "")
        # Slowed, not dropped: every frame was delivered, once.
        assert control.others_frames() - before == 2 * PACKED


async def test_a_packed_websocket_message_leaves_the_loop_to_others(
    serve: Serve,
) -> None:
    """The same over SockJS's websocket transport: two packed messages,
    then a third that asks for an echo; the control's echo comes back while
    the second is still being delivered, before the hostile's own echo."""
    services = Services(PACKED_LIMITS)
    body = packed(["x"] * PACKED)
    async with (
        serve(services) as served,
        client() as http,
        control_client(served) as control,
    ):
        hostile = await http.ws_connect(f"{served.ws_url}/000/hostile/websocket")
        async with asyncio.timeout(TIMEOUT):
            assert await hostile.receive_str() == "o"
        await hostile.send_str(body)
        await hostile.send_str(body)
        await hostile.send_str(packed(["sub,echo", "msg,echo,hostile done"]))
        await wait_until(lambda: control.others_frames() > PACKED)

        seen = await control.probe()  # the hostile's echo has not come yet
        assert PACKED < seen < 2 * PACKED, seen

        async with asyncio.timeout(TIMEOUT):
            assert await hostile.receive_str() == 'a["msg,echo,hostile done"]'
        assert services.echoed_texts() == ["ready", "probe", "hostile done"]
        assert control.others_frames() == 2 * PACKED + 2
        await hostile.close()


SLOW = Limits(max_message_frames=3_000, frame_rate=6_000.0)


async def test_a_paced_xhr_send_is_delivered_whole_however_long_it_takes(
    serve: Serve,
) -> None:
    """``frame_rate`` slows a client, it does not drop its frames: an
    xhr_send whose paced delivery outlasts ``disconnect_delay`` (no
    receiving request holds the session meanwhile) still delivers every
    frame it carried before its 204, and the session is still there."""
    limit = SLOW.max_message_frames
    services = Services(SLOW)
    body = packed(["x"] * limit)
    async with serve(services, disconnect_delay=0.2) as served, client() as http:
        session = served.new_session()
        await open_session(http, session)
        assert await post(http, f"{session}/xhr_send", body) == (204, "")  # burst
        assert await post(http, f"{session}/xhr_send", body) == (204, "")  # paced
        assert services.frames_received() == 2 * limit
        assert URL(session).name in served.endpoint.sessions


# -- 2. more frames than max_message_frames: refused whole ----------------------------

FEW_FRAMES = Limits(max_message_frames=1_000)


async def test_too_many_frames_in_an_http_send_are_refused_whole(
    serve: Serve,
) -> None:
    """An xhr_send or jsonp_send of ``max_message_frames + 1`` frames gets
    500 "Too many messages..." and none is delivered; exactly
    ``max_message_frames`` is taken; the session goes on."""
    limit = FEW_FRAMES.max_message_frames
    services = Services(FEW_FRAMES)
    async with serve(services) as served, client() as http:
        session = served.new_session()
        await open_session(http, session)
        assert await post(http, f"{session}/xhr_send", packed(["sub,echo"])) == (
            204,
            "",
        )
        refused = packed([f"msg,echo,refused {i}" for i in range(limit + 1)])
        status, text = await post(http, f"{session}/xhr_send", refused)
        assert status == 500 and text.startswith("Too many messages"), (status, text)
        status, text = await post(http, f"{session}/jsonp_send", {"d": refused})
        assert status == 500 and text.startswith("Too many messages"), (status, text)
        assert services.frames_received() == 1  # the sub

        taken = [f"msg,echo,taken {i}" for i in range(limit)]
        assert await post(http, f"{session}/xhr_send", packed(taken)) == (204, "")
        assert await post(http, f"{session}/xhr_send", packed(["msg,echo,after"])) == (
            204,
            "",
        )
        got: list[str] = []
        async with asyncio.timeout(TIMEOUT):
            while len(got) < limit + 1:
                got += await poll(http, session)
        assert got == [*taken, "msg,echo,after"]
        await echo_round_trip(served)


async def test_too_many_frames_in_a_websocket_message_close_it_with_1009(
    serve: Serve,
) -> None:
    """Over SockJS's websocket transport, ``max_message_frames + 1`` frames in
    one message close the connection with 1009, none delivered; others go on."""
    limit = FEW_FRAMES.max_message_frames
    services = Services(FEW_FRAMES)
    async with serve(services) as served, client() as http:
        ws = await http.ws_connect(f"{served.ws_url}/000/abc/websocket")
        async with asyncio.timeout(TIMEOUT):
            assert await ws.receive_str() == "o"
            await ws.send_str(packed(["sub,echo", "msg,echo,first"]))
            assert await ws.receive_str() == 'a["msg,echo,first"]'
            await ws.send_str(packed([f"msg,echo,{i}" for i in range(limit + 1)]))
            closing = await ws.receive()
        assert closing.type is aiohttp.WSMsgType.CLOSE, closing
        assert ws.close_code == 1009
        assert services.echoed_texts() == ["first"]
        await ws.close()
        await websocket_echo(served)
        assert services.echoed_texts() == ["first", "still alive"]


# -- 3. a body over max_message_size ----------------------------------------------

SMALL_MESSAGES = Limits(max_message_size=8_192)


def body_of(size: int) -> bytes:
    """An xhr_send body of exactly ``size`` bytes: one echo frame."""
    frame = "msg,echo,"
    padding = size - len(packed([frame]))
    return packed([frame + "x" * padding]).encode()


async def test_a_body_over_max_message_size_gets_413(serve: Serve) -> None:
    """An xhr_send or jsonp_send body of ``max_message_size + 1`` bytes gets
    413 and nothing is delivered, with a Content-Length or chunked; a body
    of exactly ``max_message_size`` is taken."""
    limit = SMALL_MESSAGES.max_message_size
    services = Services(SMALL_MESSAGES)
    over = body_of(limit + 1)

    async def chunked() -> AsyncIterator[bytes]:
        for start in range(0, len(over), 1000):
            yield over[start : start + 1000]

    async with serve(services) as served, client() as http:
        session = served.new_session()
        await open_session(http, session)
        assert await post(http, f"{session}/xhr_send", packed(["sub,echo"])) == (
            204,
            "",
        )
        assert (await post(http, f"{session}/xhr_send", over))[0] == 413
        assert (await post(http, f"{session}/xhr_send", chunked()))[0] == 413
        jsonp_over = b"d=" + url_quote(over.decode()).encode()
        jsonp_headers = {"Content-Type": FORM}
        status, _ = await post(
            http, f"{session}/jsonp_send", jsonp_over, headers=jsonp_headers
        )
        assert status == 413
        assert services.frames_received() == 1  # the sub

        exact = body_of(limit)
        assert len(exact) == limit
        assert await post(http, f"{session}/xhr_send", exact) == (204, "")
        assert await poll(http, session) == json.loads(exact)
        await echo_round_trip(served)


async def test_a_websocket_message_over_max_message_size_closes_with_1009(
    serve: Serve,
) -> None:
    """Over SockJS's websocket transport, a message of ``max_message_size + 1``
    bytes closes the connection with 1009, and nothing of it is delivered."""
    limit = SMALL_MESSAGES.max_message_size
    services = Services(SMALL_MESSAGES)
    async with serve(services) as served, client() as http:
        ws = await http.ws_connect(f"{served.ws_url}/000/abc/websocket")
        async with asyncio.timeout(TIMEOUT):
            assert await ws.receive_str() == "o"
            await ws.send_str(packed(["sub,echo", "msg,echo,first"]))
            assert await ws.receive_str() == 'a["msg,echo,first"]'
            await ws.send_str(body_of(limit + 1).decode())
            closing = await ws.receive()
        assert closing.type is aiohttp.WSMsgType.CLOSE, closing
        assert ws.close_code == 1009
        assert services.echoed_texts() == ["first"]
        await ws.close()
        await websocket_echo(served)


async def test_a_websocket_message_of_exactly_max_message_size_is_taken(
    serve: Serve,
) -> None:
    """``max_message_size`` bounds what is refused: a WebSocket message of
    exactly that many bytes is delivered, as an xhr_send body of that size
    is (Limits: "A larger WebSocket message closes the connection")."""
    limit = SMALL_MESSAGES.max_message_size
    services = Services(SMALL_MESSAGES)
    async with serve(services) as served, client() as http:
        ws = await http.ws_connect(f"{served.ws_url}/000/abc/websocket")
        async with asyncio.timeout(TIMEOUT):
            assert await ws.receive_str() == "o"
            await ws.send_str(packed(["sub,echo"]))
            exact = body_of(limit).decode()
            assert len(exact.encode()) == limit
            await ws.send_str(exact)
            answer = await ws.receive()
        assert answer.type is aiohttp.WSMsgType.TEXT, (answer, ws.close_code)
        assert answer.data == "a" + exact
        await ws.close()


# -- 4. malformed input costs no traceback -------------------------------------------

HANDSHAKE = {
    "Upgrade": "websocket",
    "Connection": "Upgrade",
    "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
    "Sec-WebSocket-Version": "13",
}

# (method, path below the prefix, headers, body, status). "{s}" is an open
# session's path, "{n}" a new session's. The statuses are sockjs-node's.
MALFORMED: list[tuple[str, str, dict[str, str], bytes, int]] = [
    # bodies that are not UTF-8, not JSON, not an array
    ("POST", "{s}/jsonp_send", {"Content-Type": FORM}, b"d=%FF%FE%FD", 500),
    ("POST", "{s}/jsonp_send", {"Content-Type": "text/plain"}, b"\xff\xfe\xfd", 500),
    ("POST", "{s}/jsonp_send", {"Content-Type": "text/plain"}, b'["\xff\xfe"]', 200),
    ("POST", "{s}/xhr_send", {}, b"\xff\xfe\xfd", 500),
    ("POST", "{s}/jsonp_send", {"Content-Type": FORM}, b"&" * 1_000_000, 500),
    ("POST", "{s}/jsonp_send", {"Content-Type": FORM}, b"d=[" + b"&" * 999_999, 500),
    ("POST", "{s}/jsonp_send", {"Content-Type": FORM}, b"d=%5B%22x", 500),
    ("POST", "{s}/jsonp_send", {"Content-Type": FORM}, b"e=1", 500),
    ("POST", "{s}/jsonp_send", {"Content-Type": FORM}, b"", 500),
    ("POST", "{s}/xhr_send", {}, b"", 500),
    ("POST", "{s}/xhr_send", {}, b"[", 500),
    ("POST", "{s}/xhr_send", {}, b'["x"', 500),
    ("POST", "{s}/xhr_send", {}, b'{"a": 1}', 500),
    ("POST", "{s}/xhr_send", {}, b"null", 500),
    ("POST", "{s}/xhr_send", {}, b'"sub,echo"', 500),
    ("POST", "{s}/xhr_send", {}, b"1e999", 500),
    ("POST", "{s}/xhr_send", {}, b"NaN", 500),
    ("POST", "{s}/xhr_send", {}, b"\x00", 500),
    ("POST", "{s}/xhr_send", {}, b"[" * 100_000, 500),
    ("POST", "{s}/xhr_send", {}, b"[" * 50_000 + b"]" * 50_000, 500),
    ("POST", "{s}/xhr_send", {}, b'["\\ud800", "\\udfff", "msg,\\u0000,x"]', 204),
    ("POST", "{s}/xhr_send", {}, b"[1, null, {}, [], true, 1e999]", 204),
    # bad callbacks
    ("GET", "{n}/jsonp", {}, b"", 500),
    ("GET", "{n}/jsonp?c=", {}, b"", 500),
    ("GET", "{n}/jsonp?c=%3Cscript%3E", {}, b"", 500),
    ("GET", "{n}/jsonp?c=alert(1)", {}, b"", 500),
    ("GET", "{n}/jsonp?c=" + "a" * 33, {}, b"", 500),
    ("GET", "{n}/jsonp?c=%00", {}, b"", 500),
    ("GET", "{n}/jsonp?callback=%E2%80%A8", {}, b"", 500),
    ("GET", "{n}/jsonp?c=ok&c=%22%3E", {}, b"", 500),
    ("GET", "{n}/htmlfile", {}, b"", 500),
    ("GET", "{n}/htmlfile?c=%22%3E%3C/script%3E", {}, b"", 500),
    # unknown paths and methods
    ("GET", "/nope", {}, b"", 404),
    ("GET", "/info/more", {}, b"", 404),
    ("GET", "/iframe.htm", {}, b"", 404),
    ("GET", "{n}", {}, b"", 404),
    ("GET", "{n}/nope", {}, b"", 404),
    ("POST", "{n}/xhr/more", {}, b"", 404),
    ("GET", "/a/b/c/d/e", {}, b"", 404),
    ("POST", "/000/a.b/xhr", {}, b"", 404),
    ("POST", "/000/%2E%2E/xhr", {}, b"", 404),
    ("POST", "/000/a%2Fb/xhr", {}, b"", 404),
    ("DELETE", "/info", {}, b"", 405),
    ("PUT", "{n}/xhr", {}, b"", 405),
    ("PATCH", "", {}, b"", 405),
    ("TRACE", "/iframe.html", {}, b"", 405),
    ("PROPFIND", "/info", {}, b"", 405),
    ("GET", "{n}/xhr", {}, b"", 405),
    ("GET", "{s}/xhr_send", {}, b"", 405),
    ("OPTIONS", "{n}/jsonp", {}, b"", 405),
    # the websocket URLs, without a WebSocket
    ("POST", "/websocket", {}, b"", 405),
    ("POST", "{n}/websocket", {}, b"", 405),
    ("POST", "{n}/websocket", HANDSHAKE, b"", 405),
    ("GET", "/websocket", {}, b"", 400),
    ("GET", "{n}/websocket", {}, b"", 400),
    ("GET", "{n}/websocket", {"Upgrade": "websocket"}, b"", 400),
    ("GET", "{n}/websocket", {"Connection": "Upgrade"}, b"", 400),
    ("GET", "{n}/websocket", {"Upgrade": "h2c", "Connection": "Upgrade"}, b"", 400),
    # huge and odd session ids
    ("POST", "/000/" + "a" * 4000 + "/xhr", {}, b"", 404),
    ("POST", "/" + "a" * 4000 + "/abc/xhr", {}, b"", 404),
    ("POST", "{s}" + "a" * 4000 + "/xhr_send", {}, b'["x"]', 404),
    ("POST", "/000/%00/xhr", {}, b"", 200),
    ("POST", "/000/%C3%BC%F0%9F%98%80/xhr", {}, b"", 200),
    ("POST", "/000/%FF%FE/xhr", {}, b"", 200),
    ("POST", "/000/a%20b/xhr", {}, b"", 200),
]


def request_bytes(
    method: str,
    path: str,
    headers: dict[str, str],
    body: bytes,
    *,
    close: bool = True,
) -> bytes:
    """An HTTP/1.1 request as a client writes it; ``close``: ask the server
    to close the connection after its answer."""
    headers = dict(headers)
    if close:
        asked = headers.get("Connection")
        headers["Connection"] = "close" if asked is None else f"{asked}, close"
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    if body or method == "POST":
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


# A SockJS message over the websocket transport, and the close code it gets
# (None: ignored, the connection goes on).
BROKEN_FRAMING: list[tuple[str | bytes, int | None]] = [
    ("not json", 1002),
    ("[", 1002),
    ('["x"', 1002),
    ("[" * 100_000, 1002),
    ('{"a": 1}', None),
    ("null", None),
    ("1", None),
    ("", None),
    ("[1, null, {}]", None),
    ('"msg,echo,a lone string"', None),
    (b"\x00\xff binary", None),
]


def websocket_connections(services: Services) -> list[str]:
    """The paths of the server's connections over a WebSocket."""
    return [
        path
        for connection in services.server.connections
        if (path := connection.transport.request.path).endswith("/websocket")
    ]


async def reset_mid_xhr_streaming(served: Served, http: aiohttp.ClientSession) -> None:
    """A client resets its xhr_streaming request while the server writes
    100 KB of echoes to it; the session ends as interrupted."""
    session_id = uuid.uuid4().hex[:8]
    session = f"{served.url}/000/{session_id}"
    _, writer = await asyncio.open_connection(*served.address)
    streaming = request_bytes(
        "POST", f"{PREFIX}/000/{session_id}/xhr_streaming", {}, b""
    )
    writer.write(streaming)
    sessions = served.endpoint.sessions
    await wait_until(lambda: session_id in sessions and sessions[session_id].held)
    echoes = ["sub,echo", *[f"msg,echo,{i:04}" + "y" * 1000 for i in range(100)]]
    assert await post(http, f"{session}/xhr_send", packed(echoes)) == (204, "")
    reset(writer)
    await wait_until(
        lambda: (
            session_id not in sessions
            or sessions[session_id].state is SessionState.CLOSED
        )
    )


async def reset_mid_request(served: Served, http: aiohttp.ClientSession) -> None:
    """A client resets in the middle of an xhr_send body, and while its xhr
    poll is held; the held session ends as interrupted."""
    session_id = uuid.uuid4().hex[:8]
    path = f"{PREFIX}/000/{session_id}"
    await open_session(http, f"{served.url}/000/{session_id}")
    _, writer = await asyncio.open_connection(*served.address)
    sending = request_bytes("POST", f"{path}/xhr_send", {}, b"x" * 10_000)
    writer.write(sending[:-9_000])  # the headers and 1,000 bytes of the body
    await writer.drain()
    reset(writer)
    sessions = served.endpoint.sessions
    _, writer = await asyncio.open_connection(*served.address)
    writer.write(request_bytes("POST", f"{path}/xhr", {}, b""))
    await wait_until(lambda: sessions[session_id].held)
    reset(writer)
    await wait_until(
        lambda: (
            session_id not in sessions
            or sessions[session_id].state is SessionState.CLOSED
        )
    )


async def reset_mid_websocket_handshake(served: Served) -> None:
    """Clients reset their WebSocket handshakes: halfway through the request,
    right after it, and right after the server's 101."""
    sockjs = f"{PREFIX}/000/{uuid.uuid4().hex[:8]}/websocket"
    for path in (sockjs, f"{PREFIX}/websocket"):
        handshake = request_bytes("GET", path, HANDSHAKE, b"", close=False)
        halfway = len(handshake) // 2
        for cut, read_101 in ((halfway, False), (None, False), (None, True)):
            reader, writer = await asyncio.open_connection(*served.address)
            writer.write(handshake[:cut])
            await writer.drain()
            if read_101:
                async with asyncio.timeout(TIMEOUT):
                    head = await reader.readuntil(b"\r\n\r\n")
                assert head.startswith(b"HTTP/1.1 101"), head
            reset(writer)
    await wait_until(lambda: not websocket_connections(served.services))


async def test_malformed_input_logs_no_traceback(
    serve: Serve, caplog: pytest.LogCaptureFixture
) -> None:
    """Every malformed request of MALFORMED gets its answer (with
    ``nosniff``), every broken SockJS message over the websocket transport
    its close code, resetting clients are let go, and none of it logs a
    traceback at WARNING or above; the server still echoes afterwards."""
    services = Services()
    with no_tracebacks(caplog):
        async with (
            serve(services) as served,
            client() as http,
            held_session(served, http) as opened,
        ):
            for method, template, headers, body, status in MALFORMED:
                path = template.format(s=opened, n=f"/000/{uuid.uuid4().hex[:8]}")
                request = request_bytes(method, PREFIX + path, headers, body)
                response = await raw_request(served, request)
                case = (method, path[:60], headers, body[:20])
                assert response.status == status, (case, response)
                assert_nosniff(response)

            for message, code in BROKEN_FRAMING:
                ws = await http.ws_connect(
                    f"{served.ws_url}/000/{uuid.uuid4().hex[:8]}/websocket"
                )
                async with asyncio.timeout(TIMEOUT):
                    assert await ws.receive_str() == "o"
                    if isinstance(message, str):
                        await ws.send_str(message)
                    else:
                        await ws.send_bytes(message)
                    if code is None:  # ignored: the connection goes on
                        await ws.send_str(packed(["sub,echo", "msg,echo,here"]))
                        assert await ws.receive_str() == 'a["msg,echo,here"]'
                    else:
                        closing = await ws.receive()
                        assert closing.type is aiohttp.WSMsgType.CLOSE, closing
                        assert ws.close_code == code, (message[:20], ws.close_code)
                await ws.close()

            ws = await http.ws_connect(f"{served.ws_url}/000/utf8/websocket")
            async with asyncio.timeout(TIMEOUT):
                assert await ws.receive_str() == "o"
                assert ws._writer is not None  # aiohttp's own send_str encodes
                invalid = b'["msg,echo,\xc3\x28"]'
                await ws._writer.send_frame(invalid, aiohttp.WSMsgType.TEXT)
                closing = await ws.receive()
            # aiohttp says 1007; uvicorn's wsproto drops the connection.
            ends = (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)
            assert closing.type in ends, closing
            assert closing.type is aiohttp.WSMsgType.CLOSED or ws.close_code == 1007
            await ws.close()

            await reset_mid_xhr_streaming(served, http)
            await reset_mid_request(served, http)
            await reset_mid_websocket_handshake(served)
            await echo_round_trip(served)


# -- 5. the session cap refuses, then recovers -------------------------------------

FEW_SESSIONS = Limits(max_sessions=3)


async def test_the_session_cap_refuses_with_503_then_recovers(serve: Serve) -> None:
    """With ``max_sessions=3`` and three sessions open, a fourth gets 503
    with a Retry-After and a sentence saying why, on every receiving
    transport and to a WebSocket handshake (raw or SockJS-framed), and
    opens nothing; the sessions already open go on. Once one session's
    client stops polling and it expires, a new one opens."""
    services = Services(FEW_SESSIONS)
    async with serve(services) as served, client() as http:
        sessions = served.endpoint.sessions
        three = [served.new_session() for _ in range(3)]
        for session in three:
            await open_session(http, session)
            assert await post(http, f"{session}/xhr_send", packed(["sub,echo"])) == (
                204,
                "",
            )
        # Each polls on: held, none expires while the fourth is refused.
        holding = [asyncio.create_task(poll(http, session)) for session in three]
        await wait_until(lambda: all(sessions[URL(s).name].held for s in three))

        fourth = served.new_session()
        for transport in ("xhr", "xhr_streaming"):
            async with http.post(f"{fourth}/{transport}") as response:
                assert_nosniff(response)
                assert response.status == 503
                retry_after = response.headers.get("Retry-After", "")
                assert retry_after.isdigit() and int(retry_after) > 0, retry_after
                assert "Too many sessions" in await response.text()
        for transport in ("eventsource", "jsonp?c=cb", "htmlfile?c=cb"):
            async with http.get(f"{fourth}/{transport}") as response:
                assert_nosniff(response)
                assert response.status == 503, transport
        assert await post(http, f"{fourth}/xhr_send", packed(["x"])) == (
            404,
            "404 Error: Page not found\n",
        )
        assert len(sessions) == 3 and URL(fourth).name not in sessions
        for path in ("/websocket", "/000/abcdefgh/websocket"):
            with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
                await http.ws_connect(served.ws_url + path)
            assert refused.value.status == 503, path

        # The open sessions still work; the last one's client then stops.
        for session, held in zip(three, holding, strict=True):
            await post(http, f"{session}/xhr_send", packed([f"msg,echo,{session}"]))
            async with asyncio.timeout(TIMEOUT):
                assert await held == [f"msg,echo,{session}"]
        *kept, dropped = three
        holding = [asyncio.create_task(poll(http, session)) for session in kept]
        await wait_until(lambda: all(sessions[URL(s).name].held for s in kept))

        await wait_until(lambda: URL(dropped).name not in sessions)
        assert await post(http, f"{fourth}/xhr") == (200, "o\n")
        assert set(sessions) == {URL(s).name for s in (*kept, fourth)}
        for session, held in zip(kept, holding, strict=True):
            await post(http, f"{session}/xhr_send", packed(["msg,echo,bye"]))
            async with asyncio.timeout(TIMEOUT):
                assert await held == ["msg,echo,bye"]
    # The WebSockets count too, while they live, and leave room when gone.
    services = Services(FEW_SESSIONS)
    async with serve(services) as served, client() as http:
        sockets = [
            await http.ws_connect(served.ws_url + "/websocket") for _ in range(3)
        ]
        async with http.post(f"{served.new_session()}/xhr") as response:
            assert response.status == 503
        await sockets.pop().close()
        await wait_until(lambda: served.endpoint.websockets == 2)
        assert await post(http, f"{served.new_session()}/xhr") == (200, "o\n")
        for ws in sockets:
            await ws.close()


# -- 6. long session ids --------------------------------------------------------------


async def test_session_ids_over_max_session_id_length_get_404(serve: Serve) -> None:
    """A server or session id of 4,000 characters gets 404 on every session
    URL, WebSocket included, and leaves nothing in ``endpoint.sessions``;
    ids of exactly ``max_session_id_length`` are accepted, one more is not."""
    limits = Limits()
    longest = limits.max_session_id_length
    services = Services(limits)
    async with serve(services) as served, client() as http:
        sessions = served.endpoint.sessions
        huge = "h" * 4_000
        for base in (f"{served.url}/000/{huge}", f"{served.url}/{huge}/abc"):
            for transport in ("xhr", "xhr_streaming", "xhr_send", "jsonp_send"):
                assert (await post(http, f"{base}/{transport}", b'["x"]'))[0] == 404
            for transport in ("eventsource", "jsonp?c=cb", "htmlfile?c=cb"):
                async with http.get(f"{base}/{transport}") as response:
                    assert_nosniff(response)
                    assert response.status == 404, transport
            ws_base = "ws" + base[len("http") :]
            with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
                await http.ws_connect(f"{ws_base}/websocket")
            assert refused.value.status == 404
        assert sessions == {}
        assert not services.server.connections

        one_more = "m" * (longest + 1)
        assert (await post(http, f"{served.url}/000/{one_more}/xhr"))[0] == 404
        assert (await post(http, f"{served.url}/{one_more}/abc/xhr"))[0] == 404
        assert sessions == {}

        exact = "e" * longest
        assert await post(http, f"{served.url}/{exact}/{exact}/xhr") == (200, "o\n")
        assert set(sessions) == {exact}
        ws = await http.ws_connect(f"{served.ws_url}/{exact}/w{exact[1:]}/websocket")
        async with asyncio.timeout(TIMEOUT):
            assert await ws.receive_str() == "o"
        await ws.close()


# -- 7. refused origins, and nosniff everywhere ---------------------------------------

GOOD = "https://good.example"
EVIL = "https://evil.example"


def assert_no_cors_grant(response: aiohttp.ClientResponse) -> None:
    assert "Access-Control-Allow-Origin" not in response.headers, dict(response.headers)
    assert "Access-Control-Allow-Credentials" not in response.headers


async def test_a_refused_origin_gets_403_and_no_cors_grant(serve: Serve) -> None:
    """With ``allowed_origins`` set, another origin gets 403 without
    ``Access-Control-Allow-Origin`` or ``-Credentials`` on /info, on xhr,
    xhr_send and on their preflights, opens no session and delivers
    nothing; the allowed origin gets the grant."""
    services = Services()
    async with (
        serve(services, allowed_origins=[GOOD]) as served,
        client() as http,
    ):
        session = served.new_session()
        evil = {"Origin": EVIL}
        preflight = {
            **evil,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type",
        }
        requests = [
            ("GET", f"{served.url}/info", evil, b""),
            ("OPTIONS", f"{served.url}/info", preflight, b""),
            ("POST", f"{session}/xhr", evil, b""),
            ("OPTIONS", f"{session}/xhr", preflight, b""),
            ("OPTIONS", f"{session}/xhr_send", preflight, b""),
            ("POST", f"{session}/xhr_streaming", evil, b""),
            ("GET", f"{session}/eventsource", evil, b""),
        ]
        for method, url, headers, body in requests:
            sent = http.request(method, url, headers=headers, data=body)
            async with sent as response:
                assert response.status == 403, (method, url)
                assert_no_cors_grant(response)
                assert_nosniff(response)
        assert served.endpoint.sessions == {}
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await http.ws_connect(f"{served.ws_url}/000/abc/websocket", headers=evil)
        assert refused.value.status == 403

        # The allowed origin opens the session; the foreign one cannot send
        # into it.
        good = {"Origin": GOOD}
        async with http.post(f"{session}/xhr", headers=good) as response:
            assert (response.status, await response.text()) == (200, "o\n")
            assert response.headers["Access-Control-Allow-Origin"] == GOOD
            assert response.headers["Access-Control-Allow-Credentials"] == "true"
        async with http.post(
            f"{session}/xhr_send", headers=evil, data=packed(["sub,echo"])
        ) as response:
            assert response.status == 403
            assert_no_cors_grant(response)
        allowed_preflight = {**preflight, **good}
        async with http.options(
            f"{session}/xhr_send", headers=allowed_preflight
        ) as response:
            assert response.status == 204
            assert response.headers["Access-Control-Allow-Origin"] == GOOD
        assert services.frames_received() == 0


async def test_every_response_says_nosniff(serve: Serve) -> None:
    """``X-Content-Type-Options: nosniff`` on every answer of the endpoint:
    pages, /info, preflights, every receiving and sending transport, 304,
    400, 404, 405 and 500."""
    services = Services()
    async with serve(services) as served, client() as http:
        session = served.new_session()
        jsonp = served.new_session()
        iframe = f"{served.url}/iframe.html"
        async with http.get(iframe) as response:
            etag = response.headers["ETag"]
        requests: list[tuple[str, str, dict[str, str], bytes, int]] = [
            ("GET", served.url, {}, b"", 200),
            ("GET", f"{served.url}/", {}, b"", 200),
            ("GET", f"{served.url}/info", {}, b"", 200),
            ("OPTIONS", f"{served.url}/info", {"Origin": GOOD}, b"", 204),
            ("GET", iframe, {}, b"", 200),
            ("GET", f"{served.url}/iframe-1.2.3.html", {}, b"", 200),
            ("GET", iframe, {"If-None-Match": etag}, b"", 304),
            ("POST", f"{session}/xhr", {}, b"", 200),
            ("OPTIONS", f"{session}/xhr", {"Origin": GOOD}, b"", 204),
            ("POST", f"{session}/xhr_send", {}, packed(["sub,echo"]).encode(), 204),
            ("OPTIONS", f"{session}/xhr_send", {}, b"", 204),
            ("GET", f"{jsonp}/jsonp?c=cb", {}, b"", 200),
            ("POST", f"{jsonp}/jsonp_send", {"Content-Type": FORM}, b"d=%5B%5D", 200),
            ("POST", f"{session}/xhr_send", {}, b"[", 500),
            ("GET", f"{served.url}/websocket", {}, b"", 400),
            ("GET", f"{served.url}/nope", {}, b"", 404),
            ("DELETE", f"{served.url}/info", {}, b"", 405),
        ]
        for method, url, headers, body, status in requests:
            sent = http.request(method, url, headers=headers, data=body)
            async with sent as response:
                assert response.status == status, (method, url, response.status)
                assert_nosniff(response)
        for transport in ("xhr_streaming", "eventsource", "htmlfile?c=cb"):
            other = served.new_session()
            method = "POST" if transport == "xhr_streaming" else "GET"
            async with http.request(method, f"{other}/{transport}") as response:
                assert response.status == 200
                assert_nosniff(response)


# Requests broken below SockJS, in their HTTP framing: a chunk size that is
# not hexadecimal, a body that ends before its Content-Length.
BROKEN_CHUNKS = b"Transfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n"
BROKEN_HTTP: list[tuple[str, bytes]] = [
    ("/000/unknown/xhr_send", BROKEN_CHUNKS),  # answered without reading it
    ("/nope", BROKEN_CHUNKS),
    ("/000/{n}/xhr", BROKEN_CHUNKS),
    ("{s}/xhr_send", BROKEN_CHUNKS),  # read, then broken
    ("{s}/xhr_send", b'Content-Length: 1000\r\n\r\n["x'),
    ("/000/unknown/xhr_send", b'Content-Length: 1000\r\n\r\n["x'),
]


async def test_requests_broken_in_their_http_framing_log_no_traceback_of_ours(
    serve: Serve, caplog: pytest.LogCaptureFixture
) -> None:
    """A request whose HTTP framing breaks after its headers (a chunk size
    that is not hexadecimal, a body cut short by the client's end of
    stream) is the HTTP server's to refuse: the endpoint must let it go
    without a traceback of its own (aiohttp's server logs the parse error
    itself, which is aiohttp's doing), and serve the others."""
    services = Services()
    with no_tracebacks(caplog, loggers=("websocket_multiplex", "asyncio")):
        async with (
            serve(services) as served,
            client() as http,
            held_session(served, http) as opened,
        ):
            for template, rest in BROKEN_HTTP:
                path = template.format(s=opened, n=uuid.uuid4().hex[:8])
                reader, writer = await asyncio.open_connection(*served.address)
                writer.write(f"POST {PREFIX}{path} HTTP/1.1\r\nHost: x\r\n".encode())
                writer.write(rest)
                writer.write_eof()
                async with asyncio.timeout(TIMEOUT):
                    await reader.read()  # whatever the answer, to the end
                writer.close()
            await echo_round_trip(served)
