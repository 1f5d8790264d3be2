"""ASGI 3 applications: SockJS with every transport, or a plain WebSocket.

The adapters speak raw ASGI dictionaries and import no framework (nor
aiohttp), so they run under any ASGI server (uvicorn, hypercorn, daphne)
and mount in any ASGI framework::

    from websocket_multiplex.adapters.asgi import MultiplexASGI, SockJSASGI

    app = SockJSASGI(mux, prefix="/multiplex")   # uvicorn module:app

    # Starlette / FastAPI: every SockJS transport below /multiplex
    routes = [Mount("/multiplex", app=SockJSASGI(mux))]

    # a plain WebSocket, no SockJS
    routes = [WebSocketRoute("/multiplex/websocket", MultiplexASGI(mux))]

:class:`SockJSASGI` serves a :class:`~websocket_multiplex.MultiplexServer`
(one multiplexed connection per SockJS session, as
:func:`~websocket_multiplex.adapters.aiohttp.add_sockjs_endpoint` does) or a
plain SockJS handler, ``async def handler(connection: SockJSConnection)``.
Its ``http`` and ``websocket`` scopes below the prefix are SockJS; mounted
in a framework, the prefix is the mount's (``root_path``). :class:`MultiplexASGI`
accepts every WebSocket it is given and carries frames over it, one per
text message, answering ``http`` with ``426 Upgrade Required``.

``lifespan``: shutdown closes what serves the sessions (the multiplexer
sends ``uns`` for every open channel). Frameworks that run their own
lifespan (Starlette's router does) do not forward it to mounted apps: give
them the app's :meth:`~SockJSASGI.lifespan`, e.g.
``Starlette(routes=..., lifespan=sockjs_app.lifespan)``.

Limits on the size of a WebSocket message belong to the ASGI server:
uvicorn closes a connection whose message is larger than its
``--ws-max-size`` (16 MiB by default) with 1009, before the adapter sees
it; ``Limits.max_message_size`` then applies to what gets through. Set it
as low (``--ws-max-size 4194304``) so that a client cannot make the server
buffer 16 MiB per message. HTTP bodies are bounded here, by
``Limits.max_message_size``.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import (
    AsyncIterator,
    Awaitable,
    Callable,
    Iterable,
    MutableMapping,
)
from typing import Any, Final

from ..asyncio.server import MultiplexServer
from ..asyncio.sockjs import LOCAL_SCRIPT, SockJSEndpoint, read_sockjs_client
from ..asyncio.sockjs_connection import SockJSHandler, application_for
from ..asyncio.websocket import MessageHandler, serve_websocket
from ..browser import client_files
from ..limits import Limits
from ..request import Headers, RequestInfo
from ..sockjs.http import HeaderList, Request, Response, not_found, origin_allowed
from ..sockjs.options import DEFAULT_SOCKJS_URL, SockJSOptions

__all__ = [
    "ASGIWebSocket",
    "BrowserClientASGI",
    "MultiplexASGI",
    "SockJSASGI",
    "request_from_scope",
]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

logger = logging.getLogger("websocket_multiplex")

_HTTP_BODY: Final = b"This endpoint speaks WebSocket (websocket-multiplex).\n"
_NO_BODY: Final = frozenset({204, 304})


def request_from_scope(scope: Scope, headers: Headers | None = None) -> RequestInfo:
    """Copy what a service may know about the client out of an ASGI scope
    (``headers``: the scope's, if they were read already).

    Header names and values are bytes in ASGI; HTTP allows only Latin-1 in
    them, so that is how they are decoded (as the ASGI spec advises).
    """
    client = scope.get("client")
    return RequestInfo(
        path=scope.get("path", "/"),
        query_string=scope.get("query_string", b"").decode("latin-1"),
        headers=_headers(scope) if headers is None else headers,
        remote_address=client[0] if client else None,
    )


def _headers(scope: Scope) -> Headers:
    return Headers(
        (name.decode("latin-1"), value.decode("latin-1"))
        for name, value in scope.get("headers", ())
    )


def _encoded(headers: HeaderList) -> list[tuple[bytes, bytes]]:
    return [
        (name.lower().encode("latin-1"), value.encode("latin-1"))
        for name, value in headers
    ]


def _below(scope: Scope, prefix: str) -> str | None:
    """The scope's path below its ``root_path`` and ``prefix`` (``""`` for
    none); ``None`` if it is not below them."""
    path: str = scope.get("path", "/")
    root = scope.get("root_path", "")
    if root and path.startswith(root):
        path = path[len(root) :]
    if not prefix:
        return path
    if path == prefix or path.startswith(prefix + "/"):
        return path[len(prefix) :]
    return None


class ASGIWebSocket:
    """An accepted ASGI WebSocket, as the carriers take it.

    The ASGI server owns the socket; this turns the carriers' calls into
    ASGI messages, and remembers when the socket is gone, so that late
    sends fail with ``ConnectionError`` instead of reaching a server that
    would reject them.
    """

    __slots__ = ("_closed", "_receive", "_send")

    def __init__(self, receive: Receive, send: Send) -> None:
        self._receive = receive
        self._send = send
        self._closed = False

    @property
    def closed(self) -> bool:
        return self._closed

    def can_write_now(self) -> bool:
        # ASGI says nothing of the server's buffer: every write may wait.
        return False

    async def read(self, handle: MessageHandler) -> None:
        receive = self._receive
        while not self._closed:  # what comes after our close is for no one
            message = await receive()
            kind = message["type"]
            if kind == "websocket.receive":
                text = message.get("text")
                pause = handle(message.get("bytes") or b"" if text is None else text)
                del message
                if pause is not None:
                    await pause
            elif kind == "websocket.disconnect":
                self._closed = True

    async def send(self, text: str) -> None:
        if self._closed:
            raise ConnectionError("the WebSocket is closed")
        try:
            await self._send({"type": "websocket.send", "text": text})
        except OSError as exc:
            # ASGI 2.4: sending on a closed socket raises an OSError subclass
            # (uvicorn's ClientDisconnected); the carriers expect ConnectionError.
            self._closed = True
            raise ConnectionError("the WebSocket is closed") from exc

    async def close(self, code: int, reason: str) -> None:
        if self._closed:
            return
        self._closed = True
        message = {"type": "websocket.close", "code": code, "reason": reason}
        with contextlib.suppress(OSError):  # already gone: closed either way
            await self._send(message)

    async def wait_closed(self) -> None:
        """The ASGI server ends the closing handshake by itself."""


class _Lifespan:
    """The lifespan protocol for an app whose shutdown closes something."""

    def __init__(self, close: Callable[[], Awaitable[None]]) -> None:
        self._close = close

    @contextlib.asynccontextmanager
    async def lifespan(self, app: object = None) -> AsyncIterator[None]:
        """Lifespan context for frameworks that own the lifespan protocol.

        Starlette and FastAPI call ``lifespan(app)`` and do not forward the
        lifespan scope to mounted apps; on shutdown this closes the app.
        """
        try:
            yield
        finally:
            await self._close()

    async def serve_lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                try:
                    await self._close()
                except Exception as exc:
                    logger.exception("closing the application failed")
                    await send(
                        {"type": "lifespan.shutdown.failed", "message": repr(exc)}
                    )
                else:
                    await send({"type": "lifespan.shutdown.complete"})
                return


# -- SockJS ------------------------------------------------------------------------


class SockJSASGI:
    """Every SockJS transport as an ASGI application.

    ``server`` is a :class:`~websocket_multiplex.MultiplexServer` or a plain
    SockJS handler. ``prefix`` is where the endpoint lives below the app's
    ``root_path`` (``""`` when it is mounted at its own path). The options
    are those of :func:`~websocket_multiplex.adapters.aiohttp.add_sockjs_endpoint`
    (:class:`~websocket_multiplex.sockjs.SockJSOptions`); a
    :class:`~pathlib.Path` as ``sockjs_url`` is served at
    ``<prefix>/sockjs.min.js``; ``compress`` is for the ASGI server to
    apply (:mod:`.uvicorn` does). ``limits`` defaults to the multiplexer's.
    """

    def __init__(
        self,
        server: MultiplexServer | SockJSHandler,
        *,
        prefix: str = "",
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
    ) -> None:
        self.served, limits = application_for(server, limits)
        script = None
        if not isinstance(sockjs_url, str):
            script = read_sockjs_client(sockjs_url)
            # Relative to iframe.html: below the prefix, wherever it is mounted.
            sockjs_url = LOCAL_SCRIPT.lstrip("/")
        self.compress = compress
        """Whether to accept permessage-deflate: the ASGI server's to do
        (``adapters.uvicorn`` reads it)."""
        self.prefix = prefix.rstrip("/")
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
        )
        self.limits = limits
        self.endpoint = SockJSEndpoint(self.served, options, limits, script=script)
        self._lifespan = _Lifespan(self.close)
        self.lifespan = self._lifespan.lifespan
        """The lifespan context for a framework that runs the lifespan
        itself (``FastAPI(lifespan=app.lifespan)``): its end closes the app."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "lifespan":
            await self._lifespan.serve_lifespan(receive, send)
            return
        if kind not in ("http", "websocket"):
            raise ValueError(f"unsupported ASGI scope type {kind!r}")
        path = _below(scope, self.prefix)
        if kind == "http":
            exchange: _HTTPExchange = _HTTPExchange(scope, receive, send, path)
        else:
            if (await receive())["type"] != "websocket.connect":
                return  # the client left before the handshake
            exchange = _WebSocketExchange(scope, receive, send, path)
        if path is None:  # not below the prefix
            await exchange.respond(not_found())
            return
        await self.endpoint.handle(exchange)

    async def close(self) -> None:
        """Close every session (what serves them says goodbye) and wait for
        their ends; the lifespan's shutdown calls this."""
        await self.served.close()
        await self.endpoint.close()


