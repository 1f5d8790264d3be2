"""Carriers over a WebSocket: raw frames, or SockJS's websocket framing.

A driver (aiohttp, ASGI) wraps its WebSocket in the small
:class:`WebSocket` protocol and calls :func:`serve_websocket`; everything
else, for every framework, is here: the framing, SockJS's ``o``, ``h``
and ``c[...]`` frames, the pace of incoming frames, the end of the
recipient. Outgoing batches leave as one WebSocket message with SockJS
framing (``a[...]``), so one write carries many frames.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import Awaitable, Callable
from typing import Final, Protocol

from ..codes import CloseCode
from ..exceptions import BrokenFraming
from ..limits import Limits
from ..request import RequestInfo
from ..sockjs.frames import (
    HEARTBEAT,
    OPEN,
    close_frame,
    decode_client_message,
    messages_frame,
    only_message,
)
from .transport import Inlet, Recipient, Transport

__all__ = [
    "MessageHandler",
    "RawWebSocketCarrier",
    "SockJSWebSocketCarrier",
    "WebSocket",
    "fit_close_reason",
    "serve_websocket",
    "sockjs_close_code",
]

_SURROGATE: Final = re.compile("[\ud800-\udfff]")

CLOSE_GRACE: Final = 5.0
"""Seconds a client has to answer our close frame before its socket goes."""


MessageHandler = Callable[[str | bytes], Awaitable[None] | None]
"""What a carrier does with each message: returns what to await before the
next one is read, if anything."""


class WebSocket(Protocol):
    """An accepted WebSocket as a driver offers it."""

    async def read(self, handle: MessageHandler) -> None:
        """Call ``handle`` with every message, text or binary, awaiting what
        it returns before reading on, until the socket ends or :meth:`close`
        stops the reading."""
        ...

    def send(self, text: str) -> Awaitable[None]:
        """Send a text message; raise ``ConnectionError`` once closed."""
        ...

    def can_write_now(self) -> bool:
        """Whether a message sent now would go out without waiting (nothing
        is buffered ahead of it); ``False`` when the driver cannot tell."""
        ...

    async def close(self, code: int, reason: str) -> None:
        """Close with ``code`` and ``reason`` (already fit to a close frame);
        bounded in time, safe to call from any task, more than once."""
        ...

    async def wait_closed(self) -> None:
        """Return once a :meth:`close` under way has ended (at once if none
        was started): the driver must not drop the socket before."""
        ...


def fit_close_reason(reason: str) -> str:
    """``reason`` cut to what a close frame carries: 123 bytes of UTF-8
    (RFC 6455, 5.5), on a character boundary. Longer makes the frame invalid
    and the client fails the connection (1002) instead of reading the code."""
    return reason.encode()[:123].decode(errors="ignore")


def _well_formed(text: str) -> str:
    """``text`` with its lone surrogates as U+FFFD, which UTF-8 can carry:
    what a browser's ``WebSocket.send`` does with them. (SockJS's JSON
    carries them escaped; a plain WebSocket has no way to.)"""
    return _SURROGATE.sub("\ufffd", text)


def sockjs_close_code(code: int) -> int:
    """SockJS leaves applications 1000 and 3000-4999; other codes become 3000."""
    if code == CloseCode.NORMAL or CloseCode.APPLICATION <= code <= 4999:
        return code
    return CloseCode.APPLICATION


class RawWebSocketCarrier:
    """The :class:`~websocket_multiplex.Transport` over a WebSocket, one
    frame per message (a plain WebSocket, or SockJS's ``<prefix>/websocket``)."""

    def __init__(self, ws: WebSocket, request: RequestInfo) -> None:
        self._ws = ws
        self._request = request

    @property
    def request(self) -> RequestInfo:
        return self._request

    async def send(self, text: str) -> None:
        try:
            await self._ws.send(text)
        except UnicodeEncodeError:  # a lone surrogate, from a SockJS peer
            await self._ws.send(_well_formed(text))

    def can_write_now(self) -> bool:
        return self._ws.can_write_now()

    async def send_many(self, texts: list[str]) -> None:
        send = self._ws.send
        for text in texts:
            try:
                await send(text)
            except UnicodeEncodeError:
                await send(_well_formed(text))

    async def close(self, code: int, reason: str) -> None:
        await self._ws.close(code, fit_close_reason(reason))

    def start(self) -> None:
        """The recipient is ready: begin what the framing sends by itself."""

    def stop(self) -> None:
        """The socket has ended."""

    async def read(self, inlet: Inlet) -> None:
        """Hand every message to ``inlet`` until the socket ends."""
        feed_one, ignored = inlet.feed_one, inlet.ignored

        def handle(message: str | bytes) -> Awaitable[None] | None:
            return feed_one(message) if type(message) is str else ignored()

        await self._ws.read(handle)


class SockJSWebSocketCarrier(RawWebSocketCarrier):
    """SockJS framing over a WebSocket, as sockjs-client's websocket
    transport speaks it: ``o`` first, ``a[...]`` batches, ``h`` when idle,
    ``c[code,"reason"]`` last; the client sends JSON arrays of messages."""

    def __init__(
        self,
        ws: WebSocket,
        request: RequestInfo,
        heartbeat_delay: float,
        limits: Limits,
    ) -> None:
        super().__init__(ws, request)
        self._heartbeat_delay = heartbeat_delay
        self._max_messages = limits.max_message_frames
        self._heartbeat: asyncio.TimerHandle | None = None
        self._sent_since_beat = False
        self._beating: asyncio.Task[None] | None = None
        self._closing = False

    async def send(self, text: str) -> None:
        await self.send_many([text])

    def can_write_now(self) -> bool:
        return not self._closing and self._ws.can_write_now()

    async def send_many(self, texts: list[str]) -> None:
        if self._closing:
            raise ConnectionError("the SockJS session is closed")
        self._sent_since_beat = True
        await self._ws.send(messages_frame(texts))

    async def close(self, code: int, reason: str) -> None:
        if not self._closing:
            self._closing = True
            code = sockjs_close_code(code)
            with contextlib.suppress(ConnectionError):
                await self._ws.send(close_frame(code, reason))
        await super().close(sockjs_close_code(code), reason)

    def start(self) -> None:
        self._schedule_heartbeat()

    def stop(self) -> None:
        if self._heartbeat is not None:
            self._heartbeat.cancel()
            self._heartbeat = None

    async def read(self, inlet: Inlet) -> None:
        ws, limit = self._ws, self._max_messages
        feed, feed_one, ignored = inlet.feed, inlet.feed_one, inlet.ignored

        def handle(message: str | bytes) -> Awaitable[None] | None:
            if type(message) is not str:  # not SockJS framing: ignored
                return ignored()
            text = only_message(message)  # the common case, without decoding
            if text is not None:
                return feed_one(text)
            try:
                texts = decode_client_message(
                    message, max_messages=limit, websocket=True
                )
            except BrokenFraming as exc:  # closed, as sockjs-node answers it
                return ws.close(*_refusal(exc))
            return feed(texts)

        await ws.read(handle)

    def _schedule_heartbeat(self) -> None:
        loop = asyncio.get_running_loop()
        self._heartbeat = loop.call_later(self._heartbeat_delay, self._beat, loop)

    def _beat(self, loop: asyncio.AbstractEventLoop) -> None:
        """``h`` if nothing else went out since the last beat: SockJS clients
        and proxies take a silent connection for a dead one."""
        if self._closing:
            return
        if not self._sent_since_beat:
            self._beating = loop.create_task(self._send_heartbeat())  # kept
        self._sent_since_beat = False
        self._schedule_heartbeat()

    async def _send_heartbeat(self) -> None:
        with contextlib.suppress(ConnectionError):  # the reader sees the end
            await self._ws.send(HEARTBEAT)


def _refusal(exc: BrokenFraming) -> tuple[int, str]:
    """How a SockJS WebSocket closes on a message it cannot take."""
    text = str(exc)
    if text.startswith("Too many"):
        return CloseCode.MESSAGE_TOO_BIG, fit_close_reason(text)
    return CloseCode.PROTOCOL_ERROR, "Broken framing."  # sockjs-node's words


async def serve_websocket(
    ws: WebSocket,
    request: RequestInfo,
    accept: Callable[[Transport], Recipient],
    limits: Limits,
    *,
    sockjs_heartbeat: float | None = None,
) -> None:
    """Carry one accepted WebSocket to the recipient ``accept`` makes, until
    the socket ends; SockJS framing when ``sockjs_heartbeat`` (the ``h``
    interval) is given."""
    carrier: RawWebSocketCarrier
    if sockjs_heartbeat is None:
        carrier = RawWebSocketCarrier(ws, request)
    else:
        carrier = SockJSWebSocketCarrier(ws, request, sockjs_heartbeat, limits)
        try:
            await ws.send(OPEN)
        except ConnectionError:
            return
    inlet = Inlet(accept(carrier), limits)
    carrier.start()
    try:
        await carrier.read(inlet)
    finally:
        carrier.stop()
        await inlet.end()
        await ws.wait_closed()
