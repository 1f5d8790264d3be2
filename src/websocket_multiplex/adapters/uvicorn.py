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
  implementation, which refuses it with a body and a type of its own.

Any other uvicorn option passes through (``ssl_keyfile``, ``ws_ping_interval``...).
This module imports uvicorn: ``pip install 'uvicorn[standard]'``.
"""

from __future__ import annotations

from typing import Any

import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol as _UvicornH11Protocol

from ..limits import DEFAULT_LIMITS, Limits

__all__ = ["H11Protocol", "config", "run"]


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
        "ws_per_message_deflate": False,
        **options,
    }
    return uvicorn.Config(app, host=host, port=port, **settings)


def run(
    app: Any,
    host: str = "127.0.0.1",
    port: int = 8080,
    *,
    limits: Limits | None = None,
    **options: Any,
) -> None:
    """Serve ``app`` with uvicorn until SIGINT or SIGTERM (see :func:`config`)."""
    uvicorn.Server(config(app, host, port, limits=limits, **options)).run()
