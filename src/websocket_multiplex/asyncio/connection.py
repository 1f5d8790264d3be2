"""One client connection: routes frames to channels and runs their handlers."""

from __future__ import annotations

import asyncio
import contextvars
import inspect
import itertools
import logging
from collections.abc import Callable
from operator import attrgetter
from time import monotonic
from typing import TYPE_CHECKING

from ..events import (
    ChannelClosedEvent,
    ChannelOpened,
    ChannelRefused,
    CloseReason,
    LimitExceeded,
    MessageReceived,
)
from ..exceptions import ChannelClosed
from ..protocol import ProtocolCounters, ServerProtocol
from ..request import RequestInfo
from .authorization import Subscription, authorized
from .channel import Channel
from .inbox import Unread, wake_all
from .stats import ConnectionStats
from .transport import Transport

if TYPE_CHECKING:
    from .server import ChannelHandler, MultiplexServer, Service

__all__ = ["Connection"]

logger = logging.getLogger("websocket_multiplex")
_ids = itertools.count(1)
_inbox_size = attrgetter("_inbox_size")

# Refusal notices (docs/PROTOCOL-EXTENSIONS.md): "<code> <text>".
# Our clients keep a channel closed with this notice and subscribe it again
# once they have reconnected (a restart, not a refusal).
GOING_AWAY = "1001 server shutting down"
FORBIDDEN = "403 refused"
SERVICE_FAILED = "500 service failed"
OVERLOADED = "503 channel overloaded"

# The handler task a piece of code runs in, seen through child tasks too
# (gather, create_task), so that no wait ever waits on its own caller.
_current_handler: contextvars.ContextVar[asyncio.Task[None] | None] = (
    contextvars.ContextVar("websocket_multiplex_handler", default=None)
)


