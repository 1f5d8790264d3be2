"""aiohttp's requests and WebSockets, in the shapes the asyncio layer takes.

:class:`Exchange` is one request as an
:class:`~websocket_multiplex.asyncio.sockjs.HTTPExchange`; :class:`AiohttpWebSocket`
one WebSocket as a :class:`~websocket_multiplex.asyncio.websocket.WebSocket`.
Nothing SockJS or multiplex is decided here.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable
from typing import Final

from aiohttp import WSMsgType, hdrs, web

from ..asyncio.websocket import CLOSE_GRACE, MessageHandler
from ..request import Headers, RequestInfo
from ..sockjs.http import HeaderList, Request, Response

__all__ = [
    "AiohttpWebSocket",
    "Exchange",
    "accept_websocket",
    "is_upgrade",
    "request_info",
]

_DISCONNECT_POLL: Final = 1.0  # seconds between two looks at a held request
_ENDS: Final = frozenset({WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.CLOSED})


def request_info(
    request: web.BaseRequest, headers: Headers | None = None
) -> RequestInfo:
    """Copy what a service may need from an aiohttp request (``headers``:
    its headers, if they were copied already)."""
    return RequestInfo(
        path=request.path,
        query_string=request.rel_url.raw_query_string,  # as sent, like ASGI
        headers=Headers(request.headers.items()) if headers is None else headers,
        remote_address=request.remote,
    )


def is_upgrade(request: web.BaseRequest) -> bool:
    """Whether ``request`` asks for a WebSocket."""
    headers = request.headers
    return (
        headers.get(hdrs.UPGRADE, "").lower() == "websocket"
        and "upgrade" in headers.get(hdrs.CONNECTION, "").lower()
    )


class Exchange:
    """One aiohttp request below a SockJS prefix, and its response.

    The handler returns :attr:`response` once the endpoint is done.
    """

    def __init__(
        self,
        request: web.Request,
        path: str,
        *,
        max_message_size: int,
        heartbeat: float | None,
        compress: bool,
    ) -> None:
        self._aiohttp = request
        self._request = Request(
            request.method,
            path,
            request.rel_url.raw_query_string,
            Headers(request.headers.items()),
            is_upgrade(request),
        )
        self._info: RequestInfo | None = None
        self._ws_options = (max_message_size, heartbeat, compress)
        self.response: web.StreamResponse | None = None

    @property
    def request(self) -> Request:
        return self._request

    @property
    def info(self) -> RequestInfo:
        if self._info is None:
            self._info = request_info(self._aiohttp, self._request.headers)
        return self._info

    async def read_body(self, limit: int) -> bytes | None:
        request = self._aiohttp
        length = request.content_length
        if length is not None and length > limit:
            return None
        body = bytearray()
        async for chunk in request.content.iter_chunked(1 << 16):
            body += chunk
            if len(body) > limit:
                return None
        return bytes(body)

    async def respond(self, response: Response) -> None:
        self.response = web.Response(
            status=response.status,
            headers=_multidict(response.headers),
            body=response.body or None,
        )

    async def start(self, status: int, headers: HeaderList) -> None:
        response = web.StreamResponse(status=status, headers=_multidict(headers))
        if self._aiohttp.version < (1, 1):
            # No chunks in HTTP/1.0: only closing the connection ends the
            # body, which aiohttp forgets when the client asked to keep it.
            response.force_close()
        self.response = response
        await _prepared(response, self._aiohttp)

    async def write(self, data: bytes) -> None:
        assert self.response is not None
        await self.response.write(data)  # ClientConnectionResetError: gone

    async def end(self) -> None:
        if self.response is not None and self.response.prepared:
            await self.response.write_eof()

    def client_gone(self) -> bool:
        transport = self._aiohttp.transport
        return transport is None or transport.is_closing()

    async def disconnected(self) -> None:
        # With handler_cancellation (adapters.aiohttp.serve turns it on),
        # aiohttp cancels the whole handler at once; without it, this sees
        # it within a second.
        while not self.client_gone():
            await asyncio.sleep(_DISCONNECT_POLL)

    async def upgrade(self) -> AiohttpWebSocket | None:
        max_message_size, heartbeat, compress = self._ws_options
        try:
            ws = await accept_websocket(
                self._aiohttp,
                heartbeat=heartbeat,
                max_msg_size=max_message_size,
                compress=compress,
            )
        except web.HTTPException as refused:  # a broken handshake
            self.response = web.Response(status=refused.status, text=refused.text)
            return None
        self.response = ws.response
        return ws


async def accept_websocket(
    request: web.Request, *, heartbeat: float | None, max_msg_size: int, compress: bool
) -> AiohttpWebSocket:
    """Complete the handshake of ``request``; raises ``web.HTTPException``
    (400, say) when it is not a valid one. Messages of up to
    ``max_msg_size`` bytes are taken."""
    ws = web.WebSocketResponse(
        heartbeat=heartbeat,
        max_msg_size=max_msg_size + 1,  # aiohttp refuses max_msg_size itself
        compress=compress,
        timeout=CLOSE_GRACE,  # for the client's answer to our close frame
    )
    try:
        await ws.prepare(request)
    except (ConnectionError, RuntimeError) as exc:  # reset during prepare()
        raise ConnectionError(f"the client left: {exc!r}") from None
    return AiohttpWebSocket(ws, request.transport)


async def _prepared(response: web.StreamResponse, request: web.Request) -> None:
    try:
        await response.prepare(request)
    except (ConnectionError, RuntimeError) as exc:  # reset during prepare()
        raise ConnectionError(f"the client left: {exc!r}") from None


def _multidict(headers: HeaderList) -> list[tuple[str, str]]:
    return list(headers)


class AiohttpWebSocket:
    """An accepted aiohttp WebSocket, as the carriers take it.

    Closing from another task than the one reading is done with care:
    aiohttp's ``close()``, called while ``receive()`` waits, takes the
    closing handshake for done and shuts the socket at once. What the
    client still sends then hits a closed socket, TCP answers with a
    reset, and the reset can destroy our close frame before the client
    reads it (a flooding client saw 1006 instead of 4029). So the reading
    stops first; with no ``receive()`` pending, ``close()`` reads and drops
    what the client still sends until its close frame (RFC 6455, 7.1.1).
    """

    __slots__ = (
        "_closed",
        "_in_receive",
        "_read_ended",
        "_reader",
        "_reader_stopped",
        "_socket",
        "_stopping",
        "_ws",
        "response",
    )

    def __init__(self, ws: web.WebSocketResponse, socket: asyncio.BaseTransport | None):
        self.response = ws
        """What the aiohttp handler returns."""
        self._ws = ws
        self._socket = socket
        self._reader: asyncio.Task[object] | None = None
        self._read_ended = False
        self._stopping = False
        # Made only when close() needs them: a server holds many idle sockets.
        self._reader_stopped: asyncio.Future[None] | None = None
        self._closed: asyncio.Event | None = None

    async def read(self, handle: MessageHandler) -> None:
        # While it waits for the next message, this frame would hold on to
        # the last one (kilobytes per idle connection): hence the del.
        self._reader = reader = asyncio.current_task()
        receive = self._ws.receive
        try:
            while True:
                message = await receive()
                kind = message.type
                if kind is WSMsgType.TEXT or kind is WSMsgType.BINARY:
                    pause = handle(message.data)
                    del message
                    if pause is not None:
                        await pause
                elif kind in _ENDS or kind is WSMsgType.ERROR:
                    return
        except asyncio.CancelledError:
            if not self._stopping or (reader is not None and reader.uncancel()):
                raise  # not (only) ours: aiohttp's, or the server's
        finally:
            self._read_ended = True
            stopped = self._reader_stopped
            if stopped is not None and not stopped.done():
                stopped.set_result(None)

    def can_write_now(self) -> bool:
        # Nothing buffered ahead: aiohttp writes an uncompressed message to
        # the socket at once, and waits only when the buffer is full.
        socket = self._socket
        return (
            isinstance(socket, asyncio.WriteTransport)
            and not self._ws.closed
            and not socket.is_closing()
            and not socket.get_write_buffer_size()
        )

    def send(self, text: str) -> Awaitable[None]:
        if self._ws.closed:
            raise ConnectionError("the WebSocket is closed")
        return self._ws.send_str(text)

    async def close(self, code: int, reason: str) -> None:
        if self._closed is not None:  # one close at a time, and once
            await self._closed.wait()
            return
        closed = self._closed = asyncio.Event()
        if self._socket is not None:
            asyncio.get_running_loop().call_later(
                CLOSE_GRACE, _abort_if_stuck, self._socket
            )
        try:
            await self._stop_reading()
            await self._ws.close(code=code, message=reason.encode())
        finally:
            closed.set()

    async def _stop_reading(self) -> None:
        reader = self._reader
        if reader is None or reader is asyncio.current_task() or self._read_ended:
            return
        self._stopping = True
        stopped = self._reader_stopped = asyncio.get_running_loop().create_future()
        reader.cancel()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(CLOSE_GRACE):
                await stopped

    async def wait_closed(self) -> None:
        self._read_ended = True
        if self._closed is not None:
            await self._closed.wait()


def _abort_if_stuck(socket: asyncio.BaseTransport) -> None:
    """Reset a connection whose client still has not read what we wrote.

    A client that stopped reading never reads the close frame either, and
    aiohttp would wait on it forever, holding the socket and its buffers.
    """
    if isinstance(socket, asyncio.WriteTransport) and socket.get_write_buffer_size():
        # A graceful close (is_closing() already true) would wait for the
        # buffer to drain: that is exactly what never happens here.
        socket.abort()
