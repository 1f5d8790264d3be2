"""``allowed_origins`` on every route of the aiohttp adapter, over real sockets.

A foreign ``Origin`` and ``null`` (what sandboxed iframes and ``file:``
pages send) get 403 before anything opens, on every SockJS HTTP endpoint,
both SockJS WebSockets and ``add_websocket_route``; the allowed origin gets
a working channel. A request without ``Origin`` is accepted (browsers
always send one; docs/LIMITS.md), so it works too.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

import aiohttp
import pytest
from aiohttp import web

from websocket_multiplex import Channel, MultiplexServer
from websocket_multiplex.adapters.aiohttp import (
    add_sockjs_endpoint,
    add_websocket_route,
)

ALLOWED = "https://app.example"
REFUSED = ("https://evil.example", "null", "https://app.example.evil.example")
ACCEPTED = (ALLOWED, None)
TIMEOUT = aiohttp.ClientTimeout(total=5)


def headers(origin: str | None) -> dict[str, str]:
    return {} if origin is None else {"Origin": origin}


@dataclass
class Endpoint:
    server: MultiplexServer
    http: aiohttp.ClientSession
    base: str  # http://127.0.0.1:PORT

    @property
    def sockjs(self) -> str:
        return f"{self.base}/multiplex"

    def ws(self, path: str) -> str:
        return self.base.replace("http", "ws", 1) + path

    def new_session(self) -> str:
        return f"{self.sockjs}/000/{uuid.uuid4().hex[:8]}"

    def accepted(self) -> int:
        return self.server.stats().connections_accepted


@pytest.fixture
async def endpoint() -> AsyncIterator[Endpoint]:
    mux = MultiplexServer(handler_timeout=1.0)

    @mux.channel("echo")
    async def echo(channel: Channel) -> None:
        async for data in channel:
            await channel.send(data)

    app = web.Application()
    add_sockjs_endpoint(app, mux, prefix="/multiplex", allowed_origins=[ALLOWED])
    add_websocket_route(app, mux, "/ws", allowed_origins=[ALLOWED])
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    port = runner.addresses[0][1]
    try:
        async with aiohttp.ClientSession(timeout=TIMEOUT) as http:
            yield Endpoint(mux, http, f"http://127.0.0.1:{port}")
    finally:
        await runner.cleanup()


# -- SockJS endpoints that open no session -------------------------------------

PAGES = [
    ("GET", "", "Welcome to SockJS!"),
    ("GET", "/info", '"websocket"'),
    ("OPTIONS", "/info", ""),
    ("GET", "/iframe.html", "<script"),
    ("GET", "/iframe-1.6.1.html", "<script"),
]


@pytest.mark.parametrize(("method", "path", "content"), PAGES)
async def test_pages(endpoint: Endpoint, method: str, path: str, content: str) -> None:
    url = endpoint.sockjs + path
    for refused in REFUSED:
        async with endpoint.http.request(method, url, headers=headers(refused)) as r:
            assert r.status == 403, refused
            assert await r.text() == "origin not allowed"
    for origin in ACCEPTED:
        async with endpoint.http.request(method, url, headers=headers(origin)) as r:
            assert r.status in (200, 204), origin
            assert content in await r.text()


# -- SockJS session transports -------------------------------------------------


def _plain(line: str) -> str | None:
    """xhr, xhr_streaming: one frame a line (after a prelude of 2048 ``h``)."""
    return None if line == "h" * 2048 else line or None


def _eventsource(line: str) -> str | None:
    return line.removeprefix("data: ") if line.startswith("data: ") else None


def _htmlfile(line: str) -> str | None:
    """``p("frame");`` inside a script element."""
    if line.startswith("p(") and line.endswith(");"):
        return json.loads(line[2:-2])  # type: ignore[no-any-return]
    return None


def _jsonp(line: str) -> str | None:
    """``/**/cb("frame");``"""
    if line.startswith("/**/cb(") and line.endswith(");"):
        return json.loads(line[7:-2])  # type: ignore[no-any-return]
    return None


@dataclass(frozen=True)
class Receiver:
    """A SockJS transport that carries frames to the client."""

    name: str
    method: str
    streaming: bool
    frame: Callable[[str], str | None]

    def url(self, session: str) -> str:
        query = "?c=cb" if self.name in ("htmlfile", "jsonp") else ""
        return f"{session}/{self.name}{query}"


RECEIVERS = [
    Receiver("xhr", "POST", False, _plain),
    Receiver("xhr_streaming", "POST", True, _plain),
    Receiver("eventsource", "GET", True, _eventsource),
    Receiver("htmlfile", "GET", True, _htmlfile),
    Receiver("jsonp", "GET", False, _jsonp),
]


class SockJSSession:
    """The client end of one session over ``receiver``, sending with xhr_send."""

    def __init__(
        self, endpoint: Endpoint, receiver: Receiver, origin: str | None
    ) -> None:
        self.http = endpoint.http
        self.url = endpoint.new_session()
        self.receiver = receiver
        self.headers = headers(origin)
        self.response: aiohttp.ClientResponse | None = None

    async def next_frame(self) -> str:
        """The next SockJS frame other than a heartbeat."""
        for _ in range(3):  # a poll ends after one frame: poll again
            if self.response is None:
                self.response = await self.http.request(
                    self.receiver.method,
                    self.receiver.url(self.url),
                    headers=self.headers,
                )
                assert self.response.status == 200, self.response.status
            while line := await self.response.content.readline():
                frame = self.receiver.frame(line.decode().strip())
                if frame is not None and frame != "h":
                    if not self.receiver.streaming:
                        self.close()
                    return frame
            self.close()
        raise AssertionError("no frame in three polls")

    async def messages(self) -> list[str]:
        frame = await self.next_frame()
        assert frame.startswith("a["), frame
        return json.loads(frame[1:])  # type: ignore[no-any-return]

    async def send(self, *frames: str, origin: str | None = ALLOWED) -> int:
        async with self.http.post(
            f"{self.url}/xhr_send", data=json.dumps(frames), headers=headers(origin)
        ) as response:
            return response.status

    def close(self) -> None:
        if self.response is not None:
            self.response.close()
            self.response = None


@pytest.mark.parametrize("receiver", RECEIVERS, ids=lambda r: r.name)
async def test_session_transports_refuse_foreign_origins(
    endpoint: Endpoint, receiver: Receiver
) -> None:
    for origin in REFUSED:
        url = receiver.url(endpoint.new_session())
        async with endpoint.http.request(
            receiver.method, url, headers=headers(origin)
        ) as response:
            assert response.status == 403, origin
            assert await response.text() == "origin not allowed"
    assert endpoint.accepted() == 0  # no session, no connection


@pytest.mark.parametrize("origin", ACCEPTED)
@pytest.mark.parametrize("receiver", RECEIVERS, ids=lambda r: r.name)
async def test_session_transports_serve_the_allowed_origin(
    endpoint: Endpoint, receiver: Receiver, origin: str | None
) -> None:
    session = SockJSSession(endpoint, receiver, origin)
    try:
        assert await session.next_frame() == "o"
        assert await session.send("sub,echo", "msg,echo,hi", origin=origin) == 204
        assert await session.messages() == ["msg,echo,hi"]
    finally:
        session.close()
    assert endpoint.accepted() == 1


SENDERS = {
    "xhr_send": ("application/json", "{}", 204),
    "jsonp_send": ("application/x-www-form-urlencoded", "d={}", 200),
}


@pytest.mark.parametrize("sender", SENDERS)
async def test_sending_into_a_session_from_a_foreign_origin_is_refused(
    endpoint: Endpoint, sender: str
) -> None:
    """The session was opened by the allowed page; a foreign page that
    learns its URL still cannot write into it."""
    content_type, body, ok = SENDERS[sender]
    session = SockJSSession(endpoint, RECEIVERS[0], ALLOWED)
    assert await session.next_frame() == "o"
    assert await session.send("sub,echo") == 204

    async def send(frame: str, origin: str | None) -> int:
        data = body.format(json.dumps([frame]))
        async with endpoint.http.post(
            f"{session.url}/{sender}",
            data=data,
            headers={"Content-Type": content_type, **headers(origin)},
        ) as response:
            return response.status

    for origin in REFUSED:
        assert await send(f"msg,echo,from {origin}", origin) == 403
    assert await send("msg,echo,from the page", ALLOWED) == ok
    assert await send("msg,echo,no origin", None) == ok
    assert await session.messages() == ["msg,echo,from the page", "msg,echo,no origin"]


# -- WebSockets --------------------------------------------------------------

WEBSOCKETS = {
    "raw": "/multiplex/websocket",
    "sockjs": "/multiplex/000/{session}/websocket",
    "add_websocket_route": "/ws",
}


@pytest.mark.parametrize("kind", WEBSOCKETS)
async def test_websockets_refuse_foreign_origins(endpoint: Endpoint, kind: str) -> None:
    for origin in REFUSED:
        url = endpoint.ws(WEBSOCKETS[kind].format(session=uuid.uuid4().hex[:8]))
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await endpoint.http.ws_connect(url, origin=origin)
        assert refused.value.status == 403, origin
    assert endpoint.accepted() == 0


@pytest.mark.parametrize("origin", ACCEPTED)
@pytest.mark.parametrize("kind", WEBSOCKETS)
async def test_websockets_serve_the_allowed_origin(
    endpoint: Endpoint, kind: str, origin: str | None
) -> None:
    url = endpoint.ws(WEBSOCKETS[kind].format(session=uuid.uuid4().hex[:8]))
    async with endpoint.http.ws_connect(url, origin=origin) as ws:
        if kind == "sockjs":
            assert await ws.receive_str() == "o"
            await ws.send_json(["sub,echo", "msg,echo,hi"])
            assert await ws.receive_str() == 'a["msg,echo,hi"]'
        else:
            await ws.send_str("sub,echo")
            await ws.send_str("msg,echo,hi")
            assert await ws.receive_str() == "msg,echo,hi"
    assert endpoint.accepted() == 1