class _HTTPExchange:
    """One ``http`` scope, as an
    :class:`~websocket_multiplex.asyncio.sockjs.HTTPExchange`."""

    _upgrade = False  # a websocket scope's asks for an upgrade

    def __init__(self, scope: Scope, receive: Receive, send: Send, path: str | None):
        self._scope = scope
        self._receive = receive
        self._send = send
        self._request = Request(
            scope.get("method", "GET"),
            path or "",
            scope.get("query_string", b"").decode("latin-1"),
            _headers(scope),
            self._upgrade,
        )
        self._info: RequestInfo | None = None
        self._body_read = False
        self._gone = False

    @property
    def request(self) -> Request:
        return self._request

    @property
    def info(self) -> RequestInfo:
        if self._info is None:
            self._info = request_from_scope(self._scope, self._request.headers)
        return self._info

    async def read_body(self, limit: int) -> bytes | None:
        body = bytearray()
        while True:
            message = await self._receive()
            if message["type"] == "http.disconnect":
                self._gone = True
                raise ConnectionError("the client left")
            body += message.get("body", b"")
            if len(body) > limit:
                return None
            if not message.get("more_body", False):
                self._body_read = True
                return bytes(body)

    async def respond(self, response: Response) -> None:
        headers = list(response.headers)
        if response.status not in _NO_BODY:
            headers.append(("Content-Length", str(len(response.body))))
        await self.start(response.status, tuple(headers))
        await self._out({"type": "http.response.body", "body": response.body})

    async def start(self, status: int, headers: HeaderList) -> None:
        await self._out(
            {
                "type": "http.response.start",
                "status": status,
                "headers": _encoded(headers),
            }
        )

    async def write(self, data: bytes) -> None:
        await self._out({"type": "http.response.body", "body": data, "more_body": True})

    async def end(self) -> None:
        await self._out({"type": "http.response.body", "body": b""})

    async def _out(self, message: Message) -> None:
        if self._gone:
            raise ConnectionError("the client left")
        try:
            await self._send(message)
        except Exception as exc:
            # ASGI 2.4: an OSError once the client is gone; servers raise
            # their own errors too when they answered a broken request
            # themselves (uvicorn's 400 on bad chunked framing, say).
            self._gone = True
            raise ConnectionError(f"cannot answer: {exc!r}") from exc

    async def disconnected(self) -> None:
        if not self._body_read:  # a receiving request's (empty) body first
            with contextlib.suppress(ConnectionError):
                await self.read_body(0)
        while not self._gone:
            if (await self._receive())["type"] == "http.disconnect":
                self._gone = True

    def client_gone(self) -> bool:
        return self._gone

    async def upgrade(self) -> None:
        return None  # an http scope has no WebSocket: routing answered 400


