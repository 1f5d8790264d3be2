"""A SockJS endpoint on asyncio, for any web framework.

A driver (:mod:`websocket_multiplex.adapters.aiohttp`,
:mod:`websocket_multiplex.adapters.asgi`) turns each HTTP request below
the endpoint's prefix into an :class:`HTTPExchange` and awaits
:meth:`SockJSEndpoint.handle`. Everything SockJS is decided by the
sans-I/O core (:mod:`websocket_multiplex.sockjs`); this module carries it
out: it keeps the sessions, times their heartbeats and expiry, holds
receiving requests while frames go out to them, hands what sending
requests carry to the session's :class:`~websocket_multiplex.Inlet`, and
runs WebSockets with :func:`~websocket_multiplex.asyncio.websocket.serve_websocket`.

What serves the sessions is an :class:`Application`: a
:class:`~websocket_multiplex.MultiplexServer`, or a
:class:`~websocket_multiplex.asyncio.sockjs_connection.SockJSApplication`
running a plain SockJS handler.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Final, Protocol

from ..exceptions import BrokenFraming, LocalProtocolError
from ..limits import Limits
from ..request import RequestInfo
from ..sockjs.http import (
    HeaderList,
    Kind,
    Request,
    Response,
    Route,
    decode_send,
    error_response,
    not_found,
    receiver_for,
    receiving_response,
    route,
    sent_response,
)
from ..sockjs.options import SockJSOptions
from ..sockjs.session import Attached, Expiry, Receiver, Session, SessionState
from .inbox import wake_all
from .throttle import LogThrottle
from .transport import Inlet, Recipient, Transport
from .websocket import WebSocket, serve_websocket, sockjs_close_code

__all__ = [
    "LOCAL_SCRIPT",
    "Application",
    "HTTPExchange",
    "SockJSEndpoint",
    "read_sockjs_client",
]

logger = logging.getLogger("websocket_multiplex")


class Application(Protocol):
    """What serves an endpoint's sessions: one recipient per session."""

    def accept(self, transport: Transport) -> Recipient:
        """A session opened: return what its messages go to."""
        ...

    @property
    def closing(self) -> bool:
        """Shutting down: no new session."""
        ...


class HTTPExchange(Protocol):
    """One HTTP request and its response, as a driver offers them.

    Writes raise ``ConnectionError`` once the client is gone.
    """

    @property
    def request(self) -> Request:
        """The request, its path below the endpoint's prefix."""
        ...

    @property
    def info(self) -> RequestInfo:
        """What the application may know of it (captured now)."""
        ...

    async def read_body(self, limit: int) -> bytes | None:
        """The whole body; ``None`` if it is longer than ``limit`` bytes."""
        ...

    async def respond(self, response: Response) -> None:
        """Send a whole response."""
        ...

    async def start(self, status: int, headers: HeaderList) -> None:
        """Begin a streamed response."""
        ...

    async def write(self, data: bytes) -> None:
        """Write part of a streamed response, and flush it."""
        ...

    async def end(self) -> None:
        """Finish a streamed response."""
        ...

    async def disconnected(self) -> None:
        """Return once the client has gone (a receiving request waits on
        this beside its frames)."""
        ...

    def client_gone(self) -> bool:
        """Whether the client is known to have gone, at a glance."""
        ...

    async def upgrade(self) -> WebSocket | None:
        """Accept the WebSocket this request asks for; ``None`` if the
        handshake failed (the driver has answered it)."""
        ...


_TOO_MANY: Final = "Too many sessions: the server is full, try again later."

LOCAL_SCRIPT: Final = "/sockjs.min.js"
"""Where an endpoint given a local copy of sockjs-client serves it."""


def read_sockjs_client(path: os.PathLike[str]) -> bytes:
    """A local sockjs-client, for an endpoint to serve at :data:`LOCAL_SCRIPT`
    (machines whose browsers cannot reach the CDN)."""
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise ValueError(
            f"sockjs_url {os.fspath(path)!r} cannot be read ({exc.strerror}): give "
            "the path of sockjs-client 1.x's dist/sockjs.min.js, or a URL as a str"
        ) from None


