"""The embedded default: a multiplexer on aiohttp, over SockJS or a WebSocket.

:func:`add_sockjs_endpoint` mounts a SockJS endpoint (aio-libs ``sockjs``
0.13, every transport sockjs-client 1.x offers, and the raw WebSocket at
``<prefix>/websocket``); :func:`add_websocket_route` mounts a plain
WebSocket; :func:`add_client_routes` serves the browser client;
:func:`run_app` runs the application and shuts it down in the order
multiplexed clients need.

``sockjs`` 0.13 has gaps we close (SOCKJS-NOTES.md): CORS in
:mod:`._cors`, the rest in :mod:`._sockjs`; the iframe page loads
sockjs-client from a CDN unless ``sockjs_url`` says otherwise.
"""

from __future__ import annotations

import asyncio
import functools
import os
import signal
from collections.abc import Callable, Container, Iterable
from importlib import resources
from pathlib import Path
from typing import Final

from aiohttp import hdrs, web
from sockjs.route import SockJSRoute

from ..asyncio.server import MultiplexServer
from ._cors import Cors, Handler, preflight
from ._requests import request_info
from ._sockjs import (
    BoundedSession,
    CheckedSessionManager,
    SessionBridge,
    fixed_transport_handlers,
)
from ._websocket import websocket_handler

__all__ = [
    "DEFAULT_SOCKJS_URL",
    "add_client_routes",
    "add_metrics_route",
    "add_sockjs_endpoint",
    "add_websocket_route",
    "request_info",
    "run_app",
    "serve",
]

DEFAULT_SOCKJS_URL: Final = (
    "https://cdn.jsdelivr.net/npm/sockjs-client@1.6.1/dist/sockjs.min.js"
)
"""Where the iframe transports load sockjs-client from unless told otherwise."""

_SOCKJS_MAX_MESSAGE: Final = 4 * 1024 * 1024  # what sockjs's websockets accept

_SERVERS: Final = web.AppKey("websocket_multiplex.servers", list[MultiplexServer])
"""The multiplexers mounted on an application, to close when it shuts down."""


def _close_on_shutdown(app: web.Application, server: MultiplexServer) -> None:
    servers = app.get(_SERVERS)
    if servers is None:
        servers = app[_SERVERS] = []
        app.on_shutdown.append(_close_servers)
    if server not in servers:
        servers.append(server)


async def _close_servers(app: web.Application) -> None:
    await asyncio.gather(*(server.close() for server in app.get(_SERVERS, ())))


# -- SockJS ------------------------------------------------------------------