class _WebSocketExchange(_HTTPExchange):
    """A ``websocket`` scope: it upgrades, or is refused before it does."""

    _upgrade = True

    def __init__(self, scope: Scope, receive: Receive, send: Send, path: str | None):
        super().__init__(scope, receive, send, path)
        self._denial = "websocket.http.response" in scope.get("extensions", {})

    async def read_body(self, limit: int) -> bytes | None:
        return b""

    async def respond(self, response: Response) -> None:
        """Refuse the handshake: with the response where the server can send
        one (the ASGI denial extension), else with its bare 403."""
        if not self._denial:
            await self._out({"type": "websocket.close", "code": 1008})
            return
        headers = (
            *response.headers,
            ("Content-Length", str(len(response.body))),
            ("Connection", "close"),  # the socket goes with the refusal
        )
        await self._out(
            {
                "type": "websocket.http.response.start",
                "status": response.status,
                "headers": _encoded(headers),
            }
        )
        await self._out({"type": "websocket.http.response.body", "body": response.body})

    async def start(self, status: int, headers: HeaderList) -> None:
        raise ConnectionError("a WebSocket handshake cannot stream an HTTP response")

    async def upgrade(self) -> ASGIWebSocket:  # type: ignore[override]
        await self._out({"type": "websocket.accept"})
        return ASGIWebSocket(self._receive, self._send)


