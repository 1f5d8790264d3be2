"""What stands between the listening socket and the HTTP server: a cap on
open connections, a deadline for the first request's headers, and a quiet
accept loop when the process runs out of descriptors.

Any client can open connections and keep them: idle, or sending a header
line now and then (slowloris). :class:`ConnectionGuard` wraps the HTTP
server's protocol factory: over ``max_connections`` a new connection is
closed at once, before the server sees it (so the ones it has keep being
served); a connection whose first request has not finished its headers
``header_timeout`` seconds after it opened is closed. Idle keep-alive
connections are the HTTP server's to time out (aiohttp's
``keepalive_timeout``). Every such event is counted, and logged through the
server's throttle.
"""

from __future__ import annotations

import asyncio
import errno
import logging
from collections.abc import Callable
from typing import Any, Final

from .throttle import LogThrottle

__all__ = ["ConnectionGuard", "quiet_accept_errors", "url_of"]

logger = logging.getLogger("websocket_multiplex")

_END_OF_HEADERS: Final = b"\r\n\r\n"
_OUT_OF_DESCRIPTORS: Final = frozenset({errno.EMFILE, errno.ENFILE})


class ConnectionGuard:
    """The protocol factory to listen with, around ``factory`` (the HTTP
    server's): ``loop.create_server(guard, host, port)``."""

    def __init__(
        self,
        factory: Callable[[], asyncio.Protocol],
        *,
        max_connections: int,
        header_timeout: float,
        log: LogThrottle,
    ) -> None:
        self._factory = factory
        self.max_connections = max_connections
        self.header_timeout = header_timeout
        self._log = log
        self.open = 0
        """Connections open now."""
        self.refused = 0
        """Connections closed at once for being over ``max_connections``."""
        self.timed_out = 0
        """Connections closed for not finishing their headers in time."""

    def __call__(self) -> asyncio.Protocol:
        return _Guarded(self)

    def admit(self) -> bool:
        """A connection opened: whether it may stay (else it is refused)."""
        if self.open >= self.max_connections:
            self.refused += 1
            self._log.warning(
                logger,
                "max_connections",
                "%d connections open (max_connections): refusing new ones",
                self.open,
            )
            return False
        self.open += 1
        return True

    def release(self) -> None:
        self.open -= 1

    def made(self) -> asyncio.Protocol:
        return self._factory()

    def too_slow(self) -> None:
        self.timed_out += 1
        self._log.info(
            logger,
            "header_timeout",
            "a client did not finish its request's headers in %g s: closed",
            self.header_timeout,
        )


class _Guarded(asyncio.Protocol):
    """One connection: the HTTP server's protocol, behind the guard."""

    __slots__ = ("_deadline", "_guard", "_inner", "_tail", "_transport")

    def __init__(self, guard: ConnectionGuard) -> None:
        self._guard = guard
        self._inner: asyncio.Protocol | None = None
        self._transport: asyncio.Transport | None = None
        self._deadline: asyncio.TimerHandle | None = None
        self._tail = b""  # the last bytes seen while waiting for the headers

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        if not self._guard.admit():
            transport.abort()  # cheap: no HTTP server work, no goodbye
            return
        self._transport = transport
        self._deadline = asyncio.get_running_loop().call_later(
            self._guard.header_timeout, self._headers_too_slow
        )
        self._inner = self._guard.made()
        self._inner.connection_made(transport)

    def data_received(self, data: bytes) -> None:
        if self._deadline is not None:
            seen = self._tail + data
            if _END_OF_HEADERS in seen:
                self._deadline.cancel()
                self._deadline = None
                self._tail = b""
            else:
                self._tail = seen[-3:]
        if self._inner is not None:
            self._inner.data_received(data)

    def eof_received(self) -> bool | None:
        return None if self._inner is None else self._inner.eof_received()

    def pause_writing(self) -> None:
        if self._inner is not None:
            self._inner.pause_writing()

    def resume_writing(self) -> None:
        if self._inner is not None:
            self._inner.resume_writing()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None
        if self._inner is not None:
            self._guard.release()
            self._inner.connection_lost(exc)
            self._inner = None

    def _headers_too_slow(self) -> None:
        self._deadline = None
        self._guard.too_slow()
        if self._transport is not None:
            self._transport.abort()


def quiet_accept_errors(
    loop: asyncio.AbstractEventLoop, log: LogThrottle
) -> Callable[[asyncio.AbstractEventLoop, dict[str, Any]], None]:
    """An exception handler for ``loop`` that turns asyncio's traceback for
    every failed ``accept()`` when descriptors run out into one throttled
    line saying what to raise; anything else goes to the previous handler."""
    previous = loop.get_exception_handler()

    def handle(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        exc = context.get("exception")
        if isinstance(exc, OSError) and exc.errno in _OUT_OF_DESCRIPTORS:
            log.warning(
                logger,
                "out of descriptors",
                "out of file descriptors (%s): new connections wait until "
                "some close; raise the limit (ulimit -n) or lower "
                "max_connections",
                exc.strerror,
            )
            return
        if previous is not None:
            previous(loop, context)
        else:
            loop.default_exception_handler(context)

    return handle


def url_of(listening: asyncio.Server, tls: bool) -> str:
    """The URL a listening server answers at, for a line saying so
    (``http+unix://PATH`` for a unix socket)."""
    address = listening.sockets[0].getsockname()
    scheme = "https" if tls else "http"
    if isinstance(address, str):  # a unix socket
        return f"{scheme}+unix://{address}"
    bound_host, bound_port = address[:2]
    if ":" in bound_host:  # IPv6
        bound_host = f"[{bound_host}]"
    return f"{scheme}://{bound_host}:{bound_port}/"
