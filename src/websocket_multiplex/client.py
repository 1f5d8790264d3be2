"""Connect to a multiplexed server from Python: raw WebSocket or SockJS.

::

    from websocket_multiplex.client import connect

    async with connect("http://127.0.0.1:9999/multiplex") as client:
        async with client.channel("ann") as ann:
            print(await ann.receive())          # Ann says hi!
            await ann.send("hello")
            print(await ann.receive())          # Ann nods: hello

``ws://`` and ``wss://`` URLs are raw WebSocket endpoints (e.g.
``ws://host/multiplex/websocket``); ``http://`` and ``https://`` URLs are
SockJS endpoints, spoken over SockJS's websocket transport, or over plain
HTTP requests with ``transport="xhr-polling"`` (for networks that let no
WebSocket through). Works against this package's server and the original
node server alike.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import string
from collections import deque
from collections.abc import Callable, Generator, Mapping
from types import TracebackType
from typing import TYPE_CHECKING, Final
from urllib.parse import urlsplit, urlunsplit

from .asyncio.client import Backoff, Carrier, ClientState, MultiplexClient
from .exceptions import BrokenFraming
from .sockjs.frames import OPEN, encode_client_message, parse_server_frame

if TYPE_CHECKING:
    import aiohttp

__all__ = [
    "RawWebSocketCarrier",
    "SockJSCarrier",
    "SockJSXhrPollingCarrier",
    "connect",
    "open_carrier",
]

TRANSPORTS: Final = ("websocket", "xhr-polling")
"""The SockJS transports :func:`open_carrier` speaks."""

CLOSE_FLUSH: Final = 2.0
"""Seconds an xhr-polling carrier's close waits for what was sent to go out."""


class RawWebSocketCarrier:
    """A plain WebSocket: each text message is one frame.

    ``close_frame`` is the ``(code, reason)`` of the server's close frame,
    once one came; ``None`` while open or when the connection was lost
    without one.
    """

    def __init__(
        self, http: aiohttp.ClientSession, ws: aiohttp.ClientWebSocketResponse
    ) -> None:
        self._http = http
        self._ws = ws
        self.close_frame: tuple[int, str] | None = None

    async def send(self, text: str) -> None:
        if self._ws.closed:
            raise ConnectionError("the WebSocket is closed")
        await self._ws.send_str(text)

    async def receive(self) -> str | None:
        import aiohttp

        message = await self._ws.receive()
        if message.type is aiohttp.WSMsgType.TEXT:
            return str(message.data)
        if message.type is aiohttp.WSMsgType.BINARY:
            return await self.receive()  # not part of the protocol
        if message.type is aiohttp.WSMsgType.CLOSE and self.close_frame is None:
            self.close_frame = (int(message.data), str(message.extra or ""))
        return None

    async def close(self) -> None:
        await self._ws.close()
        await self._http.close()


class SockJSCarrier(RawWebSocketCarrier):
    """SockJS's websocket transport: ``o``, ``h``, ``a[...]``, ``c[...]`` frames.

    ``close_frame`` comes from ``c[code,"reason"]``, or from the WebSocket
    close frame when the server sent no ``c``.
    """

    def __init__(
        self, http: aiohttp.ClientSession, ws: aiohttp.ClientWebSocketResponse
    ) -> None:
        super().__init__(http, ws)
        self._pending: deque[str] = deque()

    async def send(self, text: str) -> None:
        await super().send(encode_client_message([text]))

    async def receive(self) -> str | None:
        while not self._pending:
            text = await super().receive()
            if text is None:
                return None
            try:
                frame = parse_server_frame(text)
            except BrokenFraming:  # not SockJS: the connection is of no use
                await self._ws.close()
                return None
            if frame.kind == "a":
                self._pending.extend(frame.messages)
            elif frame.kind == "c":
                self.close_frame = (frame.code, frame.reason)
                return None
            # "o" opens, "h" is a heartbeat: nothing to deliver
        return self._pending.popleft()

    async def expect_open(self) -> None:
        frame = await RawWebSocketCarrier.receive(self)
        if frame != OPEN:
            raise ConnectionError(f"not a SockJS endpoint: first frame {frame!r}")


