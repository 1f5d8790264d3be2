"""SockJS's websocket transport as we serve it (asyncio/websocket.py).

``<prefix>/<server>/<session>/websocket``: these tests speak it over real
sockets on 127.0.0.1 the way sockjs-client does, and check the framing
(sockjs-protocol 0.3: ``o``, ``h``, ``a[...]``, ``c[code,"reason"]``),
hostile input, the heartbeat, closing and permessage-deflate. Every wait is bounded.
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from websocket_multiplex import Channel, CloseReason, MultiplexServer
from websocket_multiplex.adapters.aiohttp import add_sockjs_endpoint

from .test_aiohttp import start

PREFIX = "/mx"
TIMEOUT = 5.0  # seconds any single wait may take


class Echo:
    """A server whose 'echo' channels send every message back and report
    why they closed."""

    def __init__(self) -> None:
        self.server = MultiplexServer()
        self.closed: asyncio.Queue[CloseReason | None] = asyncio.Queue()
        self.server.register("echo", self.handle)

    async def handle(self, channel: Channel) -> None:
        try:
            async for data in channel:
                await channel.send(data)
        finally:
            self.closed.put_nowait(channel.close_reason)

    async def next_close(self) -> CloseReason | None:
        async with asyncio.timeout(TIMEOUT):
            return await self.closed.get()


class Client:
    """The client end of the SockJS websocket transport, as sockjs-client
    speaks it: it unpacks ``a[...]`` frames and counts ``h`` frames."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self.pending: deque[str] = deque()
        self.batch_sizes: list[int] = []
        self.heartbeats = 0
        self.close_frame: list[Any] | None = None

    async def frame(self) -> str:
        """The next SockJS frame: one WebSocket text message."""
        async with asyncio.timeout(TIMEOUT):
            message = await self.ws.receive()
        assert message.type is aiohttp.WSMsgType.TEXT, message
        assert isinstance(message.data, str)
        return message.data

    async def message(self) -> str:
        """The next message the server sent (``h`` frames skipped)."""
        while not self.pending:
            frame = await self.frame()
            if frame == "h":
                self.heartbeats += 1
                continue
            assert frame.startswith("a["), frame
            batch = json.loads(frame[1:])
            assert isinstance(batch, list)
            assert all(isinstance(item, str) for item in batch), batch
            self.batch_sizes.append(len(batch))
            self.pending.extend(batch)
        return self.pending.popleft()

    async def messages(self, count: int) -> list[str]:
        return [await self.message() for _ in range(count)]

    async def until(self, last: str) -> list[str]:
        """Messages up to and including ``last``."""
        got = [await self.message()]
        while got[-1] != last:
            got.append(await self.message())
        return got

    async def closing(self) -> aiohttp.WSMessage:
        """The WebSocket close, after any frames still in flight: messages
        are kept in ``pending``, a ``c[...]`` frame in ``close_frame``."""
        while True:
            async with asyncio.timeout(TIMEOUT):
                message = await self.ws.receive()
            if message.type is not aiohttp.WSMsgType.TEXT:
                return message
            if message.data.startswith("c"):
                assert self.close_frame is None, "two c[...] frames"
                self.close_frame = json.loads(message.data[1:])
            elif message.data.startswith("a["):
                self.pending.extend(json.loads(message.data[1:]))
            else:
                assert message.data == "h", message

    async def send_frames(self, *frames: str) -> None:
        await self.ws.send_str(json.dumps(list(frames)))

    async def subscribe_echo(self) -> None:
        await self.send_frames("sub,echo")
        await self.assert_echoes("ready?")

    async def assert_echoes(self, text: str = "still alive") -> None:
        await self.send_frames(f"msg,echo,{text}")
        assert await self.message() == f"msg,echo,{text}"


