"""The aio-libs ``sockjs`` 0.13 pieces we use, and the gaps we close in them.

SOCKJS-NOTES.md measured them; each fix says which sockjs behaviour it
replaces, and a test fails if the pinned minor version changes:

* a second receiving request for a held session is answered ``2010`` and
  then kills the session the first request holds: we keep the holder;
* a polling request the client abandoned goes unnoticed until the next
  heartbeat: we watch held requests and release them when their socket goes,
  and a request that finds its session held by a gone one releases it too,
  so that a client polling again at once is not answered ``2010``;
* a polling session whose client stops polling never expires (a leak): we
  start its ``disconnect_delay`` countdown whenever no request holds it;
* ``htmlfile`` loses messages containing ``</script>``: we escape ``<``;
* ``eventsource`` sends frames unescaped, but sockjs-client runs each one
  through ``decodeURI``: a ``%`` in any message kills the session. We
  escape ``%``, CR, LF and NUL as sockjs-node does;
* its websocket transport costs more per message than the rest of our hot
  path: we serve that one ourselves (._websocket);
* its outgoing queue is unbounded: we measure it, and sending waits while
  it is above the server's ``Limits.write_limit``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections import deque
from typing import Any, Final

from aiohttp import web
from sockjs import Frame, MsgType, Session, SessionManager, SockjsMessage
from sockjs.transports import transport_handlers
from sockjs.transports.eventsource import EventsourceTransport
from sockjs.transports.htmlfile import HTMLFileTransport
from sockjs.transports.websocket import WebSocketTransport

from ..asyncio.connection import Connection
from ..asyncio.server import MultiplexServer
from ..request import RequestInfo
from ._closing import CLOSE_GRACE, abort_if_stuck
from ._requests import request_info

_DISCONNECT_POLL: Final = 1.0  # seconds between checks of a held request
_FETCH_GRACE: Final = 1.0  # seconds a closed polling session waits to be fetched


class _OutgoingCount(deque[tuple[Frame, Any]]):
    """sockjs's session queue, counting the message characters it holds."""

    def __init__(self, high_water: int) -> None:
        super().__init__()
        self.size = 0
        self.high_water = high_water
        self.drained = asyncio.Event()
        self.drained.set()
        self.emptied = asyncio.Event()

    def popleft(self) -> tuple[Frame, Any]:
        frame, data = super().popleft()
        if not self:
            self.emptied.set()
        if frame is Frame.MESSAGE:  # data: the list of messages packed so far
            self.size -= sum(map(len, data))
            if self.size <= self.high_water // 4:
                self.drained.set()
        return frame, data


class BoundedSession(Session):  # type: ignore[misc]
    """A sockjs session whose outgoing queue is measured, for backpressure.

    sockjs queues without bound and packs what a polling client has not
    fetched into one ever-growing frame (SOCKJS-NOTES.md, 6); counting it
    lets :meth:`SockJSTransport.send` wait instead.
    """

    def __init__(self, *args: Any, high_water: int, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._queue = self.outgoing = _OutgoingCount(high_water)
        # The receiving request that found the session free, and the work
        # to cancel when its client has gone.
        self.holder: tuple[web.Request, asyncio.Future[None]] | None = None

    def feed(self, frame: Frame, data: Any) -> None:
        if frame is Frame.MESSAGE:
            self.outgoing.size += len(data)
        super().feed(frame, data)


class CheckedSessionManager(SessionManager):  # type: ignore[misc]
    """sockjs's session manager, refusing ``xhr_send``/``jsonp_send`` bodies
    that are not a JSON array, as sockjs-node does ("Payload expected.").

    sockjs 0.13 iterates over whatever JSON it gets: a number or ``null``
    raised (a 500 and a traceback in the log on every request, a log flood
    any client can cause), a string was delivered character by character.
    """

    async def remote_messages(self, session: Session, messages: Any) -> None:
        if not isinstance(messages, list):
            raise web.HTTPInternalServerError(text="Payload expected.")
        await super().remote_messages(session, messages)


class SockJSTransport:
    """The :class:`~websocket_multiplex.Transport` over one SockJS session."""

    def __init__(self, session: BoundedSession, request: RequestInfo) -> None:
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
        # sockjs answers "Go away!" to any request for a closing session and
        # drops what it still queues, so let a polling client fetch the
        # goodbyes first: its next request follows each answer within
        # milliseconds. A client that stopped polling costs _FETCH_GRACE.
        outgoing = self._session.outgoing
        if outgoing:
            outgoing.emptied.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(_FETCH_GRACE):
                    await outgoing.emptied.wait()
        # SockJS reserves 1000 and 3000-4999 for applications.
        self._session.close(code if code == 1000 or code >= 3000 else 3000, reason)
        asyncio.get_running_loop().call_later(CLOSE_GRACE, self._abort_if_stuck)

    def _abort_if_stuck(self) -> None:
        request = self._session.request  # None once no request holds it
        if request is not None and request.transport is not None:
            abort_if_stuck(request.transport)


class SessionBridge:
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
            transport = SockJSTransport(session, request_info(session.request))
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
    """Subclass a sockjs receiving transport to fix how it holds sessions."""

    async def handle_session(self: Any) -> None:
        session = self.session
        if self.manager.is_acquired(session):
            await _release_if_holder_left(session)
        holding = not self.manager.is_acquired(session)
        if not holding:
            # Another request holds the session: it answers 2010, and the
            # route must not close the holder's session on the way out.
            self.create_session = False
        work = asyncio.ensure_future(base.handle_session(self))
        if holding:
            session.holder = (self.request, work)
        watcher = asyncio.ensure_future(_wait_disconnect(self.request))
        try:
            await asyncio.wait([work, watcher], return_when=asyncio.FIRST_COMPLETED)
        finally:
            watcher.cancel()
            if not work.done():
                work.cancel()  # the client went away: release the session
            await asyncio.gather(work, return_exceptions=True)
            if session.holder is not None and session.holder[1] is work:
                session.holder = None
            if not self.manager.is_acquired(session):
                # sockjs never sets an expiry on a released polling session,
                # so a client that stops polling would leak it forever.
                session.expire()
        if work.done() and not work.cancelled() and work.exception() is not None:
            raise work.exception()

    return type(base.__name__, (base,), {"handle_session": handle_session})


async def _release_if_holder_left(session: BoundedSession) -> None:
    """End the hold of a request whose client has gone since the watch last
    looked, as the watch would: the session is then interrupted (``1002``)."""
    if session.holder is None:
        return
    request, work = session.holder
    if request is not session.request or not _gone(request):
        return  # not the holder (session.request is), or its client is there
    work.cancel()
    await asyncio.wait([work], timeout=_DISCONNECT_POLL)


async def _wait_disconnect(request: web.Request) -> None:
    while not _gone(request):
        await asyncio.sleep(_DISCONNECT_POLL)


def _gone(request: web.Request) -> bool:
    transport = request.transport
    return transport is None or transport.is_closing()


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


_SAFER: Final[dict[type[Any], type[Any]]] = {
    HTMLFileTransport: _SafeHTMLFileTransport,
    EventsourceTransport: _SafeEventsourceTransport,
}


def fixed_transport_handlers() -> dict[str, type[Any]]:
    """sockjs's transports but its websocket one (ours: ._websocket), fixed."""
    fixed: dict[str, type[Any]] = {}
    for name, cls in transport_handlers.items():
        if cls is WebSocketTransport:
            continue
        cls = _SAFER.get(cls, cls)
        if hasattr(cls, "handle_session"):
            cls = _keeps_holder_and_watches_disconnect(cls)
        fixed[name] = cls
    return fixed