class SockJSEndpoint:
    """One SockJS endpoint: its sessions, and the answer to every request.

    ``app`` serves the sessions; ``options`` say what the endpoint offers;
    ``limits`` bound what clients can make it hold
    (``max_sessions``, ``max_session_id_length``, ``max_message_size``,
    ``max_message_frames``, ``frame_rate``, ``write_limit``).
    """

    def __init__(
        self,
        app: Application,
        options: SockJSOptions,
        limits: Limits,
        *,
        script: bytes | None = None,
    ) -> None:
        self.app = app
        self._script = None
        if script is not None:  # a local sockjs-client, cached like iframe.html
            self._script = Response(
                200,
                (
                    ("Content-Type", "text/javascript; charset=UTF-8"),
                    ("Cache-Control", "public, max-age=31536000"),
                    ("X-Content-Type-Options", "nosniff"),
                ),
                script,
            )
        self.options = options
        self.limits = limits
        self.sessions: dict[str, HTTPSession] = {}
        """The sessions of the HTTP transports, by id."""
        self.websockets = 0
        """WebSocket sessions open now (SockJS-framed and raw)."""
        self.log_throttle = LogThrottle()
        self._endings: set[asyncio.Task[None]] = set()

    def __repr__(self) -> str:
        return f"<SockJSEndpoint, {len(self.sessions)} sessions>"

    async def handle(self, exchange: HTTPExchange) -> None:
        """Answer one request below the endpoint's prefix, whatever it is."""
        try:
            await self._handle(exchange)
        except ConnectionError as exc:  # the client left: nothing to answer
            logger.debug("%r: client gone: %r", self, exc)
        except Exception:  # a bug: said once per interval, not per request
            self.log_throttle.exception(
                logger, "sockjs failed", "%r failed on a request", self
            )

    async def _handle(self, exchange: HTTPExchange) -> None:
        request = exchange.request
        script = self._script
        if (
            script is not None
            and request.path == LOCAL_SCRIPT
            and request.method == "GET"
        ):
            await exchange.respond(script)
            return
        found = route(request, self.options, self.limits, _entropy, time.time())
        if isinstance(found, Response):
            await exchange.respond(found)
        elif request.upgrade and not found.kind.websocket:
            await exchange.respond(
                error_response(400, "Not a valid websocket request", request)
            )
        elif found.kind.websocket:
            await self._websocket(found, exchange)
        elif found.kind.sends:
            await self._send(found, exchange)
        else:
            await self._receive(found, exchange)

    async def close(self) -> None:
        """Wait for the sessions' applications to be told they ended."""
        for session in list(self.sessions.values()):
            session.forget()
        if self._endings:
            await asyncio.gather(*self._endings, return_exceptions=True)

    # -- WebSockets -----------------------------------------------------------

    async def _websocket(self, found: Route, exchange: HTTPExchange) -> None:
        refusal = self._refuse_new_session(exchange.request)
        if refusal is not None:
            await exchange.respond(refusal)
            return
        ws = await exchange.upgrade()
        if ws is None:
            return
        heartbeat = (
            self.options.heartbeat_delay if found.kind is Kind.WEBSOCKET else None
        )
        self.websockets += 1  # counted against max_sessions while it lives
        try:
            await serve_websocket(
                ws,
                exchange.info,
                self.app.accept,
                self.limits,
                sockjs_heartbeat=heartbeat,
            )
        finally:
            self.websockets -= 1

    # -- receiving requests ---------------------------------------------------

    async def _receive(self, found: Route, exchange: HTTPExchange) -> None:
        session = self.sessions.get(found.session_id)
        if session is None:
            refusal = self._refuse_new_session(exchange.request)
            if refusal is not None:
                await exchange.respond(refusal)
                return
            session = HTTPSession(self, found.session_id, exchange.info)
            self.sessions[found.session_id] = session
        status, headers, prelude = receiving_response(
            found, exchange.request, self.options
        )
        await exchange.start(status, headers)
        if prelude:
            await exchange.write(prelude.encode())
        try:
            await session.hold(receiver_for(found, self.options), exchange)
        finally:
            with contextlib.suppress(ConnectionError):
                await exchange.end()

    def _refuse_new_session(self, request: Request) -> Response | None:
        if self.app.closing:
            return error_response(503, "server shutting down", request)
        if len(self.sessions) + self.websockets >= self.limits.max_sessions:
            self.log_throttle.warning(
                logger,
                "max_sessions",
                "%r: max_sessions (%d) reached: refusing a new session",
                self,
                self.limits.max_sessions,
            )
            response = error_response(503, _TOO_MANY, request)
            return Response(
                503, (*response.headers, ("Retry-After", "5")), response.body
            )
        return None

    # -- sending requests -----------------------------------------------------

    async def _send(self, found: Route, exchange: HTTPExchange) -> None:
        session = self.sessions.get(found.session_id)
        if session is None or session.state is SessionState.CLOSED:
            await exchange.respond(not_found(exchange.request))
            return
        with session.sending():  # no expiry while the body comes and goes in
            await exchange.respond(await self._take(found, exchange, session))

    async def _take(
        self, found: Route, exchange: HTTPExchange, session: HTTPSession
    ) -> Response:
        """Read, decode and deliver what a sending request carries; the answer."""
        body = await exchange.read_body(self.limits.max_message_size)
        if body is None:
            return error_response(413, "Payload too large.", exchange.request)
        await session.paced()  # what its earlier messages cost comes first
        try:
            texts = decode_send(found, exchange.request, body, self.limits)
        except BrokenFraming as exc:
            session.charge(exc.frames)  # a refused message costs all the same
            return error_response(500, str(exc), exchange.request)
        if not await session.deliver(texts, exchange):
            return not_found(exchange.request)  # it ended meanwhile: nothing taken
        return sent_response(found, exchange.request, self.options)

    # -- sessions' ends -------------------------------------------------------

    def ended(self, session: HTTPSession, recipient: Recipient | None) -> None:
        """A session is over (called by it): tell its application, in a task
        of its own, so that no request waits on the application."""
        if recipient is None:
            return
        task = asyncio.get_running_loop().create_task(recipient.connection_lost())
        self._endings.add(task)
        task.add_done_callback(self._endings.discard)

    def forget(self, session: HTTPSession) -> None:
        if self.sessions.get(session.id) is session:
            del self.sessions[session.id]