def add_sockjs_endpoint(
    app: web.Application,
    server: MultiplexServer,
    *,
    prefix: str = "/multiplex",
    sockjs_url: str | os.PathLike[str] = DEFAULT_SOCKJS_URL,
    allowed_origins: Iterable[str] | None = None,
    heartbeat_delay: float = 25.0,
    disconnect_delay: float = 5.0,
    name: str | None = None,
    compress: bool = False,
) -> list[web.AbstractRoute]:
    """Serve ``server`` over SockJS at ``prefix`` in an aiohttp application.

    Every sockjs-client 1.x transport works, from any origin unless
    ``allowed_origins`` lists the ones to accept (exact ``Origin`` values,
    e.g. ``"https://example.com"``). Any origin means any web page may open
    channels that carry your users' cookies: set ``allowed_origins`` when
    services trust cookies. ``sockjs_url`` is the sockjs-client
    script the iframe transports load, a URL or, as a :class:`~pathlib.Path`,
    a local copy of sockjs-client 1.x's ``dist/sockjs.min.js`` that is then
    served at ``<prefix>/sockjs.min.js`` (for browsers that cannot reach the
    CDN). The raw WebSocket endpoint,
    ``<prefix>/websocket``, carries frames without SockJS framing.
    ``compress=True`` accepts permessage-deflate on both WebSocket endpoints
    when a client offers it (browsers always do): fewer bytes on slow links
    for some 4x the CPU per message and about 100 KiB more per connection
    (docs/PERFORMANCE.md). Returns the routes added, for use with other aiohttp tooling.
    """
    prefix = prefix.rstrip("/")
    local_sockjs = None
    if not isinstance(sockjs_url, str):
        local_sockjs = _read_sockjs_client(sockjs_url)
        sockjs_url = f"{prefix}/sockjs.min.js"
    name = name or f"multiplex{prefix.replace('/', '-')}"
    bridge = SessionBridge(server)
    manager = CheckedSessionManager(
        name,
        app,
        bridge,
        heartbeat_delay=heartbeat_delay,
        disconnect_delay=disconnect_delay,
    )
    manager.factory = functools.partial(
        BoundedSession, high_water=server.limits.write_limit
    )
    route = SockJSRoute(name, manager, sockjs_url, fixed_transport_handlers(), (), True)
    cors = Cors(allowed_origins)
    router = app.router
    routes: list[web.AbstractRoute] = []

    def add(method: str, path: str, handler: Handler) -> None:
        added = router.add_route(method, path, cors.guard(handler))
        cors.resources.add(added.resource)  # type: ignore[arg-type]
        routes.append(added)

    add(hdrs.METH_GET, prefix, route.greeting)
    add(hdrs.METH_GET, f"{prefix}/", route.greeting)
    add(hdrs.METH_GET, f"{prefix}/info", route.info)
    add(hdrs.METH_OPTIONS, f"{prefix}/info", preflight("OPTIONS, GET"))
    add(hdrs.METH_GET, f"{prefix}/iframe.html", route.iframe)
    add(hdrs.METH_GET, f"{prefix}/iframe{{version}}.html", route.iframe)
    if local_sockjs is not None:
        add(hdrs.METH_GET, sockjs_url, local_sockjs)
    # Not sockjs's raw transport: it closes with 1000 "Go away!" whatever
    # the reason, so clients could not tell a slow client or a flood apart.
    raw = websocket_handler(
        server,
        heartbeat=heartbeat_delay,
        max_msg_size=_SOCKJS_MAX_MESSAGE,
        compress=compress,
    )
    add(hdrs.METH_GET, f"{prefix}/websocket", raw)
    # SockJS's websocket transport is ours too (see ._websocket); sockjs
    # serves the others. Server and session ids may not contain dots.
    session = f"{prefix}/{{server:[^/.]+}}/{{session:[^/.]+}}"
    sockjs_ws = websocket_handler(
        server,
        heartbeat=heartbeat_delay,
        max_msg_size=_SOCKJS_MAX_MESSAGE,
        compress=compress,
        sockjs_heartbeat=heartbeat_delay,
    )
    add(hdrs.METH_GET, f"{session}/websocket", _open_unless_closing(server, sockjs_ws))
    session_path = f"{prefix}/{{server}}/{{session}}/{{transport}}"
    sessions = _open_unless_closing(server, route.handler, manager.sessions)
    for method in (hdrs.METH_GET, hdrs.METH_POST):
        add(method, session_path, sessions)
    add(hdrs.METH_OPTIONS, session_path, preflight("OPTIONS, POST"))

    app.on_response_prepare.append(cors.on_response_prepare)
    _close_on_shutdown(app, server)
    app.on_cleanup.append(manager.stop)
    return routes


def _read_sockjs_client(path: os.PathLike[str]) -> Handler:
    try:
        script = Path(path).read_bytes()
    except OSError as exc:
        raise ValueError(
            f"sockjs_url {os.fspath(path)!r} cannot be read ({exc.strerror}): give "
            "the path of sockjs-client 1.x's dist/sockjs.min.js, or a URL as a str"
        ) from None

    async def serve_script(_request: web.Request) -> web.StreamResponse:
        return web.Response(body=script, content_type="text/javascript")

    return serve_script


def _open_unless_closing(
    server: MultiplexServer, handler: Handler, sessions: Container[str] = ()
) -> Handler:
    """Once the server is closing, answer 503 to requests that would open a
    session (existing ones still poll, to fetch their goodbyes), rather
    than opening one only to close it: clients would count a reconnection."""

    async def guarded(request: web.Request) -> web.StreamResponse:
        if server.closing and request.match_info.get("session") not in sessions:
            raise web.HTTPServiceUnavailable(text="server shutting down")
        return await handler(request)

    return guarded