class Endpoint:
    """One running aiohttp application with a SockJS endpoint at PREFIX."""

    def __init__(self, echo: Echo, base: str, http: aiohttp.ClientSession) -> None:
        self.echo = echo
        self.server = echo.server
        self.base = base
        self.http = http
        self.sockets: list[aiohttp.ClientWebSocketResponse] = []

    @property
    def ws_base(self) -> str:
        return self.base.replace("http", "ws", 1) + PREFIX

    def session_url(self, server_id: str = "000", session_id: str | None = None) -> str:
        session_id = session_id or uuid.uuid4().hex[:8]
        return f"{self.ws_base}/{server_id}/{session_id}/websocket"

    async def ws_connect(
        self, url: str, **kwargs: Any
    ) -> aiohttp.ClientWebSocketResponse:
        async with asyncio.timeout(TIMEOUT):
            ws: aiohttp.ClientWebSocketResponse = await self.http.ws_connect(
                url, **kwargs
            )
        self.sockets.append(ws)
        return ws

    async def connect(self, **kwargs: Any) -> Client:
        """A SockJS websocket session, past its ``o`` frame."""
        client = Client(await self.ws_connect(self.session_url(), **kwargs))
        assert await client.frame() == "o"
        return client


Serve = Callable[..., Awaitable[Endpoint]]


@pytest.fixture
async def serve() -> AsyncIterator[Serve]:
    """Start an echo server with ``add_sockjs_endpoint(..., **options)``.

    Teardown closes the clients first, so that no server waits on a client
    that no longer reads."""
    runners: list[web.AppRunner] = []
    endpoints: list[Endpoint] = []
    http = aiohttp.ClientSession()

    async def make(**options: Any) -> Endpoint:
        echo = Echo()
        app = web.Application()
        add_sockjs_endpoint(app, echo.server, prefix=PREFIX, **options)
        runner, base = await start(app)
        runners.append(runner)
        endpoints.append(Endpoint(echo, base, http))
        return endpoints[-1]

    try:
        yield make
    finally:
        async with asyncio.timeout(TIMEOUT * 2):
            for endpoint in endpoints:
                for ws in endpoint.sockets:
                    await ws.close()
            await http.close()
            for runner in runners:
                await runner.cleanup()


@pytest.fixture
async def endpoint(serve: Serve) -> Endpoint:
    return await serve()