def _entropy() -> int:
    return secrets.randbits(32)


async def _unless_gone(work: Awaitable[None], exchange: HTTPExchange) -> None:
    """Await ``work``, stopped if the client of ``exchange`` goes away first."""
    task = asyncio.ensure_future(work)
    watch = asyncio.ensure_future(exchange.disconnected())
    try:
        await asyncio.wait((task, watch), return_when=asyncio.FIRST_COMPLETED)
    finally:
        _discard(watch)
        if not task.done():
            _discard(task)
            await asyncio.wait([task])
    if task.done() and not task.cancelled():
        task.result()  # what it raised


def _discard(task: asyncio.Future[None]) -> None:
    """Cancel a helper task, and retrieve what it ended with."""
    if task.done():
        if not task.cancelled():
            task.exception()
    else:
        task.cancel()


class _ClientGone(Exception):
    """The client of a receiving request went away before it was done."""


_FETCH_GRACE: Final = 1.0
"""Seconds a closing session waits for a request to fetch its goodbyes: a
polling client's next request follows each answer within milliseconds."""

_NOTICE: Final = 0.05
"""Seconds a request that finds its session held gives the holder to
notice that its own client has gone."""


class _Holder:
    """The receiving request that holds a session."""

    __slots__ = ("exchange", "left", "lost", "watch")

    def __init__(
        self,
        exchange: HTTPExchange,
        watch: asyncio.Future[None],
        left: asyncio.Future[None],
    ) -> None:
        self.exchange = exchange
        self.watch = watch
        """Done once the client has gone."""
        self.left = left
        """Done once the request no longer holds the session."""
        self.lost = False
        """Another request found its client gone: it must let go."""


async def _settles(future: asyncio.Future[None], timeout: float) -> bool:
    """Whether ``future`` is done within ``timeout`` seconds (not cancelled)."""
    if not future.done():
        await asyncio.wait([future], timeout=timeout)
    return future.done()


