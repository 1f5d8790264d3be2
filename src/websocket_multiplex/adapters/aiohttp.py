"""The embedded default: a multiplexer on aiohttp, over SockJS or a WebSocket.

:func:`add_sockjs_endpoint` mounts a SockJS endpoint (every transport
sockjs-client 1.x offers, and the raw WebSocket at ``<prefix>/websocket``)
serving a :class:`~websocket_multiplex.MultiplexServer`, or a plain SockJS
handler; :func:`add_websocket_route` mounts a plain WebSocket;
:func:`add_client_routes` serves the browser client; :func:`run_app` runs
the application and shuts it down in the order multiplexed clients need.

SockJS itself is the package's own (:mod:`websocket_multiplex.sockjs`,
run by :mod:`websocket_multiplex.asyncio.sockjs`): this module only maps
aiohttp's requests onto it, as :mod:`.asgi` does for ASGI.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import ssl
import sys
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, Final, Protocol

from aiohttp import hdrs, web
from aiohttp.log import access_logger

from ..asyncio.listener import ConnectionGuard, quiet_accept_errors, url_of
from ..asyncio.server import MultiplexServer
from ..asyncio.sockjs import LOCAL_SCRIPT, SockJSEndpoint, read_sockjs_client
from ..asyncio.sockjs_connection import SockJSHandler, application_for
from ..asyncio.throttle import LogThrottle
from ..asyncio.websocket import serve_websocket
from ..browser import CLIENT_PATH, ClientFile, client_files
from ..limits import Limits
from ..sockjs.http import origin_allowed
from ..sockjs.options import DEFAULT_SOCKJS_URL, SockJSOptions
from ._aiohttp_io import Exchange, accept_websocket, request_info

__all__ = [
    "DEFAULT_SOCKJS_URL",
    "SOCKJS_ENDPOINTS",
    "add_client_routes",
    "add_metrics_route",
    "add_sockjs_endpoint",
    "add_websocket_route",
    "raise_open_file_limit",
    "request_info",
    "run_app",
    "serve",
]

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

logger = logging.getLogger("websocket_multiplex")


class _Closable(Protocol):
    async def close(self) -> None: ...


_APPLICATIONS: Final = web.AppKey("websocket_multiplex.applications", list[_Closable])
"""What serves the endpoints mounted on an application, to close when it
shuts down (multiplexers, plain SockJS applications)."""


SOCKJS_ENDPOINTS: Final = web.AppKey(
    "websocket_multiplex.sockjs_endpoints", dict[str, SockJSEndpoint]
)
"""The SockJS endpoints mounted on an application, by prefix, to inspect
(``app[SOCKJS_ENDPOINTS]["/multiplex"].sessions``)."""


def _close_on_shutdown(app: web.Application, served: _Closable) -> None:
    applications = app.get(_APPLICATIONS)
    if applications is None:
        applications = app[_APPLICATIONS] = []
        app.on_shutdown.append(_close_applications)
    if served not in applications:
        applications.append(served)


async def _close_applications(app: web.Application) -> None:
    await asyncio.gather(*(served.close() for served in app.get(_APPLICATIONS, ())))


# -- SockJS ------------------------------------------------------------------


def add_sockjs_endpoint(
    app: web.Application,
    server: MultiplexServer | SockJSHandler,
    *,
    prefix: str = "/multiplex",
    sockjs_url: str | os.PathLike[str] = DEFAULT_SOCKJS_URL,
    allowed_origins: Iterable[str] | None = None,
    heartbeat_delay: float = 25.0,
    disconnect_delay: float = 5.0,
    response_limit: int = 128 * 1024,
    batch_limit: int = 32 * 1024,
    websocket: bool = True,
    disabled_transports: Iterable[str] = (),
    jsessionid: bool = False,
    compress: bool = False,
    limits: Limits | None = None,
    name: str | None = None,
) -> list[web.AbstractRoute]:
    """Serve ``server`` over SockJS at ``prefix`` in an aiohttp application.

    ``server`` is a :class:`~websocket_multiplex.MultiplexServer` (each
    SockJS session is one multiplexed connection), or a plain SockJS
    handler, ``async def handler(connection: SockJSConnection)``, run once
    per session (no multiplexing; see
    :mod:`websocket_multiplex.asyncio.sockjs_connection`).

    Every sockjs-client 1.x transport works, from any origin unless
    ``allowed_origins`` lists the ones to accept (exact ``Origin`` values,
    e.g. ``"https://example.com"``). Any origin means any web page may open
    sessions that carry your users' cookies: set ``allowed_origins`` when
    services trust cookies. ``sockjs_url`` is the sockjs-client
    script the iframe transports load, a URL or, as a :class:`~pathlib.Path`,
    a local copy of sockjs-client 1.x's ``dist/sockjs.min.js`` that is then
    served at ``<prefix>/sockjs.min.js`` (for browsers that cannot reach the
    CDN). The raw WebSocket endpoint, ``<prefix>/websocket``, carries
    messages without SockJS framing.

    The other options are sockjs-node's
    (:class:`~websocket_multiplex.sockjs.SockJSOptions` says what each
    does): ``heartbeat_delay``, ``disconnect_delay``, ``response_limit``,
    ``batch_limit`` (ours: characters of messages per poll answer),
    ``websocket`` (``False`` offers no WebSocket), ``disabled_transports``,
    ``jsessionid``. ``compress=True`` accepts
    permessage-deflate on both WebSocket endpoints when a client offers it
    (browsers always do): fewer bytes on slow links for some 4x the CPU per
    message and about 100 KiB more per connection (docs/PERFORMANCE.md).
    ``limits`` bounds what clients can make the endpoint hold (sessions,
    message sizes, frame rate: docs/LIMITS.md); by default the
    multiplexer's, or the defaults for a plain handler. Returns the routes
    added; ``name`` names the catch-all one.
    """
    prefix = prefix.rstrip("/")
    script = None
    if not isinstance(sockjs_url, str):
        script = read_sockjs_client(sockjs_url)
        sockjs_url = prefix + LOCAL_SCRIPT
    served, limits = application_for(server, limits)
    options = SockJSOptions.of(
        allowed_origins=allowed_origins,
        disabled_transports=disabled_transports,
        websocket=websocket,
        jsessionid=jsessionid,
        response_limit=response_limit,
        batch_limit=batch_limit,
        heartbeat_delay=heartbeat_delay,
        disconnect_delay=disconnect_delay,
        sockjs_url=sockjs_url,
        compress=compress,
    )
    endpoint = SockJSEndpoint(served, options, limits, script=script)
    app.setdefault(SOCKJS_ENDPOINTS, {})[prefix] = endpoint

    async def handle(request: web.Request) -> web.StreamResponse:
        tail = request.match_info.get("tail")
        exchange = Exchange(
            request,
            "" if tail is None else f"/{tail}",
            max_message_size=limits.max_message_size,
            heartbeat=heartbeat_delay,
            compress=compress,
        )
        await endpoint.handle(exchange)
        if exchange.response is None:  # the client left before an answer
            return web.Response(status=400)
        return exchange.response

    routes = []
    routes.append(app.router.add_route(hdrs.METH_ANY, prefix or "/", handle))
    routes.append(
        app.router.add_route(hdrs.METH_ANY, f"{prefix}/{{tail:.*}}", handle, name=name)
    )
    _close_on_shutdown(app, served)

    async def cleanup(_app: web.Application) -> None:
        await endpoint.close()

    app.on_cleanup.append(cleanup)
    return routes


# -- plain WebSocket -----------------------------------------------------------


def add_websocket_route(
    app: web.Application,
    server: MultiplexServer,
    path: str = "/multiplex/websocket",
    *,
    allowed_origins: Iterable[str] | None = None,
    heartbeat: float | None = 25.0,
    max_msg_size: int | None = None,
    compress: bool = False,
) -> web.AbstractRoute:
    """Serve ``server`` over a plain WebSocket (RFC 6455) at ``path``.

    Text messages are frames; binary messages are not part of the protocol
    and are ignored. ``heartbeat`` pings idle clients and closes dead ones.
    ``max_msg_size`` (bytes) closes the connection (1009) on a larger
    message: by default ``Limits.max_message_size`` of the server.
    ``compress=True`` accepts permessage-deflate when a client offers it:
    fewer bytes on slow links for some 4x the CPU per message and about
    100 KiB more per connection (docs/PERFORMANCE.md). ``allowed_origins``
    refuses handshakes from other ``Origin`` values with 403 (one without
    ``Origin`` is accepted: it comes from no browser).
    """
    allowed = None if allowed_origins is None else frozenset(allowed_origins)
    limits = server.limits
    max_size = limits.max_message_size if max_msg_size is None else max_msg_size

    async def handle(request: web.Request) -> web.StreamResponse:
        if not origin_allowed(request.headers.get(hdrs.ORIGIN), allowed):
            return web.Response(status=403, text="origin not allowed")
        if server.closing:
            return web.Response(status=503, text="server shutting down")
        try:
            ws = await accept_websocket(
                request, heartbeat=heartbeat, max_msg_size=max_size, compress=compress
            )
        except ConnectionError:  # the client left during the handshake
            return web.Response(status=400)
        await serve_websocket(ws, request_info(request), server.accept, limits)
        return ws.response

    _close_on_shutdown(app, server)
    return app.router.add_route(hdrs.METH_GET, path, handle)


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


def add_client_routes(
    app: web.Application, path: str = CLIENT_PATH
) -> list[web.AbstractRoute]:
    """Serve the browser client below ``path``: ``websocket-multiplex.js``
    (classic script, global ``WebSocketMultiplex``), ``.mjs`` (ES module),
    ``.d.ts`` and ``.d.mts`` (their TypeScript declarations); see
    :mod:`websocket_multiplex.browser`.
    """
    routes = []
    for file in client_files():

        async def serve(
            _request: web.Request, file: ClientFile = file
        ) -> web.StreamResponse:
            return web.Response(body=file.body, headers=file.headers)

        routes.append(app.router.add_get(f"{path.rstrip('/')}/{file.name}", serve))
    return routes


# -- running -------------------------------------------------------------------


async def serve(
    app: web.Application,
    host: str = "127.0.0.1",
    port: int = 8080,
    *,
    ready: Callable[[str], object] | None = None,
    shutdown_timeout: float = 60.0,
    access_log: bool = False,
    max_connections: int | None = None,
    header_timeout: float = 10.0,
    keepalive_timeout: float = 15.0,
    ssl_context: ssl.SSLContext | None = None,
    reuse_port: bool | None = None,
    backlog: int = 128,
    path: str | None = None,
) -> None:
    """Serve ``app`` on ``host:port`` until SIGINT or SIGTERM, then shut down
    so that every client hears its channels close.

    Bounds on what any client can hold (docs/LIMITS.md, "The embedded
    server"): ``max_connections`` open at once (default: the open-file
    limit less 64 for the rest of the process; over it a new connection is
    closed at once), ``header_timeout`` seconds for a new connection to
    finish its first request's headers, ``keepalive_timeout`` seconds for
    an idle keep-alive connection. When descriptors run out anyway, the
    accept loop says so once per interval instead of a traceback per try.
    ``ssl_context`` serves HTTPS (and wss://); ``reuse_port`` lets several
    processes listen on one port; ``backlog`` is the listen queue's length;
    ``path`` listens on that unix socket instead of ``host:port``.

    ``access_log``: a line per request on the ``aiohttp.access`` logger. Off
    by default: any client can make the server write as many as it sends
    requests (a flood of long URLs wrote 160 MB); put a proxy's log in front
    for that.

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
    log = LogThrottle()
    runner = web.AppRunner(
        app,
        handle_signals=False,
        handler_cancellation=True,  # notice clients that drop a polling request
        shutdown_timeout=shutdown_timeout,
        access_log=access_logger if access_log else None,
        keepalive_timeout=keepalive_timeout,
        logger=ClientCausedLog(log),
    )
    previous_handler = loop.get_exception_handler()
    loop.set_exception_handler(quiet_accept_errors(loop, log))
    try:
        await runner.setup()
        assert runner.server is not None
        guard = ConnectionGuard(
            runner.server,
            max_connections=_connection_cap(max_connections),
            header_timeout=header_timeout,
            log=log,
        )
        listening: asyncio.Server | None = None
        try:
            if path is not None:
                listening = await loop.create_unix_server(
                    guard, path, backlog=backlog, ssl=ssl_context
                )
            else:
                listening = await loop.create_server(
                    guard,
                    host,
                    port,
                    backlog=backlog,
                    ssl=ssl_context,
                    reuse_port=reuse_port,
                )
            if ready is not None:
                ready(url_of(listening, ssl_context is not None))
            await stop.wait()
        finally:
            await _close_applications(app)  # still listening
            if listening is not None:
                listening.close()
            await runner.cleanup()
    finally:
        loop.set_exception_handler(previous_handler)
        for signum in _STOP_SIGNALS:
            loop.remove_signal_handler(signum)


class ClientCausedLog(logging.LoggerAdapter):  # type: ignore[type-arg]
    """aiohttp's server log, through the throttle: what it logs there (a
    malformed request, a client gone during ``prepare()``) any client can
    cause at will. One line per kind per interval, the exception's first
    line instead of its traceback."""

    def __init__(self, throttle: LogThrottle) -> None:
        super().__init__(logging.getLogger("aiohttp.server"), {})
        self._throttle = throttle

    def log(self, level: int, msg: object, *args: object, **kwargs: Any) -> None:
        if not self.isEnabledFor(level):
            return
        text = str(msg)
        error = _exception_of(kwargs.get("exc_info"))
        if error is not None:
            first = (str(error).strip().splitlines() or [""])[0].strip()
            text += f" ({type(error).__name__}: {first})".replace("%", "%%")
        self._throttle.log(self.logger, level, f"aiohttp: {msg}", text, *args)


def _exception_of(exc_info: object) -> BaseException | None:
    """The exception a logging call's ``exc_info`` names, if any."""
    if isinstance(exc_info, BaseException):
        return exc_info
    if isinstance(exc_info, tuple) and len(exc_info) == 3:
        return exc_info[1] if isinstance(exc_info[1], BaseException) else None
    return sys.exc_info()[1] if exc_info else None


def _connection_cap(max_connections: int | None) -> int:
    """``max_connections``, or what the open-file limit leaves (64 are kept
    for the rest of the process: logs, Redis, files)."""
    if max_connections is not None:
        return max_connections
    try:
        import resource
    except ImportError:  # not on this platform
        return 10_000
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return 100_000
    return max(soft - 64, 16)


_STOP_SIGNALS: Final = (signal.SIGINT, signal.SIGTERM)


def run_app(
    app: web.Application,
    host: str = "127.0.0.1",
    port: int = 8080,
    *,
    ready: Callable[[str], object] | None = None,
    shutdown_timeout: float = 60.0,
    access_log: bool = False,
    loop_factory: Callable[[], asyncio.AbstractEventLoop] | None = None,
    **bounds: Any,
) -> None:
    """Run :func:`serve` in a new event loop: the blocking call for a
    script's ``main``, in place of ``web.run_app``. ``loop_factory`` picks
    the loop, e.g. ``uvloop.new_event_loop``; ``bounds`` are :func:`serve`'s
    other options (``max_connections``, ``header_timeout``,
    ``keepalive_timeout``, ``ssl_context``, ``reuse_port``, ``backlog``,
    ``path``). It first raises the process's
    soft limit of open files to its hard limit, as production servers do:
    every client holds a descriptor.
    """
    raise_open_file_limit()
    with asyncio.Runner(loop_factory=loop_factory) as runner:
        runner.run(
            serve(
                app,
                host,
                port,
                ready=ready,
                shutdown_timeout=shutdown_timeout,
                access_log=access_log,
                **bounds,
            )
        )


def raise_open_file_limit() -> tuple[int, int]:
    """Raise the soft limit of open files to the hard one (once, saying so);
    returns the soft limit before and after."""
    try:
        import resource
    except ImportError:  # not on this platform
        return (-1, -1)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft >= hard:
        return (soft, soft)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    except (OSError, ValueError) as exc:
        logger.info("could not raise the open-file limit above %d: %s", soft, exc)
        return (soft, soft)
    logger.info("raised the open-file limit from %d to %d", soft, hard)
    return (soft, hard)