class SockJSXhrPollingCarrier:
    """SockJS's xhr-polling transport: each ``POST .../xhr`` answers one
    frame, each ``POST .../xhr_send`` carries a JSON array of messages.

    :meth:`send` queues; one send request at a time carries what is queued,
    at most ``max_batch`` characters of messages (a small body gets through
    a network that cuts long ones, and stays under the server's
    ``max_message_size``), so that many small sends make few requests.
    :meth:`send` waits while more than ``max_batch`` characters are queued.
    A poll or a send that fails, or a request with no answer for
    ``request_timeout`` seconds (an idle server answers ``h`` every 25 s),
    ends the carrier: :meth:`receive` returns ``None``, :meth:`send` raises
    :class:`ConnectionError`. ``close_frame`` is the server's
    ``c[code,"reason"]``, once one came.
    """

    def __init__(
        self,
        http: aiohttp.ClientSession,
        session_url: str,
        *,
        query: str = "",
        headers: Mapping[str, str] | None = None,
        max_batch: int = 16 * 1024,
        request_timeout: float = 45.0,
    ) -> None:
        import aiohttp

        self._http = http
        self._url = session_url.rstrip("/")
        self._query = f"?{query}" if query else ""
        self._failures = (OSError, TimeoutError, aiohttp.ClientError)
        self._timeout = aiohttp.ClientTimeout(total=request_timeout)
        self._headers = dict(headers or {})
        self._max_batch = max_batch
        self._pending: deque[str] = deque()  # received, not yet taken
        self._outgoing: deque[str] = deque()  # to send, in order
        self._outgoing_size = 0
        self._room = asyncio.Event()  # set while _outgoing_size <= max_batch
        self._room.set()
        self._sender: asyncio.Task[None] | None = None
        self._ended = False
        self.close_frame: tuple[int, str] | None = None

    async def open(self) -> None:
        """The first poll: the server's ``o`` opens the session."""
        if await self._poll() != OPEN:
            self._ended = True
            raise ConnectionError("not a SockJS endpoint: its first frame was no 'o'")

    async def send(self, text: str) -> None:
        if self._ended:
            raise ConnectionError("the SockJS session is closed")
        self._outgoing.append(text)
        self._outgoing_size += len(text)
        if self._sender is None:
            self._sender = asyncio.get_running_loop().create_task(self._send_queued())
        if self._outgoing_size > self._max_batch:
            self._room.clear()
            await self._room.wait()
            if self._ended:
                raise ConnectionError("the SockJS session is closed")

    async def _send_queued(self) -> None:
        """Carry what is queued, one send request after the other."""
        try:
            while self._outgoing and not self._ended:
                body = encode_client_message(self._take_batch()).encode()
                try:
                    status = await self._post("xhr_send", body)
                except self._failures:
                    status = 0
                if status not in (200, 204):
                    # Lost, or refused: the poll may go on, but the session
                    # is of no use. A resumed session sends it all again.
                    await self._end()
        finally:
            self._sender = None

    def _take_batch(self) -> list[str]:
        outgoing, size = self._outgoing, 0
        batch: list[str] = []
        while outgoing and (not batch or size + len(outgoing[0]) <= self._max_batch):
            text = outgoing.popleft()
            batch.append(text)
            size += len(text)
        self._outgoing_size -= size
        if self._outgoing_size <= self._max_batch:
            self._room.set()
        return batch

    async def receive(self) -> str | None:
        while not self._pending:
            if self._ended:
                return None
            try:
                text = await self._poll()
                frame = parse_server_frame(text)
            except (*self._failures, BrokenFraming):
                self._ended = True
                return None
            if frame.kind == "a":
                self._pending.extend(frame.messages)
            elif frame.kind == "c":
                self.close_frame = (frame.code, frame.reason)
                self._ended = True
                return None
        return self._pending.popleft()

    async def close(self) -> None:
        """Close, once what was sent went out (a goodbye, say), within
        :data:`CLOSE_FLUSH` seconds."""
        sender = self._sender
        if sender is not None and not self._ended:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(sender), CLOSE_FLUSH)
        await self._end()

    async def _end(self) -> None:
        self._ended = True
        self._room.set()  # senders waiting for room raise
        await self._http.close()  # ends a poll under way

    async def _poll(self) -> str:
        """One receiving request's frame, without its newline."""
        async with self._http.post(
            f"{self._url}/xhr{self._query}",
            headers=self._headers,
            timeout=self._timeout,
        ) as response:
            if response.status != 200:
                raise ConnectionError(f"xhr answered {response.status}")
            body = await response.text(encoding="utf-8", errors="replace")
        return body.rstrip("\n")

    async def _post(self, path: str, body: bytes) -> int:
        headers = {**self._headers, "Content-Type": "text/plain;charset=UTF-8"}
        async with self._http.post(
            f"{self._url}/{path}{self._query}",
            data=body,
            headers=headers,
            timeout=self._timeout,
        ) as response:
            await response.read()
            return response.status