@pytest.fixture(autouse=True)
def no_errors_logged(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    """Nothing here may make the server log an error (tracebacks included)."""
    yield
    errors = [r for r in caplog.get_records("call") if r.levelno >= logging.ERROR]
    assert not errors, [r.getMessage() for r in errors]


# -- 1. opening and the first echo ---------------------------------------------


async def test_o_first_then_messages_come_back_in_a_frames(endpoint: Endpoint) -> None:
    ws = await endpoint.ws_connect(endpoint.session_url())
    client = Client(ws)
    assert await client.frame() == "o"
    await ws.send_str('["sub,echo"]')
    await ws.send_str('["msg,echo,a,b"]')
    assert await client.message() == "msg,echo,a,b"
    assert client.pending == deque()


# -- 2. every shape of client message SockJS allows --------------------------------


async def test_several_frames_in_one_message_arrive_in_order(
    endpoint: Endpoint,
) -> None:
    client = await endpoint.connect()
    await client.subscribe_echo()
    await client.ws.send_str('["msg,echo,1","msg,echo,2"]')
    assert await client.messages(2) == ["msg,echo,1", "msg,echo,2"]


async def test_a_bare_json_string_is_one_frame(endpoint: Endpoint) -> None:
    client = await endpoint.connect()
    await client.subscribe_echo()
    await client.ws.send_str('"msg,echo,3"')
    assert await client.message() == "msg,echo,3"


# Raw WebSocket messages and what each must deliver: json.loads's reading.
ESCAPED = [
    json.dumps(['msg,echo,say "hi"']),
    json.dumps(["msg,echo,back\\slash\\"]),
    json.dumps(["msg,echo,h\u00e9llo \u2603 \U0001d11e"]),  # escaped: \u00e9 ...
    json.dumps(["msg,echo,h\u00e9llo \u2603 \U0001d11e"], ensure_ascii=False),
    '["msg,echo,\\ud800"]',  # a lone surrogate
    '["msg,echo,x\\udc00y"]',  # a lone low surrogate
    '["msg,echo,\\udbff\\udfff"]',  # a pair: U+10FFFF
    '["msg,echo,\\u0001\\u001f\\u0000"]',  # control characters
    '["msg,echo,tab\\there\\nnew\\rline\\b\\f"]',
    '["msg,echo,\\/slash\\u0041\\u00E9"]',  # escapes JSON allows, upper-case hex
    # Characters JSON allows raw that are not "printable" to Python.
    json.dumps(["msg,echo,\x7f\u2028\u2029\xa0\u200b"], ensure_ascii=False),
    '[ "msg,echo,spaced" , "msg,echo,out" ]\n',
    '  "msg,echo,a bare string with spaces"  ',
    '"msg,echo,a bare \\"quoted\\" string"',
    '["msg,echo,"]',  # an empty payload
    '["msg,echo,]"]',
    '["msg,echo,[\\"x\\"]"]',
    '["msg,echo,\\"]"]',
    json.dumps(["msg,echo,1", 'msg,echo,"2"', "msg,echo,3\\"]),
]


@pytest.mark.parametrize("raw", ESCAPED)
async def test_frames_are_delivered_exactly_as_json_decodes_them(
    endpoint: Endpoint, raw: str
) -> None:
    decoded = json.loads(raw)
    expected = [decoded] if isinstance(decoded, str) else decoded
    client = await endpoint.connect()
    await client.subscribe_echo()
    await client.ws.send_str(raw)
    await client.send_frames("msg,echo,end")
    assert await client.until("msg,echo,end") == [*expected, "msg,echo,end"]


async def test_empty_messages_and_non_strings_are_ignored(endpoint: Endpoint) -> None:
    client = await endpoint.connect()
    await client.subscribe_echo()
    for raw in [
        "",
        "[]",
        '[1, 2.5, null, true, false, {"a": "msg,echo,no"}, ["msg,echo,nested"]]',
        '[null, "msg,echo,kept", 7, "msg,echo,kept too"]',
        '{"msg": "echo"}',
        "42",
        "null",
        "true",
        "[" * 500 + "]" * 500,  # nested, but within what json.loads reads
    ]:
        await client.ws.send_str(raw)
    await client.ws.send_bytes(b'["msg,echo,binary"]')  # not SockJS: ignored
    await client.send_frames("msg,echo,end")
    assert await client.until("msg,echo,end") == [
        "msg,echo,kept",
        "msg,echo,kept too",
        "msg,echo,end",
    ]
    assert not client.ws.closed
    assert endpoint.echo.closed.empty()


# -- 3. hostile framing ----------------------------------------------------------

BROKEN = [
    '["abc',
    '["]',
    "[",
    '"',
    "abc",
    '["a",]',
    '["a"]x',
    '["a" "b"]',
    "{",
    '["\\x"]',  # an invalid escape
    '["\\u12"]',  # a short \u escape
    '["a\x01b"]',  # a raw control character inside a string
    '["a\nb"]',
    "'msg,echo,x'",
]


async def expect_protocol_error_close(client: Client) -> None:
    closed = await client.closing()
    assert closed.type is aiohttp.WSMsgType.CLOSE, closed
    assert closed.data == 1002
    assert client.ws.close_code == 1002
    assert client.close_frame is None  # the WebSocket close says it


@pytest.mark.parametrize("raw", BROKEN)
async def test_broken_json_closes_with_1002(endpoint: Endpoint, raw: str) -> None:
    client = await endpoint.connect()
    await client.subscribe_echo()
    await client.ws.send_str(raw)
    await expect_protocol_error_close(client)
    assert await endpoint.echo.next_close() is CloseReason.CONNECTION_LOST
    other = await endpoint.connect()
    await other.subscribe_echo()


DEEP = [
    "[" * 100_000 + "]" * 100_000,
    '{"a":' * 100_000 + "1" + "}" * 100_000,
    '["msg,echo,lost", ' + "[" * 100_000 + "]" * 100_000 + "]",
    "[" * 100_000,  # deep and unterminated
]


@pytest.mark.parametrize("raw", DEEP, ids=["arrays", "objects", "in-batch", "open"])
async def test_deep_nesting_closes_with_1002_without_a_traceback(
    endpoint: Endpoint, raw: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    client = await endpoint.connect()
    await client.subscribe_echo()
    await client.ws.send_str(raw)
    await expect_protocol_error_close(client)  # and "msg,echo,lost" never came
    assert client.pending == deque()
    assert await endpoint.echo.next_close() is CloseReason.CONNECTION_LOST
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert not [r for r in caplog.records if r.exc_info], "a traceback was logged"
    other = await endpoint.connect()
    await other.subscribe_echo()


# -- 4. bursts --------------------------------------------------------------------


async def test_a_burst_comes_back_in_order_packed_into_fewer_a_frames(
    endpoint: Endpoint,
) -> None:
    client = await endpoint.connect()
    await client.subscribe_echo()
    client.batch_sizes.clear()
    sent = [f"msg,echo,{k}" for k in range(200)]
    # One client turn: aiohttp's send_str writes at once and does not yield
    # while the socket takes the data, so all 200 leave back to back.
    for frame in sent:
        await client.ws.send_str(json.dumps([frame]))
    assert await client.messages(200) == sent
    assert client.pending == deque()
    assert sum(client.batch_sizes) == 200
    assert max(client.batch_sizes) > 1, client.batch_sizes


async def test_a_burst_in_one_message_comes_back_in_order(endpoint: Endpoint) -> None:
    client = await endpoint.connect()
    await client.subscribe_echo()
    sent = [f"msg,echo,{k}" for k in range(500)]
    await client.ws.send_str(json.dumps(sent))
    assert await client.messages(500) == sent


# -- 5. closing from the server ------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "reason", "sockjs_code"),
    [
        (None, None, 3000),  # MultiplexServer.close's 1001 "server shutdown"
        (1000, "bye", 1000),
        (3000, "", 3000),
        (4321, 'custom \u00e9 "quoted"', 4321),
        (1011, "internal", 3000),  # SockJS reserves 1000 and 3000-4999
        (2999, "just below", 3000),
    ],
)
async def test_server_close_sends_notices_then_c_frame_then_closes(
    endpoint: Endpoint, code: int | None, reason: str | None, sockjs_code: int
) -> None:
    client = await endpoint.connect()
    await client.subscribe_echo()
    if code is None:
        closing = asyncio.ensure_future(endpoint.server.close())
        reason = "server shutdown"
    else:
        assert reason is not None
        closing = asyncio.ensure_future(endpoint.server.close(code, reason))
    try:
        assert await client.messages(2) == [
            "err,echo,1001 server shutting down",
            "uns,echo",
        ]
        closed = await client.closing()
    finally:
        async with asyncio.timeout(TIMEOUT):
            await closing
    assert client.close_frame == [sockjs_code, reason]
    assert closed.type is aiohttp.WSMsgType.CLOSE, closed
    assert closed.data == sockjs_code
    assert closed.extra == reason
    assert client.ws.close_code == sockjs_code
    assert await endpoint.echo.next_close() is CloseReason.SHUTDOWN


async def test_a_session_opened_during_shutdown_is_refused_with_503(
    endpoint: Endpoint,
) -> None:
    async with asyncio.timeout(TIMEOUT):
        await endpoint.server.close()
    # Refused outright, not opened then closed: a reconnecting client would
    # count an opened session as a reconnection.
    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
        await endpoint.connect()
    assert refused.value.status == 503


@pytest.mark.parametrize("transport", ["sockjs-websocket", "raw"])
async def test_a_long_close_reason_still_closes_cleanly(
    endpoint: Endpoint, transport: str
) -> None:
    reason = "\u00e9" * 100  # 200 bytes of UTF-8
    if transport == "raw":
        ws = await endpoint.ws_connect(f"{endpoint.ws_base}/websocket")
        expected_code = 1001
    else:
        ws = (await endpoint.connect()).ws
        expected_code = 3000
    client = Client(ws)
    closing = asyncio.ensure_future(endpoint.server.close(1001, reason))
    try:
        closed = await client.closing()
    finally:
        async with asyncio.timeout(TIMEOUT):
            await closing
    if transport != "raw":
        assert client.close_frame is not None
        assert client.close_frame[0] == expected_code
        assert reason.startswith(client.close_frame[1])
    assert closed.type is aiohttp.WSMsgType.CLOSE, closed
    assert closed.data == expected_code
    assert isinstance(closed.extra, str)
    assert reason.startswith(closed.extra)


# -- 6. the heartbeat -------------------------------------------------------------


async def test_an_idle_session_gets_h_and_a_busy_one_does_not(serve: Serve) -> None:
    delay = 0.2
    endpoint = await serve(heartbeat_delay=delay)
    client = await endpoint.connect()
    assert await client.frame() == "h"  # idle since "o": bounded by TIMEOUT
    await client.subscribe_echo()
    client.heartbeats = 0
    # Traffic from the server all the time, for five heartbeat periods.
    loop = asyncio.get_running_loop()
    until = loop.time() + 5 * delay
    rounds = 0
    while loop.time() < until:
        await client.assert_echoes(str(rounds))
        rounds += 1
    assert rounds > 5
    assert client.heartbeats == 0
    # Idle again: the heartbeat resumes.
    assert await client.frame() == "h"
    await client.assert_echoes("after the heartbeat")


# -- 7. the shape of the route ---------------------------------------------------


@pytest.mark.parametrize(
    ("server_id", "session_id"),
    [("000", "a.b"), ("0.0", "abc"), ("000", "."), (".", "abc"), ("000", "abc.")],
)
async def test_ids_with_dots_are_not_served(
    endpoint: Endpoint, server_id: str, session_id: str
) -> None:
    url = endpoint.session_url(server_id, session_id)
    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
        await endpoint.ws_connect(url)
    assert refused.value.status == 404
    async with endpoint.http.get(url.replace("ws", "http", 1)) as response:
        assert response.status == 404
    await (await endpoint.connect()).subscribe_echo()


async def test_plain_http_requests_to_the_websocket_path_get_4xx(
    endpoint: Endpoint,
) -> None:
    url = endpoint.session_url().replace("ws", "http", 1)
    http = endpoint.http
    async with http.get(url) as response:
        assert 400 <= response.status < 500, response.status
    async with http.get(url, headers={"Upgrade": "websocket"}) as response:
        assert 400 <= response.status < 500, response.status  # no Connection
    async with http.get(
        url, headers={"Upgrade": "websocket", "Connection": "Upgrade"}
    ) as response:
        assert 400 <= response.status < 500, response.status  # no key, version
    async with http.post(url, data="[]") as response:
        assert 400 <= response.status < 500, response.status
    assert not endpoint.server.connections
    await (await endpoint.connect()).subscribe_echo()


# -- 8. permessage-deflate ------------------------------------------------------------


@pytest.mark.parametrize("transport", ["sockjs-websocket", "raw"])
@pytest.mark.parametrize("compress", [False, True])
async def test_compression_is_negotiated_only_when_enabled(
    serve: Serve, transport: str, compress: bool
) -> None:
    endpoint = await serve(**({"compress": True} if compress else {}))
    payload = "compressible " * 1000
    if transport == "raw":
        ws = await endpoint.ws_connect(f"{endpoint.ws_base}/websocket", compress=15)
        assert ws.compress == (15 if compress else 0)
        await ws.send_str("sub,echo")
        await ws.send_str(f"msg,echo,{payload}")
        async with asyncio.timeout(TIMEOUT):
            assert await ws.receive_str() == f"msg,echo,{payload}"
    else:
        client = await endpoint.connect(compress=15)
        assert client.ws.compress == (15 if compress else 0)
        await client.subscribe_echo()
        await client.assert_echoes(payload)
