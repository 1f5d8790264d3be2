"""Serve a :class:`~websocket_multiplex.MultiplexServer` as an ASGI 3 application.

The carrier is a plain WebSocket (PROTOCOL.md, "Carrier"): each text
message is one multiplex frame. The adapter speaks raw ASGI dictionaries
and imports no framework, so it runs under any ASGI server (uvicorn,
hypercorn, daphne) and mounts in any ASGI framework::

    from websocket_multiplex.adapters.asgi import MultiplexASGI

    app = MultiplexASGI(mux)                     # uvicorn module:app

    # Starlette / FastAPI
    routes = [WebSocketRoute("/multiplex", MultiplexASGI(mux))]

Scopes it answers:

``websocket``
    Accepted (unless the ``Origin`` is refused), then every text message
    goes to :meth:`Connection.receive
    <websocket_multiplex.Connection.receive>`. Binary messages are not
    frames: they are ignored and counted in ``counters.invalid_frames``,
    as the protocol ignores every invalid frame and keeps the connection
    usable. A disconnect closes every channel of the connection.
``lifespan``
    Startup completes at once; shutdown awaits :meth:`MultiplexServer.close
    <websocket_multiplex.MultiplexServer.close>`, which sends ``uns`` for
    every open channel before closing the sockets. Frameworks that run
    their own lifespan (Starlette's router does) do not forward it to
    mounted apps: pass them :meth:`MultiplexASGI.lifespan`, e.g.
    ``Starlette(routes=..., lifespan=mux_app.lifespan)``.
``http``
    ``426 Upgrade Required`` with a one-line explanation: this endpoint
    only speaks WebSocket.

Limits on message size and keepalive pings belong to the ASGI server, not
to this adapter. uvicorn accepts WebSocket messages up to ``ws_max_size``
(``--ws-max-size``, default 16 MiB) and closes the connection with 1009
when a client sends a larger one; ``Limits.max_frame_size`` then applies
to what gets through. Set it lower (e.g. ``--ws-max-size 1048576``, the
size ``add_websocket_route`` accepts) so that a client cannot make the
server buffer 16 MiB per message. Pings: ``--ws-ping-interval``.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import (
    AsyncIterator,
    Awaitable,
    Callable,
    Iterable,
    MutableMapping,
)
from typing import Any, Final

from ..asyncio.connection import Connection
from ..asyncio.server import MultiplexServer
from ..request import Headers, RequestInfo
from ._closing import fit_close_reason

__all__ = ["ASGITransport", "MultiplexASGI", "request_from_scope"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

logger = logging.getLogger("websocket_multiplex")

_HTTP_BODY: Final = b"This endpoint speaks WebSocket (websocket-multiplex).\n"


def request_from_scope(scope: Scope) -> RequestInfo:
    """Copy what a service may know about the client out of an ASGI scope.

    Header names and values are bytes in ASGI; HTTP allows only Latin-1 in
    them, so that is how they are decoded (as the ASGI spec advises).
    """
    client = scope.get("client")
    return RequestInfo(
        path=scope.get("path", "/"),
        query_string=scope.get("query_string", b"").decode("latin-1"),
        headers=Headers(
            (name.decode("latin-1"), value.decode("latin-1"))
            for name, value in scope.get("headers", ())
        ),
        remote_address=client[0] if client else None,
    )


class ASGITransport:
    """One accepted ASGI WebSocket, as the multiplexer's :class:`Transport`.

    The ASGI server owns the socket; this object only turns ``send`` and
    ``close`` into ASGI messages and remembers when the socket is gone, so
    that late sends fail with ``ConnectionError`` as the seam requires
    instead of reaching an ASGI server that would reject them.
    """

    def __init__(self, scope: Scope, send: Send) -> None:
        self._request = request_from_scope(scope)
        self._send = send
        self._closed = False

    @property
    def request(self) -> RequestInfo:
        return self._request

    @property
    def closed(self) -> bool:
        return self._closed

    async def send(self, text: str) -> None:
        if self._closed:
            raise ConnectionError("the WebSocket is closed")
        try:
            await self._send({"type": "websocket.send", "text": text})
        except OSError as exc:
            # ASGI 2.4: sending on a closed socket raises an OSError subclass
            # (uvicorn's ClientDisconnected); the seam promises ConnectionError.
            self._closed = True
            raise ConnectionError("the WebSocket is closed") from exc

    async def close(self, code: int, reason: str) -> None:
        if self._closed:
            return
        self._closed = True
        reason = fit_close_reason(reason)
        message = {"type": "websocket.close", "code": code, "reason": reason}
        with contextlib.suppress(OSError):  # already gone: closed either way
            await self._send(message)

    def connection_lost(self) -> None:
        """The ASGI server reported a disconnect: no more sends."""
        self._closed = True


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
        self.allowed_origins = (
            None if allowed_origins is None else frozenset(allowed_origins)
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "websocket":
            await self._websocket(scope, receive, send)
        elif kind == "lifespan":
            await self._lifespan(receive, send)
        elif kind == "http":
            await self._http(send)
        else:
            raise ValueError(f"unsupported ASGI scope type {kind!r}")

    @contextlib.asynccontextmanager
    async def lifespan(self, app: object = None) -> AsyncIterator[None]:
        """Lifespan context for frameworks that own the lifespan protocol.

        Starlette and FastAPI call ``lifespan(app)`` and do not forward the
        lifespan scope to mounted apps; on shutdown this closes ``server``.
        """
        try:
            yield
        finally:
            await self.server.close()

    # -- websocket ---------------------------------------------------------

    async def _websocket(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (await receive())["type"] != "websocket.connect":
            return  # the client left before the handshake
        transport = ASGITransport(scope, send)
        if not self._origin_allowed(transport.request):
            # A close before the accept is an HTTP 403 (ASGI spec).
            await send({"type": "websocket.close", "code": 1008})
            return
        await send({"type": "websocket.accept"})
        connection = self.server.accept(transport)
        try:
            await self._receive_loop(connection, receive)
        finally:
            transport.connection_lost()
            await connection.connection_lost()

    async def _receive_loop(self, connection: Connection, receive: Receive) -> None:
        while True:
            message = await receive()
            if message["type"] == "websocket.disconnect":
                return
            if message["type"] != "websocket.receive":
                continue
            text = message.get("text")
            if text is not None:
                connection.receive(text)
            else:
                self._binary_received(connection)

    def _binary_received(self, connection: Connection) -> None:
        # Frames are text (PROTOCOL.md, "Carrier"); invalid input is ignored.
        connection.counters.frames_received += 1
        connection.counters.invalid_frames += 1
        logger.debug("%r: ignored a binary message", connection)

    def _origin_allowed(self, request: RequestInfo) -> bool:
        allowed, origin = self.allowed_origins, request.origin
        return allowed is None or origin is None or origin in allowed

    # -- lifespan and http -------------------------------------------------

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self._shutdown(send)
                return

    async def _shutdown(self, send: Send) -> None:
        try:
            await self.server.close()
        except Exception as exc:
            logger.exception("closing the multiplex server failed")
            await send({"type": "lifespan.shutdown.failed", "message": repr(exc)})
        else:
            await send({"type": "lifespan.shutdown.complete"})

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