def _sockjs_session_url(base: str, server: str | None = None) -> str:
    """``http://h/prefix?q`` -> ``http://h/prefix/<server>/<session>`` (the
    query goes on each request)."""
    url = urlsplit(base)
    if server is None:
        server = new_server_id()
    session = "".join(random.choices(string.ascii_lowercase + string.digits, k=8))
    return urlunsplit(
        (url.scheme, url.netloc, f"{url.path.rstrip('/')}/{server}/{session}", "", "")
    )


def _sockjs_websocket_url(base: str, server: str | None = None) -> str:
    """``http://h/prefix?q`` -> ``ws://h/prefix/<server>/<session>/websocket?q``.

    The query stays a query (servers may read e.g. a token from it); the
    fragment is never sent. ``server`` is the SockJS server id, the part
    of the URL a load balancer may route on (random if not given).
    """
    url = urlsplit(base)
    if server is None:
        server = new_server_id()
    session = "".join(random.choices(string.ascii_lowercase + string.digits, k=8))
    path = f"{url.path.rstrip('/')}/{server}/{session}/websocket"
    scheme = "wss" if url.scheme == "https" else "ws"
    return urlunsplit((scheme, url.netloc, path, url.query, ""))


def new_server_id() -> str:
    """A SockJS server id: three digits, as sockjs-client draws them."""
    return f"{random.randrange(1000):03d}"


async def open_carrier(
    url: str,
    *,
    headers: Mapping[str, str] | None = None,
    heartbeat: float | None = 20.0,
    open_timeout: float = 10.0,
    server_id: str | None = None,
    transport: str = "websocket",
) -> Carrier:
    """Open one carrier to ``url`` (see the module docstring for URL kinds).

    ``transport``: the SockJS transport for an ``http(s)://`` URL,
    ``"websocket"`` or ``"xhr-polling"`` (:class:`SockJSXhrPollingCarrier`).

    ``heartbeat`` pings the server every that many seconds and treats a
    missing pong as a dead connection, which is how a cut cable is noticed.
    ``server_id``: the SockJS server id in the URL (random if not given);
    :class:`connect` keeps one for all its carriers, so that a load
    balancer that routes on it (deploy/nginx.conf) takes a resuming client
    back to the worker that holds its session.
    """
    import aiohttp

    check_url(url, transport)
    if url.startswith(("http://", "https://")):
        if transport == "xhr-polling":
            return await _open_xhr_polling(url, headers, open_timeout, server_id)
        ws_url, sockjs = _sockjs_websocket_url(url, server_id), True
    else:
        ws_url, sockjs = url, False
    http = aiohttp.ClientSession()
    try:
        async with asyncio.timeout(open_timeout):
            ws = await http.ws_connect(
                ws_url, headers=headers, heartbeat=heartbeat, autoping=True
            )
            if not sockjs:
                return RawWebSocketCarrier(http, ws)
            carrier = SockJSCarrier(http, ws)
            await carrier.expect_open()
            return carrier
    except aiohttp.ClientConnectorError as exc:
        await http.close()
        raise _unreachable(exc) from exc
    except BaseException:
        await http.close()
        raise


def check_url(url: str, transport: str = "websocket") -> None:
    """Raise :class:`ValueError`, saying what to write, unless
    :func:`open_carrier` can open ``transport`` to ``url``."""
    if transport not in TRANSPORTS:
        raise ValueError(f"transport={transport!r}: use one of {', '.join(TRANSPORTS)}")
    if url.startswith(("ws://", "wss://")):
        if transport != "websocket":
            raise ValueError(
                f"{url!r}: {transport} is a SockJS transport: give the SockJS "
                "endpoint's http(s):// URL"
            )
    elif not url.startswith(("http://", "https://")):
        raise ValueError(f"{url!r}: use ws(s):// for WebSocket, http(s):// for SockJS")