class Connection:
    """The multiplexer's side of one carrier connection.

    Made by :meth:`MultiplexServer.accept`. Incoming frames are handled
    synchronously in :meth:`receive` (a message only lands in its channel's
    inbox), so a slow handler never delays the other channels; one that
    falls too far behind loses its channel instead. Outgoing
    frames go through one ordered queue drained by a writer task; senders
    wait while it holds more than ``Limits.write_limit`` characters.
    """

    def __init__(self, server: MultiplexServer, transport: Transport) -> None:
        self.id = next(_ids)
        self.server = server
        self.transport = transport
        self.request: RequestInfo = transport.request
        self._limits = server.limits
        self._loop = asyncio.get_running_loop()
        self._protocol = ServerProtocol(server._is_registered, server.limits)
        self._aborting: asyncio.Task[None] | None = None
        self.stats = ConnectionStats()
        self._log = server.log_throttle  # for lines a client can cause at will
        self._unread = Unread()  # characters in the inboxes of its channels
        self._room = min(
            server.limits.max_queue_size, server.limits.max_connection_queue_size
        )
        self._over_since: float | None = None  # when fan-out filled the outbox
        self._channels: dict[str, Channel] = {}
        self._handlers: set[asyncio.Task[None]] = set()
        # A list, not a deque (760 bytes empty), and the events below made only
        # when someone waits: a server holds many idle connections.
        self._outbox: list[str] = []
        self._outbox_size = 0
        self._outbox_ready: asyncio.Future[None] | None = None
        self._parked = False  # the writer waits for frames: all went out
        self._writable: asyncio.Event | None = None  # senders wait above the limit
        self._idle_waiters: list[asyncio.Future[None]] = []  # _flush callers
        self._lost = False
        self._closing = False  # close() has begun: no new channel opens
        self._finishing: asyncio.Task[None] | None = None
        self._writer = asyncio.get_running_loop().create_task(self._write_loop())

    def __repr__(self) -> str:
        return f"<Connection #{self.id} from {self.request.remote_address}>"

    @property
    def channels(self) -> list[Channel]:
        """The channels open on this connection."""
        return list(self._channels.values())

    @property
    def counters(self) -> ProtocolCounters:
        """Frame counters of this connection's protocol core."""
        return self._protocol.counters

    @property
    def closed(self) -> bool:
        return self._lost

    def backlog(self) -> None:
        """Never: a channel that falls behind is shed instead (so the
        carrier always reads on; see :class:`~websocket_multiplex.Recipient`)."""
        return None

    # -- input, called by the adapter --------------------------------------

    def receive(self, text: str) -> None:
        """Handle one carrier message from the client."""
        if self._lost or self._aborting is not None:
            return
        self.stats.chars_received += len(text)
        event = self._protocol.receive(text, monotonic())
        if event is None:
            return
        if type(event) is MessageReceived:
            channel = self._channels[event.topic]
            payload = event.payload
            if channel._callbacks is not None:  # a task-free service
                self._call(channel, channel._callbacks.on_message, payload)
                return
            inbox, unread, size = channel._inbox, self._unread, len(payload)
            # Within the smaller size limit, both hold: the channel's unread
            # characters are part of the connection's.
            if len(inbox) < self._limits.max_queue and unread.size + size <= self._room:
                inbox.append(payload)  # channel._deliver, inlined: every message
                channel._inbox_size += size
                unread.size += size
                waiter = channel._waiter
                if waiter is not None and not waiter.done():
                    waiter.set_result(None)
            else:
                self._overflow(channel, payload)
        elif type(event) is ChannelOpened:
            self._open_channel(event.topic)
        elif type(event) is ChannelClosedEvent:
            self._channels.pop(event.topic)._mark_closed(event.reason)
        elif type(event) is ChannelRefused:
            for frame in self._protocol.refuse(event.topic, event.notice):
                self._enqueue(frame)
        elif type(event) is LimitExceeded:
            self._limit_exceeded(event)

    def _overflow(self, channel: Channel, payload: str) -> None:
        """A message that may not fit: shed the channel that fell behind
        (docs/LIMITS.md, "Incoming data"), or deliver it if it fits."""
        limits, size = self._limits, len(payload)
        if len(channel._inbox) >= limits.max_queue:
            self._shed(channel, "max_queue")
            return
        if channel._inbox and channel._inbox_size + size > limits.max_queue_size:
            self._shed(channel, "max_queue_size")
            return
        # Each turn frees a non-empty inbox, or sheds this channel and stops.
        unread, total = self._unread, limits.max_connection_queue_size
        while unread.size and unread.size + size > total and not self._lost:
            fullest = max(self._channels.values(), key=_inbox_size, default=channel)
            if not fullest._inbox_size:  # what is held is in closed channels
                fullest = channel
            self._shed(fullest, "max_connection_queue_size")
            if fullest is channel:
                return
        if not channel.closed:  # an on_close called above may have closed it
            channel._deliver(payload)

    def _shed(self, channel: Channel, limit: str) -> None:
        """Close a channel whose handler fell behind; free what it left unread."""
        self._protocol.counters.hit(limit)
        self._log.warning(
            logger, limit, "%r: %s reached: shedding %r", self, limit, channel.name
        )
        channel._drop_unread()
        self._close_channel(channel, CloseReason.INBOX_FULL, OVERLOADED)

    def _limit_exceeded(self, event: LimitExceeded) -> None:
        if event.topic is not None:
            channel = self._channels[event.topic]
            self._close_channel(channel, CloseReason.LIMIT_EXCEEDED, event.notice)
        else:
            self._log.warning(logger, event.limit, "%r: %s exceeded", self, event.limit)
            self._abort(4029, "too many subscriptions")

    def _abort(
        self, code: int, reason: str, why: CloseReason = CloseReason.LIMIT_EXCEEDED
    ) -> None:
        """Drop a client that broke a limit; no flush: it gets no more time."""
        if self._aborting is None and not self._lost:
            self._lose(why)
            self._aborting = self._loop.create_task(self._close_carrier(code, reason))

    async def _close_carrier(self, code: int, reason: str) -> None:
        try:
            await self.transport.close(code, reason)
        except Exception:  # the carrier may be half gone already
            logger.debug("%r: close failed", self, exc_info=True)

    async def connection_lost(self) -> None:
        """The carrier is gone: close every channel and end every handler.

        Handlers see their channel closed and get ``handler_timeout``
        seconds to return before they are cancelled; this waits for that,
        except when a handler itself calls it. Safe to call more than once.
        """
        self._lose()
        assert self._finishing is not None
        if _current_handler.get() not in self._handlers:
            await asyncio.shield(self._finishing)

    def _lose(self, reason: CloseReason = CloseReason.CONNECTION_LOST) -> None:
        """Everything that must happen at once when the carrier goes away."""
        if self._lost:
            return
        self._lost = True
        self._close_all(self._protocol.connection_lost(reason))
        self._writer.cancel()
        self.server._retire(self)
        self._finishing = asyncio.get_running_loop().create_task(
            self._finish_handlers()
        )

    async def close(self, code: int = 1000, reason: str = "") -> None:
        """Close from the server side: ``uns`` every channel, then the carrier."""
        self._closing = True
        for channel in list(self._channels.values()):
            self._close_channel(channel, CloseReason.SHUTDOWN, GOING_AWAY)
        try:
            async with asyncio.timeout(self.server.close_timeout):
                await self._flush()
        except TimeoutError:
            logger.info("%r: client not reading; closing without flushing", self)
        try:
            await self.transport.close(code, reason)
        finally:
            await self.connection_lost()

    # -- channels ------------------------------------------------------------

    def _open_channel(self, topic: str) -> None:
        service = self.server._service_for(topic)
        assert service is not None  # the protocol asked _is_registered
        channel = Channel(self, service.name, topic)
        self._channels[topic] = channel
        if self._closing:  # a sub that came while we flush the goodbyes
            self._close_channel(channel, CloseReason.SHUTDOWN, GOING_AWAY)
            return
        if service.callbacks is not None and (
            self.server.authorize is None and service.authorize is None
        ):
            self._start_callbacks(service.callbacks, channel)
            return
        task = asyncio.get_running_loop().create_task(
            self._run_handler(service, channel), name=f"multiplex {channel.name!r}"
        )
        self._handlers.add(task)
        task.add_done_callback(self._handlers.discard)

    async def _run_handler(self, service: Service, channel: Channel) -> None:
        _current_handler.set(asyncio.current_task())
        try:
            await self._serve_channel(service, channel)
        finally:
            # Nothing reads the channel after this: what is left unread must
            # not count against the connection's max_connection_queue_size.
            channel._drop_unread()

    async def _serve_channel(self, service: Service, channel: Channel) -> None:
        if not await self._authorize(service, channel):
            return
        if service.callbacks is not None:
            self._start_callbacks(service.callbacks, channel)
            return
        reason = CloseReason.SERVER_CLOSED
        try:
            await service.handler(channel)
        except ChannelClosed:
            if not channel.closed:  # it came from another channel: a bug
                self._handler_failed(service, channel)
                reason = CloseReason.HANDLER_FAILED
        except Exception:
            self._handler_failed(service, channel)
            reason = CloseReason.HANDLER_FAILED
        if reason is CloseReason.HANDLER_FAILED:
            self.stats.handler_failures += 1
        self._close_channel(channel, reason)

    def _handler_failed(self, service: Service, channel: Channel) -> None:
        # Input can make a handler fail on every message: keep the first
        # traceback of each service per interval, count the others.
        self._log.exception(
            logger,
            f"handler failed: {service.name}",
            "handler of channel %r failed on %r",
            channel.name,
            self,
        )

    def _start_callbacks(self, cls: type[ChannelHandler], channel: Channel) -> None:
        """Serve a task-free ChannelHandler: from now on its callbacks are
        called as frames arrive. Messages that came during authorization
        waited in the inbox."""
        if channel.closed:
            return
        handler = channel._callbacks = self._made(cls, channel)
        if handler is None or not self._call(channel, handler.on_open):
            return
        while channel._inbox and channel._callbacks is not None:
            self._call(channel, handler.on_message, channel._take())

    def _made(
        self, cls: type[ChannelHandler], channel: Channel
    ) -> ChannelHandler | None:
        try:
            return cls(channel)
        except Exception:
            self._callback_failed(channel, f"{cls.__name__}()")
            return None

    def _call(
        self, channel: Channel, callback: Callable[..., object], *args: object
    ) -> bool:
        """Run one callback of a task-free service; a failure closes only its
        channel (``err,T,500 service failed``), as a failing handler does."""
        try:
            result = callback(*args)
        except ChannelClosed:
            if channel.closed:  # its own channel closed under it: an end
                return False
            self._callback_failed(channel, callback.__qualname__)
            return False
        except Exception:
            self._callback_failed(channel, callback.__qualname__)
            return False
        if result is None:
            return True
        if inspect.iscoroutine(result):
            result.close()  # never awaited: say so once, below
        self._log.log(
            logger,
            logging.ERROR,
            f"callback returned: {callback.__qualname__}",
            "%s returned %r: a task-free ChannelHandler's callbacks return "
            "None; declare them async def to await things",
            callback.__qualname__,
            result,
        )
        self._callback_failed(channel, None)
        return False

    def _callback_failed(self, channel: Channel, what: str | None) -> None:
        if what is not None:  # one traceback per callback per interval
            self._log.exception(
                logger,
                f"callback failed: {what}",
                "%s failed on channel %r of %r",
                what,
                channel.name,
                self,
            )
        self.stats.handler_failures += 1
        self._close_channel(channel, CloseReason.HANDLER_FAILED)

    async def _authorize(self, service: Service, channel: Channel) -> bool:
        """Messages that arrive meanwhile wait in the channel's inbox."""
        checks = (self.server.authorize, service.authorize)
        if checks == (None, None):
            return True
        subscription = Subscription(self.request, channel.name, channel.topic)
        try:
            accepted = await authorized(subscription, *checks)
        except Exception:  # input can make it fail every time: throttled
            self._log.exception(
                logger,
                f"authorizer failed: {service.name}",
                "authorizer of %r failed: refusing",
                channel.name,
            )
            accepted = False
        if accepted:
            channel.identity = subscription.identity
            return True
        self.stats.authorization_refusals += 1
        self._log.info(logger, "refused", "%r: refused %r", self, channel.name)
        self._close_channel(channel, CloseReason.REFUSED, FORBIDDEN)
        return False

    def _close_channel(
        self, channel: Channel, reason: CloseReason, notice: str | None = None
    ) -> None:
        """Close one channel from the server side: ``uns``, after ``err`` if
        there is a ``notice`` (docs/PROTOCOL-EXTENSIONS.md)."""
        if channel.closed or self._lost:
            return
        if reason is CloseReason.HANDLER_FAILED:
            notice = SERVICE_FAILED
        if notice is not None:
            for frame in self._protocol.fail(channel.topic, notice):
                self._enqueue(frame)
        else:
            self._enqueue(self._protocol.close(channel.topic))
        del self._channels[channel.topic]
        channel._mark_closed(reason)

    def _close_all(self, events: list[ChannelClosedEvent]) -> None:
        for event in events:
            self._channels.pop(event.topic)._mark_closed(event.reason)

    async def _finish_handlers(self) -> None:
        if not self._handlers:
            return
        _, pending = await asyncio.wait(
            set(self._handlers), timeout=self.server.handler_timeout
        )
        for task in pending:
            task.cancel()
        if pending:
            _, stuck = await asyncio.wait(pending, timeout=self.server.handler_timeout)
            for task in stuck:  # it swallowed the cancellation: leave it be
                logger.error(
                    "%r: handler %s ignores cancellation", self, task.get_name()
                )

    # -- output ----------------------------------------------------------------

    async def _wait_writable(self) -> None:
        """Backpressure: wait until the writer drained the outbox, or drop a
        client that stays too slow (Channel.send queues, then calls this)."""
        if self._writable is None:
            self._writable = asyncio.Event()
        writable = self._writable
        try:
            async with asyncio.timeout(self._limits.slow_client_timeout):
                await writable.wait()
        except TimeoutError:
            if self._aborting is None:
                self.stats.slow_client_closes += 1
                self._log.warning(logger, "slow", "%r: slow client, closing", self)
            self._abort(4008, "slow client")
            if self._aborting is not None:
                await asyncio.shield(self._aborting)

    def _offer_frame(self, frame: str) -> None:
        """Queue without waiting (fan-out never waits for the slowest member).

        A client that stays above ``write_limit`` for ``slow_client_timeout``,
        or reaches four times it, is dropped as a slow client.
        """
        self._enqueue(frame)
        size, limit = self._outbox_size, self._limits.write_limit
        if size <= limit:
            return
        now = self._loop.time()
        if self._over_since is None:
            self._over_since = now
        if (
            size > 4 * limit
            or now - self._over_since > self._limits.slow_client_timeout
        ):
            self.stats.slow_client_closes += 1
            self._log.warning(logger, "slow", "%r: slow client, closing", self)
            self._abort(4008, "slow client")

    def _enqueue(self, frame: str) -> None:
        self._outbox.append(frame)
        self._outbox_size += len(frame)
        self.stats.chars_sent += len(frame)
        ready = self._outbox_ready
        if ready is not None and not ready.done():
            ready.set_result(None)

    async def _flush(self) -> None:
        """Wait until every queued frame went to the transport (or it failed)."""
        if self._writer.done() or (self._parked and not self._outbox):
            return
        idle = self._loop.create_future()
        self._idle_waiters.append(idle)
        await asyncio.wait([idle, self._writer], return_when=asyncio.FIRST_COMPLETED)

    def _writable_again(self) -> None:
        self._over_since = None
        if self._writable is not None:
            self._writable.set()
            self._writable = None

    def _wake_idle_waiters(self) -> None:
        waiters, self._idle_waiters = self._idle_waiters, []
        wake_all(waiters)

    async def _write_loop(self) -> None:
        loop = asyncio.get_running_loop()
        send_many = self.transport.send_many
        try:
            while True:
                if not self._outbox:
                    if self._idle_waiters:
                        self._wake_idle_waiters()
                    self._outbox_ready = loop.create_future()
                    self._parked = True
                    await self._outbox_ready
                    self._parked = False
                    continue
                # Everything queued since the last write goes in one batch;
                # the carrier's own flow control holds the writer back.
                frames, self._outbox = self._outbox, []
                self._outbox_size = 0
                self._writable_again()
                await send_many(frames)
                del frames  # an idle connection must not hold its last batch
        except (ConnectionError, RuntimeError) as exc:
            # The carrier is gone even if its adapter has not said so yet.
            logger.debug("%r: write failed: %s", self, exc)
            self._lose()
        except Exception:  # a bug in a carrier; input may cause it every time
            self._log.exception(
                logger, "transport failed", "%r: the transport failed to send", self
            )
            self._lose()
        finally:
            self._outbox.clear()
            self._outbox_size = 0
            self._writable_again()
            self._wake_idle_waiters()
