"""Plain SockJS, with no multiplexing: one handler per session, text both ways.

::

    async def echo(connection: SockJSConnection) -> None:
        async for message in connection:       # ends when the session closes
            await connection.send(message)

    add_sockjs_endpoint(app, echo, prefix="/echo")       # aiohttp
    app = SockJSASGI(echo, prefix="/echo")               # ASGI

This is the same SockJS endpoint the multiplexer is served on: a
:class:`SockJSApplication` makes one :class:`SockJSConnection` per session
where a :class:`~websocket_multiplex.MultiplexServer` makes one
multiplexed :class:`~websocket_multiplex.Connection`.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Final, Self

from ..codes import CloseCode
from ..exceptions import ConnectionClosed
from ..limits import DEFAULT_LIMITS, Limits
from ..request import RequestInfo
from .inbox import wake_all
from .server import MultiplexServer
from .throttle import LogThrottle
from .transport import Transport

__all__ = [
    "SessionInbox",
    "SockJSApplication",
    "SockJSConnection",
    "SockJSHandler",
    "application_for",
]

logger = logging.getLogger("websocket_multiplex")

LOST: Final = (1006, "connection lost")
"""What a connection the client left says it was closed with."""
GOING_AWAY: Final = (CloseCode.GOING_AWAY, "server shutting down")
SLOW: Final = (CloseCode.SLOW_CLIENT, "slow client")
"""What a connection whose client stays behind for ``slow_client_timeout``
is closed with (``Limits.slow_client_timeout``, as for multiplexed ones)."""


class SessionInbox:
    """What the client sent one plain SockJS connection, not read yet, and
    how the connection ended: the carrier's
    :class:`~websocket_multiplex.Recipient`.

    Bounded by ``Limits.max_queue`` messages and ``max_queue_size``
    characters: beyond, :meth:`backlog` makes the carrier wait.
    """

    __slots__ = (
        "_closed_waiters",
        "_ended",
        "_limits",
        "_messages",
        "_room",
        "_size",
        "_waiter",
        "close",
    )

    def __init__(self, limits: Limits, ended: Callable[[], Awaitable[None]]) -> None:
        self._limits = limits
        self._ended = ended
        self._messages: deque[str] = deque()
        self._size = 0
        self._waiter: asyncio.Future[None] | None = None
        self._room: asyncio.Future[None] | None = None  # the carrier waits on it
        self._closed_waiters: list[asyncio.Future[None]] = []
        self.close: tuple[int, str] | None = None
        """``(code, reason)`` once closed, by either side."""

    # -- the carrier's side -----------------------------------------------------

    def receive(self, text: str) -> None:
        if self.close is not None:
            return
        self._messages.append(text)
        self._size += len(text)
        if self._waiter is not None:
            wake_all([self._waiter])

    def backlog(self) -> Awaitable[None] | None:
        if self._has_room() or self.close is not None:
            return None
        if self._room is None:
            self._room = asyncio.get_running_loop().create_future()
        return asyncio.shield(self._room)

    async def connection_lost(self) -> None:
        self.closed_with(*LOST)
        await self._ended()

    # -- the connection's side ---------------------------------------------------

    async def take(self, timeout: float | None) -> str:
        """The next message; raises :class:`ConnectionClosed` once closed
        and read to the end."""
        while not self._messages:
            if self.close is not None:
                raise ConnectionClosed(*self.close)
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                async with asyncio.timeout(timeout):
                    await self._waiter
            finally:
                self._waiter = None
        text = self._messages.popleft()
        self._size -= len(text)
        if self._room is not None and self._has_room():
            room, self._room = self._room, None
            wake_all([room])
        return text

    def closed_with(self, code: int, reason: str) -> bool:
        """Record the close; returns whether it was open."""
        if self.close is not None:
            return False
        self.close = (code, reason)
        waiters = [*self._closed_waiters, self._waiter, self._room]
        self._closed_waiters, self._room = [], None
        wake_all(w for w in waiters if w is not None)
        return True

    async def wait_closed(self) -> None:
        if self.close is None:
            waiter = asyncio.get_running_loop().create_future()
            self._closed_waiters.append(waiter)
            await waiter

    def _has_room(self) -> bool:
        limits = self._limits
        return (
            len(self._messages) < limits.max_queue
            and self._size < limits.max_queue_size
        )


class SockJSConnection:
    """One SockJS session as a plain application sees it.

    Messages arrive in order through ``async for message in connection`` or
    :meth:`receive`; :meth:`send` sends one (and waits while the client is
    behind); :meth:`close` ends the session. :attr:`request` is what the
    opening request said (headers, cookies, query, remote address).

    When the handler leaves ``Limits.max_queue`` messages (or
    ``max_queue_size`` characters) unread, the server stops reading from
    the client until the handler catches up (a message packed with frames
    is stopped between two slices of 256): the client is slowed down, not
    cut off. A client that reads slower than the handler sends makes
    :meth:`send` wait; after ``Limits.slow_client_timeout`` it is closed
    (4008, ``slow client``).
    """

    __slots__ = ("_inbox", "_slow_after", "_transport")

    def __init__(
        self, transport: Transport, inbox: SessionInbox, limits: Limits = DEFAULT_LIMITS
    ) -> None:
        self._transport = transport
        self._inbox = inbox
        self._slow_after = limits.slow_client_timeout

    def __repr__(self) -> str:
        close = self._inbox.close
        state = "open" if close is None else f"closed {close[0]}"
        return f"<SockJSConnection {state} from {self.request.remote_address}>"

    @property
    def request(self) -> RequestInfo:
        return self._transport.request

    @property
    def closed(self) -> bool:
        return self._inbox.close is not None

    @property
    def close_code(self) -> int | None:
        """The code it was closed with (1006: the client left), or ``None``."""
        close = self._inbox.close
        return None if close is None else close[0]

    async def send(self, text: str) -> None:
        """Send ``text`` to the client; raises :class:`ConnectionClosed` once
        the session is closed."""
        close = self._inbox.close
        if close is not None:
            raise ConnectionClosed(*close)
        try:
            async with asyncio.timeout(self._slow_after):
                await self._transport.send(text)
        except ConnectionError:
            self._inbox.closed_with(*LOST)
            raise ConnectionClosed(*LOST) from None
        except TimeoutError:  # the client stopped reading: as slow clients go
            await self.close(*SLOW)
            raise ConnectionClosed(*SLOW) from None

    async def close(self, code: int = 1000, reason: str = "Normal closure") -> None:
        """Close the session: the client gets what was sent, then the close
        (SockJS leaves applications 1000 and 3000-4999; others become 3000)."""
        if self._inbox.closed_with(code, reason):
            await self._transport.close(code, reason)

    async def receive(self, timeout: float | None = None) -> str:
        """The next message; raises :class:`ConnectionClosed` when none will
        come, ``TimeoutError`` after ``timeout`` seconds if given."""
        return await self._inbox.take(timeout)

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> str:
        try:
            return await self._inbox.take(None)
        except ConnectionClosed:
            raise StopAsyncIteration from None

    async def wait_closed(self) -> None:
        """Return once the session is closed, by either side."""
        await self._inbox.wait_closed()


SockJSHandler = Callable[[SockJSConnection], Awaitable[None]]
"""A plain SockJS service: an async function that owns one session until it
returns (the session then closes)."""


class SockJSApplication:
    """Runs ``handler`` once per SockJS session, each in a task of its own.

    When the handler returns, its session closes; if it raises, the session
    closes with 3000 and the traceback is logged (throttled: a client can
    make a handler fail at will). When the client leaves, the handler's
    ``receive`` ends; it then has ``handler_timeout`` seconds to return
    before it is cancelled.
    """

    def __init__(
        self,
        handler: SockJSHandler,
        *,
        limits: Limits = DEFAULT_LIMITS,
        handler_timeout: float = 5.0,
    ) -> None:
        if not callable(handler):
            raise TypeError(
                "a SockJS handler is an async function taking a SockJSConnection, "
                f"not {handler!r}"
            )
        self.handler = handler
        self.limits = limits
        self.handler_timeout = handler_timeout
        self._tasks: dict[SockJSConnection, asyncio.Task[None]] = {}
        self._closing = False
        self._log = LogThrottle()

    @property
    def closing(self) -> bool:
        """:meth:`close` has begun: no new session is accepted."""
        return self._closing

    @property
    def connections(self) -> list[SockJSConnection]:
        return list(self._tasks)

    def accept(self, transport: Transport) -> SessionInbox:
        """Start a handler for a new session (the endpoint calls this)."""

        async def ended() -> None:
            await self._finish(connection)

        inbox = SessionInbox(self.limits, ended)
        connection = SockJSConnection(transport, inbox, self.limits)
        task = asyncio.get_running_loop().create_task(self._run(connection))
        self._tasks[connection] = task
        task.add_done_callback(lambda _: self._tasks.pop(connection, None))
        return inbox

    async def close(self) -> None:
        """Close every session (1001, "server shutting down"; SockJS says
        3000) and wait for their handlers."""
        self._closing = True
        connections = list(self._tasks)
        await asyncio.gather(
            *(c.close(*GOING_AWAY) for c in connections), return_exceptions=True
        )
        await asyncio.gather(*(self._finish(c) for c in connections))

    async def _run(self, connection: SockJSConnection) -> None:
        try:
            await self.handler(connection)
        except asyncio.CancelledError:
            raise
        except ConnectionClosed:  # sent on a closed session: it was over
            return
        except Exception:
            self._log.exception(
                logger, "sockjs handler failed", "SockJS handler failed"
            )
            code = (CloseCode.APPLICATION, "handler failed")
        else:
            code = (CloseCode.NORMAL, "Normal closure")
        try:
            await connection.close(*code)
        except Exception:  # the carrier may be half gone already
            logger.debug("closing %r failed", connection, exc_info=True)

    async def _finish(self, connection: SockJSConnection) -> None:
        """The session is over: the handler returns within handler_timeout,
        or is cancelled."""
        task = self._tasks.get(connection)
        if task is None or task is asyncio.current_task():
            return
        _, pending = await asyncio.wait([task], timeout=self.handler_timeout)
        for stuck in pending:
            stuck.cancel()
            await asyncio.wait([stuck], timeout=self.handler_timeout)


def application_for(
    server: MultiplexServer | SockJSHandler, limits: Limits | None
) -> tuple[MultiplexServer | SockJSApplication, Limits]:
    """What serves an endpoint's sessions, and its limits: the multiplexer
    itself (and its limits unless others are given), or a
    :class:`SockJSApplication` running the plain handler ``server``."""
    if isinstance(server, MultiplexServer):
        return server, limits or server.limits
    limits = limits or DEFAULT_LIMITS
    return SockJSApplication(server, limits=limits), limits
