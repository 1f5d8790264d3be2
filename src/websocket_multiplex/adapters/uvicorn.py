"""Running the ASGI adapters under uvicorn, with what SockJS needs of it.

::

    from websocket_multiplex.adapters.asgi import SockJSASGI
    from websocket_multiplex.adapters.uvicorn import run

    run(SockJSASGI(mux, prefix="/multiplex"), port=9999)

:func:`run` (or :func:`config`, for ``uvicorn.Server``) is uvicorn with:

* ``ws_max_size`` set to ``Limits.max_message_size`` (uvicorn's default,
  16 MiB, lets a client make the server buffer that much per message);
* ``ws_per_message_deflate`` off, as the aiohttp adapter's ``compress``:
  browsers always offer it, and it costs several times the CPU per
  message and some 100 KiB per connection (docs/PERFORMANCE.md);
* the ``h11`` HTTP implementation: ``httptools`` sends chunked responses
  to HTTP/1.0 clients, which cannot read them (nginx talks HTTP/1.0 to
  its upstreams unless told ``proxy_http_version 1.1``), and SockJS's
  streaming transports are streamed responses;
* WebSocket upgrades for ``GET`` requests only (:class:`H11Protocol`), so
  that the endpoint answers the others itself (405, as SockJS requires);
  uvicorn hands any request that asks for an upgrade to its WebSocket
  implementation, which refuses it with a body and a type of its own;
* a shutdown that closes the application first, while uvicorn still
  listens (:class:`Server`): uvicorn stops listening, then waits for every
  request to end, and only then sends the lifespan's shutdown, so held
  SockJS requests (streams, polls) would keep it waiting and polling
  clients could never fetch their goodbyes; and a bounded graceful
  shutdown (``timeout_graceful_shutdown``, 30 s);
* no access log (``access_log=False``), as ``run_app`` for aiohttp: one
  line per request is a log volume any client can choose
  (docs/LIMITS.md); pass ``access_log=True`` to have it;
* ``ready``, called with the URL once the server listens (to print it, or
  to know when to start a client), as ``run_app``'s.

Any other uvicorn option passes through (``ssl_keyfile``, ``ws_ping_interval``...).
This module imports uvicorn: ``pip install 'uvicorn[standard]'``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol as _UvicornH11Protocol

from ..asyncio.listener import url_of
from ..limits import DEFAULT_LIMITS, Limits

__all__ = ["H11Protocol", "Server", "config", "run", "server"]

logger = logging.getLogger("websocket_multiplex")


class H11Protocol(_UvicornH11Protocol):
    """uvicorn's h11 protocol, upgrading only ``GET`` requests to WebSocket
    (RFC 6455, 4.1: the opening handshake is a GET); any other request that
    asks for one reaches the application as plain HTTP."""

    def _should_upgrade(self) -> bool:
        scope = getattr(self, "scope", None) or {}
        return scope.get("method") == "GET" and bool(super()._should_upgrade())


def config(
    app: Any,
    host: str = "127.0.0.1",
    port: int = 8080,
    *,
    limits: Limits | None = None,
    **options: Any,
) -> uvicorn.Config:
    """A ``uvicorn.Config`` for ``app`` with the settings above; ``options``
    go to ``uvicorn.Config`` and win over them. ``limits`` defaults to the
    app's (a :class:`~websocket_multiplex.adapters.asgi.SockJSASGI` or
    :class:`~websocket_multiplex.adapters.asgi.MultiplexASGI` has them)."""
    if limits is None:
        limits = getattr(app, "limits", DEFAULT_LIMITS)
    settings: dict[str, Any] = {
        "http": H11Protocol,
        "ws_max_size": limits.max_message_size,
        "ws_per_message_deflate": bool(getattr(app, "compress", False)),
        "timeout_graceful_shutdown": 30,
        "access_log": False,
        **options,
    }
    return uvicorn.Config(app, host=host, port=port, **settings)


class Server(uvicorn.Server):
    """``uvicorn.Server`` that awaits ``close`` (the application's: every
    session says goodbye) before uvicorn's own shutdown, while it still
    listens, as :func:`websocket_multiplex.adapters.aiohttp.serve` does."""

    def __init__(
        self,
        config: uvicorn.Config,
        close: Callable[[], Awaitable[None]] | None = None,
        ready: Callable[[str], object] | None = None,
    ) -> None:
        super().__init__(config)
        self._close = close
        self._ready = ready

    async def startup(self, sockets: Any = None) -> None:
        await super().startup(sockets)
        if self.started and self._ready is not None and self.servers:
            self._ready(url_of(self.servers[0], self.config.is_ssl))

    async def shutdown(self, sockets: Any = None) -> None:
        if self._close is not None:
            close, self._close = self._close, None
            try:
                async with asyncio.timeout(self.config.timeout_graceful_shutdown):
                    await close()
            except Exception:  # TimeoutError too: uvicorn's shutdown goes on
                logger.exception("closing the application before shutdown failed")
        await super().shutdown(sockets)


def server(
    app: Any,
    host: str = "127.0.0.1",
    port: int = 8080,
    *,
    limits: Limits | None = None,
    close: Callable[[], Awaitable[None]] | None = None,
    ready: Callable[[str], object] | None = None,
    **options: Any,
) -> Server:
    """A :class:`Server` for ``app`` (see :func:`config`), to ``await
    server.serve()`` in a running loop. ``close`` defaults to the app's
    ``close`` (``SockJSASGI`` and ``MultiplexASGI`` have one); for an app
    that wraps them (a Starlette or FastAPI app), pass theirs. ``ready`` is
    called with the URL once it listens."""
    if close is None:
        close = getattr(app, "close", None)
    return Server(config(app, host, port, limits=limits, **options), close, ready)


def run(
    app: Any,
    host: str = "127.0.0.1",
    port: int = 8080,
    *,
    limits: Limits | None = None,
    close: Callable[[], Awaitable[None]] | None = None,
    ready: Callable[[str], object] | None = None,
    **options: Any,
) -> None:
    """Serve ``app`` with uvicorn until SIGINT or SIGTERM (see :func:`server`)."""
    server(app, host, port, limits=limits, close=close, ready=ready, **options).run()