# -- plain WebSocket ----------------------------------------------------------------


class MultiplexASGI:
    """An ASGI 3 application serving ``server`` over plain WebSockets.

    ``allowed_origins``, when given, is the set of ``Origin`` header values
    whose WebSocket handshakes are accepted; others (``null`` included) are
    refused with HTTP 403 before any channel opens. A handshake without an
    ``Origin`` is accepted, as the aiohttp adapter does: browsers always
    send one, so the check protects browser users from foreign pages, and a
    client that sends none is not a browser and could forge one anyway.
    The default accepts every origin, as SockJS servers do; set it on a
    public server whose services trust cookies, or a foreign page can open
    channels with them.
    """

    def __init__(
        self,
        server: MultiplexServer,
        *,
        allowed_origins: Iterable[str] | None = None,
    ) -> None:
        self.server = server
        self.limits = server.limits
        self.allowed_origins = (
            None if allowed_origins is None else frozenset(allowed_origins)
        )
        self._lifespan = _Lifespan(server.close)
        self.lifespan = self._lifespan.lifespan
        """The lifespan context for a framework that runs the lifespan
        itself (``FastAPI(lifespan=app.lifespan)``): its end closes the app."""

    async def close(self) -> None:
        """Close the multiplexer (every channel says goodbye)."""
        await self.server.close()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "websocket":
            await self._websocket(scope, receive, send)
        elif kind == "lifespan":
            await self._lifespan.serve_lifespan(receive, send)
        elif kind == "http":
            await self._http(send)
        else:
            raise ValueError(f"unsupported ASGI scope type {kind!r}")

    async def _websocket(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (await receive())["type"] != "websocket.connect":
            return  # the client left before the handshake
        request = request_from_scope(scope)
        if self.server.closing or not origin_allowed(
            request.origin, self.allowed_origins
        ):
            # A close before the accept is an HTTP 403 (ASGI spec).
            await send({"type": "websocket.close", "code": 1008})
            return
        await send({"type": "websocket.accept"})
        ws = ASGIWebSocket(receive, send)
        await serve_websocket(ws, request, self.server.accept, self.server.limits)

    async def _http(self, send: Send) -> None:
        await send(
            {
                "type": "http.response.start",
                "status": 426,
                "headers": [
                    (b"content-type", b"text/plain; charset=utf-8"),
                    (b"content-length", str(len(_HTTP_BODY)).encode()),
                    (b"upgrade", b"websocket"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": _HTTP_BODY})


class BrowserClientASGI:
    """The browser client's files (:mod:`websocket_multiplex.browser`) as an
    ASGI application, what ``add_client_routes`` is for aiohttp::

        # Starlette / FastAPI
        app.mount("/websocket-multiplex", BrowserClientASGI())
        # routed by hand: the files are then below the prefix
        client = BrowserClientASGI(prefix="/websocket-multiplex")

    ``GET`` and ``HEAD`` of ``<prefix>/websocket-multiplex.js`` (``.mjs``,
    ``.d.ts``, ``.d.mts``) answer the file; other paths 404, other methods
    405. It has no state: the lifespan is acknowledged, nothing more.
    """

    def __init__(self, *, prefix: str = "") -> None:
        self.prefix = prefix.rstrip("/")
        self._files = {f"/{file.name}": file for file in client_files()}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "lifespan":
            await _Lifespan(_nothing).serve_lifespan(receive, send)
            return
        if kind == "websocket":
            await send({"type": "websocket.close", "code": 1000})
            return
        if kind != "http":
            raise ValueError(f"unsupported ASGI scope type {kind!r}")
        method = scope.get("method", "GET")
        path = _below(scope, self.prefix)
        file = self._files.get(path or "")
        if file is None:
            status, headers, body = (
                404,
                [(b"content-type", b"text/plain")],
                b"Not found\n",
            )
        elif method not in ("GET", "HEAD"):
            status, headers, body = 405, [(b"allow", b"GET, HEAD")], b""
        else:
            status, headers, body = 200, _encoded(file.headers), file.body
        headers.append((b"content-length", str(len(body)).encode()))
        await send(
            {"type": "http.response.start", "status": status, "headers": headers}
        )
        await send(
            {"type": "http.response.body", "body": b"" if method == "HEAD" else body}
        )


async def _nothing() -> None:
    return None
