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
SockJS endpoints, spoken over SockJS's websocket transport. Works against
this package's server and the original node server alike.
"""

from __future__ import annotations

import asyncio
import os
import random
import string
from collections import deque
from collections.abc import Callable, Generator, Mapping
from types import TracebackType
from typing import TYPE_CHECKING
from urllib.parse import urlsplit, urlunsplit

from .asyncio.client import Backoff, Carrier, ClientState, MultiplexClient
from .exceptions import BrokenFraming
from .sockjs.frames import OPEN, encode_client_message, parse_server_frame

if TYPE_CHECKING:
    import aiohttp

__all__ = ["RawWebSocketCarrier", "SockJSCarrier", "connect", "open_carrier"]


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
) -> Carrier:
    """Open one carrier to ``url`` (see the module docstring for URL kinds).

    ``heartbeat`` pings the server every that many seconds and treats a
    missing pong as a dead connection, which is how a cut cable is noticed.
    ``server_id``: the SockJS server id in the URL (random if not given);
    :class:`connect` keeps one for all its carriers, so that a load
    balancer that routes on it (deploy/nginx.conf) takes a resuming client
    back to the worker that holds its session.
    """
    import aiohttp

    if url.startswith(("http://", "https://")):
        ws_url, sockjs = _sockjs_websocket_url(url, server_id), True
    elif url.startswith(("ws://", "wss://")):
        ws_url, sockjs = url, False
    else:
        raise ValueError(f"{url!r}: use ws(s):// for WebSocket, http(s):// for SockJS")
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
        # Its own words name aiohttp's connection key ("ssl:default"), not
        # why: say where, and the system's reason.
        os_error = exc.os_error
        reason = os.strerror(os_error.errno) if os_error.errno else str(os_error)
        raise ConnectionError(f"{exc.host}:{exc.port}: {reason}") from exc
    except BaseException:
        await http.close()
        raise


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
    (docs/PROTOCOL-EXTENSIONS.md, section 5). ``on_state`` is
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
    ) -> None:
        backoff = Backoff() if reconnect is True else reconnect or None
        server_id = new_server_id()  # the same for every carrier: see open_carrier

        async def opener() -> Carrier:
            return await open_carrier(
                url,
                headers=headers,
                heartbeat=heartbeat,
                open_timeout=open_timeout,
                server_id=server_id,
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