# -- plain WebSocket -----------------------------------------------------------


def add_websocket_route(
    app: web.Application,
    server: MultiplexServer,
    path: str = "/multiplex/websocket",
    *,
    allowed_origins: Iterable[str] | None = None,
    heartbeat: float | None = 25.0,
    max_msg_size: int = 1 << 20,
    compress: bool = False,
) -> web.AbstractRoute:
    """Serve ``server`` over a plain WebSocket (RFC 6455) at ``path``.

    Text messages are frames; binary messages are not part of the protocol
    and are ignored. ``heartbeat`` pings idle clients and closes dead ones.
    ``compress=True`` accepts permessage-deflate when a client offers it:
    fewer bytes on slow links for some 4x the CPU per message and about
    100 KiB more per connection (docs/PERFORMANCE.md).
    """
    handle = websocket_handler(
        server, heartbeat=heartbeat, max_msg_size=max_msg_size, compress=compress
    )
    _close_on_shutdown(app, server)
    return app.router.add_route(
        hdrs.METH_GET, path, Cors(allowed_origins).guard(handle)
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
    "websocket-multiplex.d.mts": "text/plain",
}


def add_client_routes(
    app: web.Application, path: str = "/websocket-multiplex"
) -> list[web.AbstractRoute]:
    """Serve the browser client: ``<path>/websocket-multiplex.js`` (classic
    script, global ``WebSocketMultiplex``), ``.mjs`` (ES module), ``.d.ts``
    (TypeScript declarations) and ``.d.mts`` (the same for the ES module,
    which TypeScript looks for next to the ``.mjs``).
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


# -- running -------------------------------------------------------------------


async def serve(
    app: web.Application,
    host: str = "127.0.0.1",
    port: int = 8080,
    *,
    ready: Callable[[str], object] | None = None,
    shutdown_timeout: float = 60.0,
) -> None:
    """Serve ``app`` on ``host:port`` until SIGINT or SIGTERM, then shut down
    so that every client hears its channels close.

    ``web.run_app`` stops listening and drops idle keep-alive connections
    *before* ``on_shutdown`` runs, so a polling SockJS client that is
    between two requests when the goodbyes are sent can no longer fetch
    them. Here the multiplexers mounted with
    :func:`add_sockjs_endpoint` or :func:`add_websocket_route` close first,
    while the server still listens (requests that would open a new session
    get 503), and only then does aiohttp's own cleanup run. ``ready`` is
    called with the server's URL once it listens (``port=0`` picks a free
    port).
    """
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for signum in _STOP_SIGNALS:  # before ``ready``: a signal must not kill us
        loop.add_signal_handler(signum, stop.set)
    runner = web.AppRunner(
        app,
        handle_signals=False,
        handler_cancellation=True,  # notice clients that drop a polling request
        shutdown_timeout=shutdown_timeout,
    )
    try:
        await runner.setup()
        try:
            await web.TCPSite(runner, host, port).start()
            if ready is not None:
                bound_host, bound_port = runner.addresses[0][:2]
                if ":" in bound_host:  # IPv6
                    bound_host = f"[{bound_host}]"
                ready(f"http://{bound_host}:{bound_port}/")
            await stop.wait()
        finally:
            await _close_servers(app)  # still listening
            await runner.cleanup()
    finally:
        for signum in _STOP_SIGNALS:
            loop.remove_signal_handler(signum)


_STOP_SIGNALS: Final = (signal.SIGINT, signal.SIGTERM)


def run_app(
    app: web.Application,
    host: str = "127.0.0.1",
    port: int = 8080,
    *,
    ready: Callable[[str], object] | None = None,
    shutdown_timeout: float = 60.0,
    loop_factory: Callable[[], asyncio.AbstractEventLoop] | None = None,
) -> None:
    """Run :func:`serve` in a new event loop: the blocking call for a
    script's ``main``, in place of ``web.run_app``. ``loop_factory`` picks
    the loop, e.g. ``uvloop.new_event_loop``.
    """
    with asyncio.Runner(loop_factory=loop_factory) as runner:
        runner.run(
            serve(app, host, port, ready=ready, shutdown_timeout=shutdown_timeout)
        )