async def _open_xhr_polling(
    url: str,
    headers: Mapping[str, str] | None,
    open_timeout: float,
    server_id: str | None,
) -> SockJSXhrPollingCarrier:
    import aiohttp

    http = aiohttp.ClientSession()
    carrier = SockJSXhrPollingCarrier(
        http,
        _sockjs_session_url(url, server_id),
        query=urlsplit(url).query,
        headers=headers,
    )
    try:
        async with asyncio.timeout(open_timeout):
            await carrier.open()
        return carrier
    except aiohttp.ClientConnectorError as exc:
        await http.close()
        raise _unreachable(exc) from exc
    except BaseException:
        await http.close()
        raise


def _unreachable(exc: aiohttp.ClientConnectorError) -> ConnectionError:
    """aiohttp's own words name its connection key ("ssl:default"), not
    why: say where, and the system's reason."""
    os_error = exc.os_error
    reason = os.strerror(os_error.errno) if os_error.errno else str(os_error)
    return ConnectionError(f"{exc.host}:{exc.port}: {reason}")


class connect:  # a class used like a function, as websockets.connect is
    """Connect to ``url``; await it, or use it as an async context manager.

    ``reconnect``: ``True`` (the default) reconnects with :class:`Backoff`'s
    defaults, a :class:`Backoff` sets the policy, ``False`` disables it.
    The first connection's errors are raised; later ones are retried.
    ``resume`` (the default, with ``reconnect``): with a server of ours, a
    lost connection carries on where it stopped, nothing lost or repeated
    (see :class:`MultiplexClient`).
    ``max_queue`` and ``max_queue_size`` (characters) bound each channel's
    unread messages (and requests), ``max_outstanding_requests`` the
    requests in flight per channel and direction
    (docs/PROTOCOL-EXTENSIONS.md, section 5). ``transport`` is the SockJS
    transport for an ``http(s)://`` URL: ``"websocket"`` (the default) or
    ``"xhr-polling"``, for networks that let no WebSocket through (see
    :func:`open_carrier`). ``on_state`` is
    called with each :class:`ClientState` change and a reason: first
    ``CONNECTING``, and at the end ``CLOSED`` with ``str()`` of
    ``client.disconnection`` (a
    :class:`~websocket_multiplex.Disconnection`: the application, the
    server's close code and reason, a lost connection, or giving up).
    """

    def __init__(
        self,
        url: str,
        *,
        reconnect: bool | Backoff = True,
        max_queue: int = 1024,
        max_queue_size: int = 1 << 20,
        headers: Mapping[str, str] | None = None,
        heartbeat: float | None = 20.0,
        open_timeout: float = 10.0,
        on_state: Callable[[ClientState, str], None] | None = None,
        resume: bool = True,
        max_outstanding_requests: int = 64,
        transport: str = "websocket",
    ) -> None:
        check_url(url, transport)  # now, not at the first connection
        backoff = Backoff() if reconnect is True else reconnect or None
        server_id = new_server_id()  # the same for every carrier: see open_carrier

        async def opener() -> Carrier:
            return await open_carrier(
                url,
                headers=headers,
                heartbeat=heartbeat,
                open_timeout=open_timeout,
                server_id=server_id,
                transport=transport,
            )

        self._client = MultiplexClient(
            opener,
            reconnect=backoff,
            max_queue=max_queue,
            max_queue_size=max_queue_size,
            on_state=on_state,
            resume=resume,
            max_outstanding_requests=max_outstanding_requests,
        )

    async def _start(self) -> MultiplexClient:
        await self._client.start()
        return self._client

    def __getattr__(self, name: str) -> object:
        # Only for what it lacks: the client's channel(), close()... used on
        # connect(...) itself, which connects only once awaited.
        if name.startswith("_") or not hasattr(MultiplexClient, name):
            raise AttributeError(name)
        raise AttributeError(
            f"connect(...) connects once awaited, and only then has {name!r}: "
            "write `client = await connect(url)` or `async with connect(url) "
            "as client:`"
        )

    def __await__(self) -> Generator[object, None, MultiplexClient]:
        return self._start().__await__()

    async def __aenter__(self) -> MultiplexClient:
        return await self._start()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self._client.close()
