"""Multiplex connections over aiohttp WebSockets: raw frames or SockJS framing.

Both carriers hand the writer a whole batch of frames at once
(:meth:`send_many`): whatever the handlers queued in one event-loop turn.
With SockJS framing the batch leaves as one ``a[...]`` message, so one
syscall carries many frames. We serve SockJS's websocket transport here
rather than through aio-libs ``sockjs``: its session queue stamps every
message with ``datetime.now()`` and wakes a writer task per message, which
cost more than the rest of our hot path together (docs/PERFORMANCE.md).
The SockJS framing itself is small and stable (sockjs-protocol 0.3): ``o``
once, ``h`` when idle, ``a[...]`` for messages, ``c[code,"reason"]`` last.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Callable
from typing import Any, Final

from aiohttp import WSMsgType, web

from ..asyncio.server import MultiplexServer
from ..request import RequestInfo
from ._closing import CLOSE_GRACE, abort_later_if_stuck, fit_close_reason
from ._cors import Handler
from ._requests import request_info

_encode_array: Final = json.JSONEncoder(separators=(",", ":")).encode


class WebSocketCarrier:
    """The :class:`~websocket_multiplex.Transport` over a WebSocket, one
    frame per WebSocket message."""

    def __init__(
        self,
        ws: web.WebSocketResponse,
        request: RequestInfo,
        socket: asyncio.BaseTransport | None,
    ) -> None:
        self._ws = ws
        self._request = request
        self._socket = socket
        self._reader: asyncio.Task[Any] | None = None
        self._read_ended = False
        self._stopping_reader = False
        # Made only when close() needs them: a server holds many idle carriers.
        self._reader_stopped: asyncio.Future[None] | None = None
        self._closed: asyncio.Event | None = None

    @property
    def request(self) -> RequestInfo:
        return self._request

    async def send(self, text: str) -> None:
        await self.send_many([text])

    async def send_many(self, texts: list[str]) -> None:
        if self._ws.closed:
            raise ConnectionError("the WebSocket is closed")
        for text in texts:
            await self._ws.send_str(text)

    async def read(self, receive: Callable[[str], None]) -> None:
        """Hand every frame to ``receive`` until the WebSocket ends or
        :meth:`close` stops the reading."""
        self._reader = reader = asyncio.current_task()
        try:
            await self._pump(receive)
        except asyncio.CancelledError:
            if not self._stopping_reader or (reader and reader.uncancel()):
                raise  # not (only) ours: aiohttp's, or the server's
        finally:
            self._read_ended = True
            stopped = self._reader_stopped
            if stopped is not None and not stopped.done():
                stopped.set_result(None)

    async def _pump(self, receive: Callable[[str], None]) -> None:
        await _pump_raw(self._ws, receive)

    async def close(self, code: int, reason: str) -> None:
        if self._closed is not None:  # one close at a time, and once
            await self._closed.wait()
            return
        closed = self._closed = asyncio.Event()
        if self._socket is not None:
            abort_later_if_stuck(self._socket)
        try:
            await self._stop_reading()
            await self._close(code, reason)
        finally:
            closed.set()

    async def _stop_reading(self) -> None:
        """End :meth:`read` before closing from another task.

        aiohttp's ``close()``, called while another task waits in
        ``receive()``, takes the closing handshake for done and shuts the
        socket at once. Whatever the client is still sending then arrives
        at a closed socket, TCP answers it with a reset, and the reset can
        destroy our close frame before the client reads it: a client that
        flooded us saw 1006 instead of 4029. With no ``receive()`` pending,
        ``close()`` reads (and drops) what the client still sends until its
        close frame comes back (RFC 6455, 7.1.1), then shuts the socket.
        """
        reader = self._reader
        if reader is None or reader is asyncio.current_task() or self._read_ended:
            return
        self._stopping_reader = True
        self._reader_stopped = asyncio.get_running_loop().create_future()
        reader.cancel()
        await self._reader_stopped

    async def _close(self, code: int, reason: str) -> None:
        await self._ws.close(code=code, message=fit_close_reason(reason).encode())

    async def wait_closed(self) -> None:
        """Wait for a :meth:`close` under way to end: the request handler
        must not return before, or aiohttp shuts the socket under it.
        Bounded: a client has ``CLOSE_GRACE`` seconds to answer our close
        frame, and one that does not read is reset after as long."""
        if self._closed is not None:
            await self._closed.wait()

    def start(self) -> None:
        """Called once the connection is accepted."""

    def stop(self) -> None:
        """Called once the WebSocket has ended."""


class SockJSWebSocketCarrier(WebSocketCarrier):
    """SockJS framing over a WebSocket, as sockjs-client's websocket
    transport speaks it."""

    def __init__(
        self,
        ws: web.WebSocketResponse,
        request: RequestInfo,
        socket: asyncio.BaseTransport | None,
        heartbeat_delay: float,
    ) -> None:
        super().__init__(ws, request, socket)
        self._heartbeat_delay = heartbeat_delay
        self._heartbeat: asyncio.TimerHandle | None = None
        self._sent_since_beat = False

    async def send_many(self, texts: list[str]) -> None:
        if self._ws.closed:
            raise ConnectionError("the WebSocket is closed")
        self._sent_since_beat = True
        await self._ws.send_str("a" + _encode_array(texts))

    async def _pump(self, receive: Callable[[str], None]) -> None:
        await _pump_sockjs(self._ws, receive)

    async def _close(self, code: int, reason: str) -> None:
        # SockJS reserves 1000 and 3000-4999 for applications.
        code = code if code == 1000 or code >= 3000 else 3000
        if not self._ws.closed:
            await self._ws.send_str(f"c{_encode_array([code, reason])}")
        await super()._close(code, reason)

    def start(self) -> None:
        self._schedule_heartbeat()

    def stop(self) -> None:
        if self._heartbeat is not None:
            self._heartbeat.cancel()

    def _schedule_heartbeat(self) -> None:
        loop = asyncio.get_running_loop()
        self._heartbeat = loop.call_later(self._heartbeat_delay, self._beat, loop)

    def _beat(self, loop: asyncio.AbstractEventLoop) -> None:
        """Send ``h`` if nothing else went out since the last beat: SockJS
        clients and proxies take a silent connection for a dead one."""
        if self._ws.closed:
            return
        if not self._sent_since_beat:
            loop.create_task(self._send_heartbeat())
        self._sent_since_beat = False
        self._schedule_heartbeat()

    async def _send_heartbeat(self) -> None:
        with contextlib.suppress(ConnectionError):  # the reader reports it
            await self._ws.send_str("h")


def websocket_handler(
    server: MultiplexServer,
    *,
    heartbeat: float | None,
    max_msg_size: int,
    compress: bool,
    sockjs_heartbeat: float | None = None,
) -> Handler:
    """An aiohttp handler serving ``server``; SockJS framing when
    ``sockjs_heartbeat`` (its ``h`` interval) is given."""

    def carrier_for(
        request: web.Request, ws: web.WebSocketResponse
    ) -> WebSocketCarrier:
        info = request_info(request)
        if sockjs_heartbeat is None:
            return WebSocketCarrier(ws, info, request.transport)
        return SockJSWebSocketCarrier(ws, info, request.transport, sockjs_heartbeat)

    async def handle(request: web.Request) -> web.StreamResponse:
        ws = web.WebSocketResponse(
            heartbeat=heartbeat,
            max_msg_size=max_msg_size,
            compress=compress,
            timeout=CLOSE_GRACE,  # for the client's answer to our close frame
        )
        await ws.prepare(request)
        carrier = carrier_for(request, ws)
        if sockjs_heartbeat is not None:
            await ws.send_str("o")
        connection = server.accept(carrier)
        carrier.start()
        try:
            await carrier.read(connection.receive)
        finally:
            carrier.stop()
            await connection.connection_lost()
            await carrier.wait_closed()
        return ws

    return handle


# While a pump waits for the next message, its locals would hold on to the
# last one: kilobytes per idle connection. Hence the ``del``s and helpers.
# They call ``ws.receive()`` rather than ``async for``: one coroutine less
# per message.
_ENDS: Final = frozenset({WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.CLOSED})


async def _pump_raw(ws: web.WebSocketResponse, receive: Callable[[str], None]) -> None:
    while True:
        message = await ws.receive()
        if message.type is WSMsgType.TEXT:  # binary is not part of the protocol
            receive(message.data)
        elif message.type in _ENDS:
            return
        del message


async def _pump_sockjs(
    ws: web.WebSocketResponse, receive: Callable[[str], None]
) -> None:
    while True:
        message = await ws.receive()
        if message.type is WSMsgType.TEXT:
            if not _receive_sockjs(message.data, receive):
                await ws.close(code=1002, message=b"Broken framing.")
                return  # as sockjs-node answers broken JSON
        elif message.type in _ENDS:
            return
        del message


def _receive_sockjs(data: str, receive: Callable[[str], None]) -> bool:
    """Deliver the frames of one SockJS message; ``False``: broken framing."""
    if not data:
        return True
    if data[:2] == '["' and data[-2:] == '"]' and len(data) > 3:
        text = data[2:-2]
        if text.isprintable() and '"' not in text and "\\" not in text:
            receive(text)  # one message, nothing escaped: what json.loads gives
            return True
    try:
        frames = json.loads(data)
    except (ValueError, RecursionError):  # broken, or nested too deep
        return False
    if isinstance(frames, str):
        receive(frames)
    elif isinstance(frames, list):
        for frame in frames:
            if isinstance(frame, str):
                receive(frame)
    return True
