"""The embedded default: a multiplexer on aiohttp, over SockJS or a WebSocket.

:func:`add_sockjs_endpoint` mounts a SockJS endpoint (aio-libs ``sockjs``
0.13, every transport sockjs-client 1.x offers, and the raw WebSocket at
``<prefix>/websocket``); :func:`add_websocket_route` mounts a plain
WebSocket; :func:`add_client_routes` serves the browser client.

``sockjs`` 0.13 has gaps this module closes (SOCKJS-NOTES.md):

* it sends no CORS headers and answers ``OPTIONS`` with 405, so a page on
  another origin cannot even fetch ``/info``: we answer the way
  sockjs-node does, credentials included;
* a second receiving request for a held session is answered ``2010`` and
  then kills the session the first request holds: we keep the holder;
* a polling request the client abandoned goes unnoticed until the next
  heartbeat: we watch held requests and release them when their socket goes;
* a polling session whose client stops polling never expires (a leak): we
  start its ``disconnect_delay`` countdown whenever no request holds it;
* ``htmlfile`` loses messages containing ``</script>``: we escape ``<``;
* ``eventsource`` sends frames unescaped, but sockjs-client runs each one
  through ``decodeURI``: a ``%`` in any message kills the session. We
  escape ``%``, CR, LF and NUL as sockjs-node does;
* the iframe page loads sockjs-client from a CDN: ``sockjs_url`` chooses;
* its outgoing queue is unbounded: we measure it, and sending waits while
  it is above the server's ``Limits.write_limit``.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
from collections import deque
from collections.abc import Awaitable, Callable, Iterable
from datetime import UTC, datetime, timedelta
from importlib import resources
from typing import Any, Final

from aiohttp import WSMsgType, hdrs, web
from sockjs import Frame, MsgType, Session, SessionManager, SockjsMessage
from sockjs.route import SockJSRoute
from sockjs.transports import transport_handlers
from sockjs.transports.eventsource import EventsourceTransport
from sockjs.transports.htmlfile import HTMLFileTransport
from sockjs.transports.websocket import WebSocketTransport

from ..asyncio.connection import Connection
from ..asyncio.server import MultiplexServer
from ..request import Headers, RequestInfo

__all__ = [
    "DEFAULT_SOCKJS_URL",
    "add_client_routes",
    "add_metrics_route",
    "add_sockjs_endpoint",
    "add_websocket_route",
    "request_info",
]

DEFAULT_SOCKJS_URL: Final = (
    "https://cdn.jsdelivr.net/npm/sockjs-client@1.6.1/dist/sockjs.min.js"
)
"""Where the iframe transports load sockjs-client from unless told otherwise."""

_DISCONNECT_POLL: Final = 1.0  # seconds between checks of a held request
_CLOSE_GRACE: Final = 5.0  # seconds a closed client has to read what is queued
_SOCKJS_MAX_MESSAGE: Final = 4 * 1024 * 1024  # what sockjs's websockets accept
_YEAR: Final = 365 * 24 * 3600
_Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _abort_later_if_stuck(socket: asyncio.BaseTransport) -> None:
    asyncio.get_running_loop().call_later(_CLOSE_GRACE, _abort_if_stuck, socket)


def _abort_if_stuck(socket: asyncio.BaseTransport) -> None:
    """Reset a connection whose client still has not read what we wrote.

    A client that stopped reading never reads the close frame either, and
    aiohttp would wait on it forever, holding the socket and its buffers.
    """
    if isinstance(socket, asyncio.WriteTransport) and socket.get_write_buffer_size():
        # A graceful close (is_closing() already true) would wait for the
        # buffer to drain: that is exactly what never happens here.
        socket.abort()


def request_info(request: web.BaseRequest) -> RequestInfo:
    """Copy what a service may need from an aiohttp request."""
    return RequestInfo(
        path=request.path,
        query_string=request.query_string,
        headers=Headers(request.headers.items()),
        remote_address=request.remote,
    )


# -- SockJS ------------------------------------------------------------------


class _OutgoingCount(deque[tuple[Frame, Any]]):
    """sockjs's session queue, counting the message characters it holds."""

    def __init__(self, high_water: int) -> None:
        super().__init__()
        self.size = 0
        self.high_water = high_water
        self.drained = asyncio.Event()
        self.drained.set()

    def popleft(self) -> tuple[Frame, Any]:
        frame, data = super().popleft()
        if frame is Frame.MESSAGE:  # data: the list of messages packed so far
            self.size -= sum(map(len, data))
            if self.size <= self.high_water // 4:
                self.drained.set()
        return frame, data