class HTTPSession:
    """One session of the HTTP transports: the core :class:`Session`, its
    timer, the request that holds it, and the application's recipient.

    It is the application's :class:`~websocket_multiplex.Transport`:
    ``send_many`` queues for the next receiving request, and waits while
    more than ``Limits.write_limit`` characters are queued.
    """

    def __init__(self, endpoint: SockJSEndpoint, session_id: str, info: RequestInfo):
        self.id = session_id
        self._endpoint = endpoint
        self._request = info
        self._loop = asyncio.get_running_loop()
        options = endpoint.options
        self._core = Session(
            heartbeat_delay=options.heartbeat_delay,
            disconnect_delay=options.disconnect_delay,
            now=self._loop.time(),
            batch_limit=options.batch_limit,
        )
        self._high_water = endpoint.limits.write_limit
        self._inlet: Inlet | None = None
        self._sending: asyncio.Lock | None = None  # made for the first send
        self._wake: asyncio.Future[None] | None = None  # the holder waits on it
        self._holder: _Holder | None = None
        self._fetched: asyncio.Future[None] | None = None  # close() waits on it
        self._drained: list[asyncio.Future[None]] = []
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = 0.0
        self._arm()

    def __repr__(self) -> str:
        return f"<HTTPSession {self.id!r} {self._core!r}>"

    @property
    def state(self) -> SessionState:
        return self._core.state

    @property
    def held(self) -> bool:
        """Whether a receiving request holds the session now."""
        return self._core.receiver is not None

    @property
    def queued_size(self) -> int:
        """Characters of messages waiting for the next receiving request."""
        return self._core.queued_size

    # -- the Transport --------------------------------------------------------

    @property
    def request(self) -> RequestInfo:
        return self._request

    def carries_session(self, mark: Callable[[int], str]) -> None:
        """See :class:`~.transport.CarriesSessions`: an EventSource client
        takes a cut for the planned end of a response and polls on, so
        its responses end only by cuts, which end the session; and every
        answer after the first starts with ``mark``, for the answers a
        browser loses without a cut (a request it sends again)."""
        self._core.end_rather_than_lose(mark)

    async def send(self, text: str) -> None:
        await self.send_many([text])

    async def send_many(self, texts: list[str]) -> None:
        try:
            self._core.send(texts)
        except LocalProtocolError:
            raise ConnectionError("the SockJS session is closed") from None
        self._wake_holder()
        if self._core.queued_size > self._high_water:
            # Backpressure: the client fetches slower than we write.
            waiter = self._loop.create_future()
            self._drained.append(waiter)
            await waiter
            if self._core.state is not SessionState.OPEN:
                raise ConnectionError("the SockJS session is closed")

    async def close(self, code: int, reason: str) -> None:
        """Close the session; returns once a request carried the close
        frame, or after at most :data:`_FETCH_GRACE` (the server may stop
        listening next: the goodbyes must be fetched first)."""
        core = self._core
        if core.close(sockjs_close_code(code), reason):
            self._wake_holder()
            self._release_senders()
            self._arm()
        if core.close_delivered or core.state is not SessionState.CLOSING:
            return
        if self._fetched is None:
            self._fetched = self._loop.create_future()
        await _settles(self._fetched, _FETCH_GRACE)

    # -- receiving and sending requests ---------------------------------------

    async def hold(self, receiver: Receiver, exchange: HTTPExchange) -> None:
        """Serve one receiving request until it is done or its client left."""
        if self._holder is not None and self._core.receiver is not None:
            await self._release_gone_holder()
        core, loop = self._core, self._loop
        attached, text = core.attach(receiver, loop.time())
        holder = None
        aborted = True  # unless it ends as it should (a cancellation too)
        try:
            self._arm()
            self._release_senders()
            self._check_fetched()
            if attached is Attached.OPENED:
                recipient = self._endpoint.app.accept(self)
                self._inlet = Inlet(recipient, self._endpoint.limits)
            if attached in (Attached.OPENED, Attached.HOLDING):
                watch = asyncio.ensure_future(exchange.disconnected())
                holder = self._holder = _Holder(exchange, watch, loop.create_future())
            if text:
                await exchange.write(text.encode())
            if holder is not None:
                await self._write_until_done(receiver, holder)
            aborted = False
        except (_ClientGone, ConnectionError):
            pass
        finally:
            if holder is not None:
                _discard(holder.watch)
                self._holder = None
                holder.left.set_result(None)
            if core.detach(receiver, loop.time(), aborted=aborted):
                self._ended()
            self._arm()

    async def _write_until_done(self, receiver: Receiver, holder: _Holder) -> None:
        core, loop, exchange, watch = (
            self._core,
            self._loop,
            holder.exchange,
            holder.watch,
        )
        while not receiver.done:
            text = core.output(loop.time())
            if text:
                self._release_senders()
                self._check_fetched()
                await exchange.write(text.encode())
                continue
            wake = self._wake = loop.create_future()
            try:
                await asyncio.wait((wake, watch), return_when=asyncio.FIRST_COMPLETED)
            finally:
                self._wake = None
            if watch.done() or holder.lost:
                raise _ClientGone

    async def _release_gone_holder(self) -> None:
        """A receiving request found the session held: if the holder's client
        has gone (and the holder not noticed yet), let the holder go first,
        so that a client polling again at once is not answered 2010."""
        holder = self._holder
        if holder is None:
            return
        if not (holder.exchange.client_gone() or await _settles(holder.watch, _NOTICE)):
            return  # its client is there: this request gets 2010
        holder.lost = True
        self._wake_holder()
        await _settles(holder.left, _NOTICE)

    @contextlib.contextmanager
    def sending(self) -> Iterator[None]:
        """A sending request is under way: the session does not expire
        before it is done (a paced delivery may outlast disconnect_delay)."""
        self._core.sending()
        try:
            yield
        finally:
            self._core.sent(self._loop.time())
            self._arm()

    async def paced(self) -> None:
        """Wait until the session's frame pace allows more."""
        owed = None if self._inlet is None else self._inlet.owed()
        if owed is not None:
            await owed

    def charge(self, frames: int) -> None:
        """Count ``frames`` against the pace without delivering them."""
        if self._inlet is not None:
            self._inlet.charge(frames)

    async def deliver(self, texts: list[str], exchange: HTTPExchange) -> bool:
        """Hand what a sending request carried to the application, one
        sending request after the other, at the inlet's pace; the delivery
        stops if the sending request's client goes away meanwhile (the
        application may not be reading). Returns whether the session could
        take them (it is still open)."""
        if self._sending is None:
            self._sending = asyncio.Lock()
        async with self._sending:
            inlet = self._inlet  # after the wait: the session may have ended
            if inlet is None or not self._core.accepts_messages:
                return self._core.state is SessionState.CLOSING
            if texts:
                await _unless_gone(inlet.deliver(texts), exchange)
            return True

    # -- time, and the end ----------------------------------------------------

    def _arm(self) -> None:
        """Have :meth:`_tick` called by the core's deadline; a timer already
        set earlier stays (it re-arms when it fires)."""
        deadline = self._core.deadline()
        if deadline is None:
            return
        if self._timer is not None:
            if self._timer_at <= deadline:
                return
            self._timer.cancel()
        self._timer = self._loop.call_at(deadline, self._tick)
        self._timer_at = deadline

    def _tick(self) -> None:
        self._timer = None
        expiry = self._core.tick(self._loop.time())
        if expiry is Expiry.TIMED_OUT:
            self._ended()
        if expiry is not Expiry.LIVE:
            self.forget()
            return
        self._wake_holder()  # a heartbeat may be due
        self._arm()

    def _check_fetched(self) -> None:
        fetched = self._fetched
        if fetched is not None and self._core.close_delivered:
            self._fetched = None
            wake_all([fetched])

    def _ended(self) -> None:
        if self._fetched is not None:
            fetched, self._fetched = self._fetched, None
            wake_all([fetched])
        self._release_senders()
        inlet, self._inlet = self._inlet, None
        self._endpoint.ended(self, None if inlet is None else inlet.recipient)

    def forget(self) -> None:
        """Leave the endpoint's table, stop the timer, and end the session
        (its expiry did, or the endpoint is closing)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._endpoint.forget(self)
        self._core.end()
        if self._inlet is not None:
            self._ended()

    def _wake_holder(self) -> None:
        wake = self._wake
        if wake is not None and not wake.done():
            wake.set_result(None)

    def _release_senders(self) -> None:
        if self._drained and (
            self._core.queued_size <= self._high_water // 4
            or self._core.state is not SessionState.OPEN
        ):
            waiters, self._drained = self._drained, []
            wake_all(waiters)