class _BoundedSession(Session):  # type: ignore[misc]
    """A sockjs session whose outgoing queue is measured, for backpressure.

    sockjs queues without bound and packs what a polling client has not
    fetched into one ever-growing frame (SOCKJS-NOTES.md, 6); counting it
    lets :meth:`_SockJSTransport.send` wait instead.
    """

    def __init__(self, *args: Any, high_water: int, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._queue = self.outgoing = _OutgoingCount(high_water)

    def feed(self, frame: Frame, data: Any) -> None:
        if frame is Frame.MESSAGE:
            self.outgoing.size += len(data)
        super().feed(frame, data)


class _SockJSTransport:
    """The :class:`~websocket_multiplex.Transport` over one SockJS session."""

    def __init__(self, session: _BoundedSession, request: RequestInfo) -> None:
        self._session = session
        self._request = request

    @property
    def request(self) -> RequestInfo:
        return self._request

    async def send(self, text: str) -> None:
        if not self._session.send(text):
            raise ConnectionError("the SockJS session is closed")
        outgoing = self._session.outgoing
        if outgoing.size > outgoing.high_water:
            outgoing.drained.clear()
            await outgoing.drained.wait()

    async def close(self, code: int, reason: str) -> None:
        # SockJS reserves 1000 and 3000-4999 for applications.
        self._session.close(code if code == 1000 or code >= 3000 else 3000, reason)
        asyncio.get_running_loop().call_later(_CLOSE_GRACE, self._abort_if_stuck)

    def _abort_if_stuck(self) -> None:
        request = self._session.request  # None once no request holds it
        if request is not None and request.transport is not None:
            _abort_if_stuck(request.transport)


class _SessionBridge:
    """The sockjs handler: one multiplex Connection per SockJS session.

    State is keyed by the session object, not its id: sockjs renames
    duplicate websocket session ids behind our back.
    """

    def __init__(self, server: MultiplexServer) -> None:
        self.server = server
        self.connections: dict[Session, Connection] = {}
        self._endings: set[asyncio.Task[None]] = set()

    async def __call__(
        self, manager: SessionManager, session: Session, message: SockjsMessage
    ) -> None:
        if message.type is MsgType.MESSAGE:
            connection = self.connections.get(session)
            if connection is not None and isinstance(message.data, str):
                connection.receive(message.data)
        elif message.type is MsgType.OPEN:
            # session.request is cleared when the request ends: copy it now.
            transport = _SockJSTransport(session, request_info(session.request))
            self.connections[session] = self.server.accept(transport)
        else:  # CLOSE or CLOSED
            self._end(session)

    def _end(self, session: Session) -> None:
        connection = self.connections.pop(session, None)
        if connection is None:
            return
        # Channels close now; waiting for their handlers must not hold up
        # the sockjs transport that told us.
        task = asyncio.get_running_loop().create_task(connection.connection_lost())
        self._endings.add(task)
        task.add_done_callback(self._endings.discard)


def _keeps_holder_and_watches_disconnect(base: type[Any]) -> type[Any]:
    """Subclass a sockjs receiving transport to fix two of its flaws."""

    async def handle_session(self: Any) -> None:
        if self.manager.is_acquired(self.session):
            # Another request holds the session: it answers 2010, and the
            # route must not close the holder's session on the way out.
            self.create_session = False
        work = asyncio.ensure_future(base.handle_session(self))
        watcher = asyncio.ensure_future(_wait_disconnect(self.request))
        try:
            await asyncio.wait([work, watcher], return_when=asyncio.FIRST_COMPLETED)
        finally:
            watcher.cancel()
            if not work.done():
                work.cancel()  # the client went away: release the session
            await asyncio.gather(work, return_exceptions=True)
            if not self.manager.is_acquired(self.session):
                # sockjs never sets an expiry on a released polling session,
                # so a client that stops polling would leak it forever.
                self.session.expire()
        if work.done() and not work.cancelled() and work.exception() is not None:
            raise work.exception()

    return type(base.__name__, (base,), {"handle_session": handle_session})


async def _wait_disconnect(request: web.Request) -> None:
    while True:
        transport = request.transport
        if transport is None or transport.is_closing():
            return
        await asyncio.sleep(_DISCONNECT_POLL)


class _SafeHTMLFileTransport(HTMLFileTransport):  # type: ignore[misc]
    """htmlfile wraps each frame in ``<script>``: ``</script>`` must not end it."""

    async def _send(self, text: str) -> bool:
        script = f"<script>\np({_script_safe_json(text)});\n</script>\r\n"
        return await super(HTMLFileTransport, self)._send(script)  # type: ignore[no-any-return]


class _SafeEventsourceTransport(EventsourceTransport):  # type: ignore[misc]
    """Server-sent events end at a newline and are ``decodeURI``-d by the client."""

    async def _send(self, text: str) -> bool:
        event = f"data: {text.translate(_EVENTSOURCE_ESCAPES)}\r\n\r\n"
        return await super(EventsourceTransport, self)._send(event)  # type: ignore[no-any-return]


_EVENTSOURCE_ESCAPES: Final = str.maketrans(
    {"%": "%25", "\r": "%0D", "\n": "%0A", "\0": "%00"}
)


def _script_safe_json(text: str) -> str:
    return json.dumps(text).replace("<", "\\u003c").replace(">", "\\u003e")


class _QuietWebSocketTransport(WebSocketTransport):  # type: ignore[misc]
    """sockjs never retrieves its writer task's error: a client reset (one
    we aborted for not reading, say) would log "exception never retrieved"."""

    async def server(self, ws: web.WebSocketResponse) -> None:
        with contextlib.suppress(ConnectionError):  # the reader reports it
            await super().server(ws)


_SAFER: Final[dict[type[Any], type[Any]]] = {
    HTMLFileTransport: _SafeHTMLFileTransport,
    EventsourceTransport: _SafeEventsourceTransport,
    WebSocketTransport: _QuietWebSocketTransport,
}


def _fixed_transport_handlers() -> dict[str, type[Any]]:
    fixed: dict[str, type[Any]] = {}
    for name, cls in transport_handlers.items():
        cls = _SAFER.get(cls, cls)
        if hasattr(cls, "handle_session"):
            cls = _keeps_holder_and_watches_disconnect(cls)
        fixed[name] = cls
    return fixed


class _Cors:
    """CORS the way sockjs-node answers, which is what sockjs-client expects."""

    def __init__(self, allowed_origins: Iterable[str] | None) -> None:
        self.allowed = None if allowed_origins is None else frozenset(allowed_origins)
        self.resources: set[web.AbstractResource] = set()

    def origin_allowed(self, request: web.BaseRequest) -> bool:
        origin = request.headers.get(hdrs.ORIGIN)
        return self.allowed is None or origin is None or origin in self.allowed

    async def on_response_prepare(
        self, request: web.Request, response: web.StreamResponse
    ) -> None:
        route = request.match_info.route
        if route.resource not in self.resources or response.status == 101:
            return
        origin = request.headers.get(hdrs.ORIGIN)
        if origin is None:
            response.headers[hdrs.ACCESS_CONTROL_ALLOW_ORIGIN] = "*"
        else:
            response.headers[hdrs.ACCESS_CONTROL_ALLOW_ORIGIN] = origin
            response.headers[hdrs.ACCESS_CONTROL_ALLOW_CREDENTIALS] = "true"
            response.headers.add(hdrs.VARY, "Origin")
        asked = request.headers.get(hdrs.ACCESS_CONTROL_REQUEST_HEADERS)
        if asked:
            response.headers[hdrs.ACCESS_CONTROL_ALLOW_HEADERS] = asked

    def guard(self, handler: _Handler) -> _Handler:
        """Refuse requests from origins outside the allow-list with 403."""
        if self.allowed is None:
            return handler

        async def guarded(request: web.Request) -> web.StreamResponse:
            if not self.origin_allowed(request):
                raise web.HTTPForbidden(text="origin not allowed")
            return await handler(request)

        return guarded


def _preflight(methods: str) -> _Handler:
    async def answer(request: web.Request) -> web.StreamResponse:
        expires = datetime.now(UTC) + timedelta(seconds=_YEAR)
        return web.Response(
            status=204,
            headers={
                hdrs.ACCESS_CONTROL_ALLOW_METHODS: methods,
                hdrs.ACCESS_CONTROL_MAX_AGE: str(_YEAR),
                hdrs.CACHE_CONTROL: f"public, max-age={_YEAR}",
                hdrs.EXPIRES: expires.strftime("%a, %d %b %Y %H:%M:%S GMT"),
            },
        )

    return answer


def add_sockjs_endpoint(
    app: web.Application,
    server: MultiplexServer,
    *,
    prefix: str = "/multiplex",
    sockjs_url: str = DEFAULT_SOCKJS_URL,
    allowed_origins: Iterable[str] | None = None,
    heartbeat_delay: float = 25.0,
    disconnect_delay: float = 5.0,
    name: str | None = None,
) -> list[web.AbstractRoute]:
    """Serve ``server`` over SockJS at ``prefix`` in an aiohttp application.

    Every sockjs-client 1.x transport works, from any origin unless
    ``allowed_origins`` lists the ones to accept (exact ``Origin`` values,
    e.g. ``"https://example.com"``). Any origin means any web page may open
    channels that carry your users' cookies: set ``allowed_origins`` when
    services trust cookies. ``sockjs_url`` is the sockjs-client
    script the iframe transports load; point it at a local copy when the
    browser cannot reach the CDN. The raw WebSocket endpoint,
    ``<prefix>/websocket``, carries frames without SockJS framing.
    Returns the routes added, for use with other aiohttp tooling.
    """
    prefix = prefix.rstrip("/")
    name = name or f"multiplex{prefix.replace('/', '-')}"
    bridge = _SessionBridge(server)
    manager = SessionManager(
        name,
        app,
        bridge,
        heartbeat_delay=heartbeat_delay,
        disconnect_delay=disconnect_delay,
    )
    manager.factory = functools.partial(
        _BoundedSession, high_water=server.limits.write_limit
    )
    route = SockJSRoute(
        name, manager, sockjs_url, _fixed_transport_handlers(), (), True
    )
    cors = _Cors(allowed_origins)
    router = app.router
    routes: list[web.AbstractRoute] = []

    def add(method: str, path: str, handler: _Handler) -> None:
        added = router.add_route(method, path, cors.guard(handler))
        cors.resources.add(added.resource)  # type: ignore[arg-type]
        routes.append(added)

    add(hdrs.METH_GET, prefix, route.greeting)
    add(hdrs.METH_GET, f"{prefix}/", route.greeting)
    add(hdrs.METH_GET, f"{prefix}/info", route.info)
    add(hdrs.METH_OPTIONS, f"{prefix}/info", _preflight("OPTIONS, GET"))
    add(hdrs.METH_GET, f"{prefix}/iframe.html", route.iframe)
    add(hdrs.METH_GET, f"{prefix}/iframe{{version}}.html", route.iframe)
    # Not sockjs's raw transport: it closes with 1000 "Go away!" whatever
    # the reason, so clients could not tell a slow client or a flood apart.
    raw = _websocket_handler(server, heartbeat_delay, _SOCKJS_MAX_MESSAGE)
    add(hdrs.METH_GET, f"{prefix}/websocket", raw)
    session_path = f"{prefix}/{{server}}/{{session}}/{{transport}}"
    for method in (hdrs.METH_GET, hdrs.METH_POST):
        add(method, session_path, route.handler)
    add(hdrs.METH_OPTIONS, session_path, _preflight("OPTIONS, POST"))

    app.on_response_prepare.append(cors.on_response_prepare)
    app.on_shutdown.append(lambda _app: server.close())
    app.on_cleanup.append(manager.stop)
    return routes


# -- plain WebSocket -----------------------------------------------------------


class _WebSocketTransport:
    """The :class:`~websocket_multiplex.Transport` over an aiohttp WebSocket."""

    def __init__(
        self,
        ws: web.WebSocketResponse,
        request: RequestInfo,
        socket: asyncio.BaseTransport | None,
    ) -> None:
        self._ws = ws
        self._request = request
        self._socket = socket

    @property
    def request(self) -> RequestInfo:
        return self._request

    async def send(self, text: str) -> None:
        if self._ws.closed:
            raise ConnectionError("the WebSocket is closed")
        await self._ws.send_str(text)

    async def close(self, code: int, reason: str) -> None:
        if self._socket is not None:
            _abort_later_if_stuck(self._socket)
        await self._ws.close(code=code, message=reason.encode())


def _websocket_handler(
    server: MultiplexServer, heartbeat: float | None, max_msg_size: int
) -> _Handler:
    async def handle(request: web.Request) -> web.StreamResponse:
        ws = web.WebSocketResponse(heartbeat=heartbeat, max_msg_size=max_msg_size)
        await ws.prepare(request)
        transport = _WebSocketTransport(ws, request_info(request), request.transport)
        connection = server.accept(transport)
        try:
            async for message in ws:
                if message.type is WSMsgType.TEXT:
                    connection.receive(message.data)
        finally:
            await connection.connection_lost()
        return ws

    return handle


def add_websocket_route(
    app: web.Application,
    server: MultiplexServer,
    path: str = "/multiplex/websocket",
    *,
    allowed_origins: Iterable[str] | None = None,
    heartbeat: float | None = 25.0,
    max_msg_size: int = 1 << 20,
) -> web.AbstractRoute:
    """Serve ``server`` over a plain WebSocket (RFC 6455) at ``path``.

    Text messages are frames; binary messages are not part of the protocol
    and are ignored. ``heartbeat`` pings idle clients and closes dead ones.
    """
    handle = _websocket_handler(server, heartbeat, max_msg_size)
    app.on_shutdown.append(lambda _app: server.close())
    return app.router.add_route(
        hdrs.METH_GET, path, _Cors(allowed_origins).guard(handle)
    )


# -- metrics ---------------------------------------------------------------------


def add_metrics_route(
    app: web.Application, server: MultiplexServer, path: str = "/metrics"
) -> web.AbstractRoute:
    """Serve ``server.stats()`` in the Prometheus text format at ``path``.

    Mount it where only your monitoring can reach it: counters tell an
    attacker how well an attack is going.
    """

    async def metrics(_request: web.Request) -> web.Response:
        return web.Response(
            text=server.stats().to_prometheus(),
            content_type="text/plain",
            headers={hdrs.CACHE_CONTROL: "no-store"},
        )

    return app.router.add_get(path, metrics)


# -- the browser client --------------------------------------------------------

_CLIENT_FILES: Final = {
    "websocket-multiplex.js": "text/javascript",
    "websocket-multiplex.mjs": "text/javascript",
    "websocket-multiplex.d.ts": "text/plain",
}


def add_client_routes(
    app: web.Application, path: str = "/websocket-multiplex"
) -> list[web.AbstractRoute]:
    """Serve the browser client: ``<path>/websocket-multiplex.js`` (classic
    script, global ``WebSocketMultiplex``), ``.mjs`` (ES module) and
    ``.d.ts`` (TypeScript declarations).
    """
    static = resources.files("websocket_multiplex") / "static"
    routes = []
    for filename, content_type in _CLIENT_FILES.items():
        body = (static / filename).read_bytes()

        async def serve(
            _request: web.Request, body: bytes = body, content_type: str = content_type
        ) -> web.StreamResponse:
            # Module scripts are fetched with CORS: pages on other origins
            # may import the client. It is public code, so any origin may.
            return web.Response(
                body=body,
                content_type=content_type,
                charset="utf-8",
                headers={hdrs.ACCESS_CONTROL_ALLOW_ORIGIN: "*"},
            )

        routes.append(app.router.add_get(f"{path.rstrip('/')}/{filename}", serve))
    return routes
