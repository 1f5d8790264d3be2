"""One client connection: routes frames to channels and runs their handlers."""

from __future__ import annotations

import asyncio
import contextvars
import enum
import itertools
import logging
from collections.abc import Awaitable, Callable
from time import monotonic
from typing import Protocol

from ..codes import FORBIDDEN, GOING_AWAY, OVERLOADED, SERVICE_FAILED, CloseCode
from ..events import (
    ChannelClosedEvent,
    ChannelOpened,
    ChannelRefused,
    CloseReason,
    LimitExceeded,
    MessageReceived,
    PositionPresented,
    ReplyReceived,
    RequestDeclined,
    RequestReceived,
)
from ..exceptions import ChannelClosed
from ..flow import Ledger, Overflow
from ..limits import Limits
from ..presence import PRS
from ..protocol import ProtocolCounters, ServerProtocol
from ..reqrep import RequestBook
from ..request import RequestInfo
from ..resume import Hello, format_carried
from ..streams import Position
from ..wire import format_frame
from .authorization import Authorizer, Subscription, authorized
from .callbacks import TaskFreeServices
from .channel import Channel
from .groups import Groups
from .outbox import Outbox
from .presence import PresenceHub
from .requests import AnswerKind, Request
from .resumption import Session, Sessions
from .services import Service, Services
from .stats import ConnectionStats
from .throttle import LogThrottle
from .transport import CarriesSessions, Transport

__all__ = ["Connection", "ConnectionHost", "State"]

logger = logging.getLogger("websocket_multiplex")
_ids = itertools.count(1)

# The handler task a piece of code runs in, seen through child tasks too
# (gather, create_task), so that no wait ever waits on its own caller.
_current_handler: contextvars.ContextVar[asyncio.Task[None] | None] = (
    contextvars.ContextVar("websocket_multiplex_handler", default=None)
)


class ConnectionHost(Protocol):
    """What a connection asks of its server (a
    :class:`~websocket_multiplex.MultiplexServer` implements it)."""

    @property
    def limits(self) -> Limits: ...
    @property
    def authorize(self) -> Authorizer | None: ...
    @property
    def handler_timeout(self) -> float: ...
    @property
    def close_timeout(self) -> float: ...
    @property
    def log_throttle(self) -> LogThrottle: ...
    @property
    def process_id(self) -> str: ...
    @property
    def registry(self) -> Services: ...
    @property
    def groups(self) -> Groups: ...
    @property
    def presence_hub(self) -> PresenceHub: ...
    @property
    def sessions(self) -> Sessions | None:
        """Resumable sessions, or ``None`` if the server offers none."""
        ...

    def retire(self, connection: Connection) -> None:
        """``connection`` is closed: forget it, keep its totals."""
        ...


class State(enum.Enum):
    """Where a connection is in its life."""

    OPEN = "open"
    CLOSING = "closing: saying goodbye, no new channel opens"
    CLOSED = "closed: the carrier is gone or being dropped"


class Connection:
    """The multiplexer's side of one carrier connection.

    Made by :meth:`MultiplexServer.accept`. Incoming frames are handled
    synchronously in :meth:`receive` (a message only lands in its channel's
    inbox), so a slow handler never delays the other channels; one that
    falls too far behind loses its channel instead (the ledger decides,
    :mod:`websocket_multiplex.flow`). Outgoing frames go through one
    ordered, bounded :class:`~websocket_multiplex.asyncio.outbox.Outbox`;
    senders wait while it holds more than ``Limits.write_limit`` characters.
    """

    def __init__(self, server: ConnectionHost, transport: Transport) -> None:
        self.id = next(_ids)
        self.server = server
        self.transport = transport
        """What its frames are sent through: the carrier, or on a resumable
        connection its session's
        :class:`~websocket_multiplex.asyncio.resumption.SessionCarrier`."""
        self._own_carrier = transport  # the one whose inlet feeds receive()
        self.request: RequestInfo = transport.request
        self.stats = ConnectionStats()
        self.state = State.OPEN
        self._registry = server.registry
        self._protocol = ServerProtocol(self._registry.is_registered, server.limits)
        self._ledger = Ledger(server.limits)
        self._log = server.log_throttle  # for lines a client can cause at will
        self._channels: dict[str, Channel] = {}
        self._handlers: set[asyncio.Task[None]] = set()
        self._task_free: TaskFreeServices | None = None  # made when needed
        self._aborting: asyncio.Task[None] | None = None
        self._finishing: asyncio.Task[None] | None = None
        self._session: Session | None = None  # on the resumable protocol
        self._carrying: Session | None = None  # another's, for its carrier
        # Where the client's channels stand in groups, until a join uses it.
        self._presented: dict[tuple[str, str], Position] = {}
        # What a frame meets before the protocol: the first one may be a
        # hello; on a session, every one is counted (None: nothing).
        self._before: Callable[[str], str | None] | None = (
            self._first_frame if server.sessions is not None else None
        )
        self._outbox = Outbox(
            transport,
            server.limits,
            self._too_slow,
            self._lose,
            self._log,
            self,
            self.stats,
        )

    def __repr__(self) -> str:
        address = self.request.remote_address
        return f"<Connection #{self.id} from {address} {self.state.name}>"

    @property
    def channels(self) -> list[Channel]:
        """The channels open on this connection."""
        return list(self._channels.values())

    @property
    def counters(self) -> ProtocolCounters:
        """Frame counters of this connection's protocol core."""
        return self._protocol.counters

    @property
    def open_topics(self) -> frozenset[str]:
        """The topics its protocol core counts as open."""
        return self._protocol.open_topics

    @property
    def closed(self) -> bool:
        """The carrier is gone or being dropped: nothing more is sent."""
        return self.state is State.CLOSED

    @property
    def queued(self) -> int:
        """Characters queued for the client, not yet handed to the carrier."""
        return self._outbox.size

    def backlog(self) -> None:
        """Never: a channel that falls behind is shed instead (so the
        carrier always reads on; see :class:`~websocket_multiplex.Recipient`)."""
        return None

    # -- input, called by the adapter ------------------------------------------

    def receive(self, text: str) -> None:
        """Handle one carrier message from the client."""
        if self.state is State.CLOSED:
            return
        before = self._before
        if before is not None:
            handled = before(text)
            if handled is None:
                return
            text = handled
        self._handle(text)

    def _handle(self, text: str) -> None:
        self.stats.chars_received += len(text)
        event = self._protocol.receive(text, monotonic())
        if event is None:
            return
        if type(event) is MessageReceived:
            channel = self._channels[event.topic]
            payload = event.payload
            overflow = self._ledger.admit(event.topic, channel.held, len(payload))
            if overflow is not None and not self._overflowed(
                overflow, channel, len(payload)
            ):
                return
            channel.append(payload)
            if self._task_free is not None:
                self._task_free.message(channel)
        elif type(event) is ChannelOpened:
            self._open_channel(event.topic)
        elif type(event) is ChannelClosedEvent:
            self._closed(self._channels.pop(event.topic), event.reason)
        elif type(event) is ChannelRefused:
            for frame in self._protocol.refuse(event.topic, event.notice):
                self._outbox.put(frame)
        elif type(event) is LimitExceeded:
            self._limit_exceeded(event)
        elif type(event) is PositionPresented:
            self._present(event)
        elif type(event) is RequestReceived:
            self._request_received(event)
        elif type(event) is ReplyReceived:
            self._channels[event.topic].replied(
                event.request_id, event.payload, event.notice
            )
        elif type(event) is RequestDeclined:
            self._outbox.put(
                RequestBook.decline(event.topic, event.request_id, event.notice)
            )

    def _present(self, event: PositionPresented) -> None:
        key = event.topic, event.group
        full = len(self._presented) >= self.server.limits.max_stream_positions
        if full and key not in self._presented:
            self._protocol.counters.hit("max_stream_positions")
            return
        self._presented[key] = Position(event.epoch, event.offset)

    def _request_received(self, event: RequestReceived) -> None:
        """A request lands in its channel's queue, counted as a message is
        (a task-free channel's ``on_request`` is called at once)."""
        channel = self._channels[event.topic]
        size = len(event.payload)
        overflow = self._ledger.admit(event.topic, channel.held, size)
        if overflow is not None and not self._overflowed(overflow, channel, size):
            return
        request = Request(self, channel, event.request_id, event.payload)
        if channel.callbacks is not None and self._task_free is not None:
            channel.held.took(size)
            self._task_free.request(channel, request)
        else:
            channel.deliver_request(request)

    def _overflowed(self, overflow: Overflow, channel: Channel, size: int) -> bool:
        """Shed what the ledger says to; whether to deliver the message to
        ``channel`` (its ledger counted it then)."""
        for shed in overflow.shed:
            self._protocol.counters.hit(shed.limit)
            shed_channel = self._channels.get(shed.topic)
            if shed_channel is None:
                continue
            self._log.warning(
                logger,
                shed.limit,
                "%r: %s reached: shedding %r",
                self,
                shed.limit,
                shed_channel.name,
            )
            shed_channel.drop_unread()
            self.close_channel(shed_channel, CloseReason.INBOX_FULL, OVERLOADED)
        if not overflow.deliver:
            return False
        if channel.closed or self.state is State.CLOSED:  # an on_close did it
            channel.held.took(size)  # counted, but goes nowhere
            return False
        return True

    def _limit_exceeded(self, event: LimitExceeded) -> None:
        if event.topic is not None:
            channel = self._channels[event.topic]
            self.close_channel(channel, CloseReason.LIMIT_EXCEEDED, event.notice)
        else:
            self._log.warning(logger, event.limit, "%r: %s exceeded", self, event.limit)
            self._abort(CloseCode.TOO_MANY_SUBSCRIPTIONS, "too many subscriptions")

    # -- the one way out -------------------------------------------------------

    def _lose(self, reason: CloseReason = CloseReason.CONNECTION_LOST) -> None:
        """The connection is over: every channel closes, nothing more is
        sent, the server forgets it and its handlers are given their time."""
        if self.state is State.CLOSED:
            return
        self.state = State.CLOSED
        if self._session is not None:
            self._session.end()
        for event in self._protocol.connection_lost(reason):
            self._closed(self._channels.pop(event.topic), event.reason)
        self._outbox.stop()
        self.server.retire(self)
        self._finishing = asyncio.get_running_loop().create_task(
            self._finish_handlers()
        )

    def _abort(
        self, code: int, reason: str, why: CloseReason = CloseReason.LIMIT_EXCEEDED
    ) -> asyncio.Task[None] | None:
        """Drop a client that broke a limit; no flush: it gets no more time.
        Returns the carrier's close, under way."""
        if self._aborting is None and self.state is not State.CLOSED:
            self._lose(why)
            self._aborting = asyncio.get_running_loop().create_task(
                self._close_carrier(code, reason)
            )
        return self._aborting

    def abort(self, code: int, reason: str, why: CloseReason) -> None:
        """Drop the client at once (the server refuses it while closing)."""
        self._abort(code, reason, why)

    def _too_slow(self) -> Awaitable[None] | None:
        """The outbox says the client reads too slowly: drop it (4008)."""
        if self._aborting is None and self.state is not State.CLOSED:
            self.stats.slow_client_closes += 1
            self._log.warning(logger, "slow", "%r: slow client, closing", self)
        aborting = self._abort(CloseCode.SLOW_CLIENT, "slow client")
        return None if aborting is None else asyncio.shield(aborting)

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
        On a resumable connection, the session holds on instead: nothing
        closes until ``Limits.resume_grace`` passes without a new carrier.
        """
        if self._carrying is not None:  # the carrier of another's session
            owner = self._carrying.owner
            if not owner.carrier_lost(self._own_carrier):  # it ended: final
                owner.expire(CloseReason.CONNECTION_LOST)
        elif self.carrier_lost(self._own_carrier):
            return
        self._lose()
        assert self._finishing is not None
        if _current_handler.get() not in self._handlers:
            await asyncio.shield(self._finishing)

    async def close(self, code: int = CloseCode.NORMAL, reason: str = "") -> None:
        """Close from the server side: ``uns`` every channel, then the carrier."""
        if self.state is State.OPEN:
            self.state = State.CLOSING
        if self._session is not None:  # no resuming after a goodbye
            self._session.end()
        for channel in list(self._channels.values()):
            self.close_channel(channel, CloseReason.SHUTDOWN, GOING_AWAY)
        try:
            async with asyncio.timeout(self.server.close_timeout):
                await self._outbox.flush()
        except TimeoutError:
            logger.info("%r: client not reading; closing without flushing", self)
        try:
            await self.transport.close(code, reason)
        finally:
            await self.connection_lost()

    # -- for its channels (ChannelOwner) ---------------------------------------

    def send_frame(self, topic: str, data: str) -> Awaitable[None] | None:
        """Send ``data`` on the open channel ``topic``: what to await, if
        anything (see :meth:`Outbox.send`)."""
        # With other messages still unread, their answers will follow this
        # one: leave it to the writer's batch instead of writing it alone.
        alone = not self._ledger.size
        return self._outbox.send(self._protocol.send(topic, data), alone)

    def offer_frame(self, topic: str, data: str) -> None:
        """Queue ``data`` on ``topic`` without waiting (a slow client is
        dropped instead)."""
        self._outbox.put(self._protocol.send(topic, data))

    def offer_publication(self, topic: str, data: str, tail: str | None) -> None:
        """Queue a group message without waiting: a ``pub`` frame (with its
        place in the group's history, ``tail``) to a client of ours, a
        ``msg`` to any other."""
        if tail is not None and self._protocol.extended:
            self._outbox.put(self._protocol.publish(topic, tail))
        else:
            self._outbox.put(self._protocol.send(topic, data))

    def offer_gap(self, topic: str, group: str) -> None:
        """Tell the client that ``group`` could not replay all it missed."""
        if self._protocol.extended:
            self._outbox.put(self._protocol.gap(topic, group))

    def presented(self, topic: str, group: str) -> Position | None:
        """Where the client said the channel ``topic`` stands in ``group``;
        a join takes it (once)."""
        return self._presented.pop((topic, group), None)

    def close_channel(
        self, channel: Channel, reason: CloseReason, notice: str | None = None
    ) -> None:
        """Close one channel from the server side: ``uns``, after ``err`` if
        there is a ``notice`` (docs/PROTOCOL-EXTENSIONS.md)."""
        if channel.closed or self.state is State.CLOSED:
            return
        if reason is CloseReason.HANDLER_FAILED:
            notice = SERVICE_FAILED
        if notice is not None:
            for frame in self._protocol.fail(channel.topic, notice):
                self._outbox.put(frame)
        else:
            self._outbox.put(self._protocol.close(channel.topic))
        del self._channels[channel.topic]
        self._closed(channel, reason)

    # -- requests (docs/PROTOCOL-EXTENSIONS.md, section 5) ----------------------

    @property
    def takes_requests(self) -> bool:
        """Whether the client took part in the extensions (a session)."""
        return self._protocol.requests is not None

    def send_request(
        self, topic: str, name: str, data: str
    ) -> tuple[str, Awaitable[None] | None]:
        """Send a request on the open channel ``topic``: its id, and what to
        await. Raises ``RequestFailed`` (429) past the bound."""
        requests = self._protocol.requests
        assert requests is not None  # the channel asked takes_requests
        request_id, frame = requests.ask(topic, name, data)
        self._protocol.counters.frames_sent += 1
        return request_id, self._outbox.send(frame, not self._ledger.size)

    def abandon(self, topic: str, request_id: str) -> None:
        requests = self._protocol.requests
        if requests is not None:
            requests.abandon(topic, request_id)

    def answer(
        self, request: Request, frame_of: AnswerKind, wait: bool
    ) -> Awaitable[None] | None:
        """Send the answer to ``request``, unless its channel closed (the
        client's request failed with the close then)."""
        requests = self._protocol.requests
        channel = request.channel
        if (
            requests is None
            or self.state is State.CLOSED
            or self._channels.get(channel.topic) is not channel
        ):
            return None
        if frame_of.notice is None:
            frame = requests.reply(channel.topic, request.id, frame_of.data)
        else:
            frame = requests.fail(channel.topic, request.id, frame_of.notice)
        self._protocol.counters.frames_sent += 1
        if wait:
            return self._outbox.send(frame, not self._ledger.size)
        self._outbox.put(frame)
        return None

    # -- resumable sessions (docs/PROTOCOL-EXTENSIONS.md, section 3) -----------

    @property
    def session(self) -> Session | None:
        """This connection's resumable session, if the client asked for one."""
        return self._session

    def _first_frame(self, text: str) -> str | None:
        """The client's first frame: a hello makes this connection
        resumable, or hands its carrier to the session it names; anything
        else leaves it on the base protocol."""
        self._before = None
        sessions = self.server.sessions
        hello = Hello.parse(text) if text.startswith("hey,") else None
        if hello is None or sessions is None:
            return text
        if isinstance(self._own_carrier, CarriesSessions):
            self._own_carrier.carries_session(format_carried)
        proposed: str | None = hello.token
        if hello.received is not None:  # a resume
            proposed = None  # a new session must not look resumed
            session = sessions.get(hello.token)
            if session is not None:
                if session.resume(self._own_carrier, hello.received):
                    self._carry(session)
                    return None
                session.owner.expire(CloseReason.NOT_RESUMED)  # nobody can
        session = sessions.open(self._own_carrier, self, proposed)
        self._session = session
        self._protocol.take_requests()  # every extension is on
        self.transport = session.carrier
        self._outbox.reroute(session.carrier)
        self._outbox.put(session.welcome())
        # Every frame of the common case: the session counts it, straight
        # (until superseded() says this carrier was replaced).
        self._before = session.incoming
        return None

    def superseded(self) -> None:
        """The session went on over another carrier: what still comes over
        this connection's own is stale (the client resends it on the new
        one), so it is dropped."""
        self._before = _stale

    def _carry(self, session: Session) -> None:
        """This carrier took over ``session``'s connection: its frames go
        there, and this connection is only their way in."""
        self._carrying = session
        self._before = self._forward
        self._outbox.stop()
        self.server.retire(self)  # counted once: as the session's connection

    def _forward(self, text: str) -> None:
        assert self._carrying is not None
        self._carrying.owner.carried(self._own_carrier, text)

    def carried(self, carrier: Transport, text: str) -> None:
        """A frame of this connection's session came over ``carrier``: its
        own, or one that took over (see :meth:`_carry`). Frames of a carrier
        that was replaced are dropped: the client resends them."""
        session = self._session
        if (
            session is None
            or session.carrier.attached is not carrier
            or self.state is State.CLOSED
        ):
            return
        handled = session.incoming(text)
        if handled is not None:
            self._handle(handled)

    def carrier_lost(self, carrier: Transport) -> bool:
        """``carrier`` of this connection's session ended; whether the
        session holds on (the connection then waits for its client)."""
        return self._session is not None and self._session.carrier_lost(carrier)

    def send_control(self, frame: str) -> None:
        """Queue one of the session's own frames (an ack)."""
        self._outbox.put(frame)

    def expire(self, reason: CloseReason) -> None:
        """The session cannot go on: end the connection, and close the
        carrier it is attached to, if any (nothing else would)."""
        if self._session is not None and self._session.carrier.attached is not None:
            self._abort(CloseCode.NORMAL, "session ended", reason)
        else:
            self._lose(reason)

    def said_goodbye(self) -> None:
        self._abort(CloseCode.NORMAL, "goodbye", CloseReason.CLIENT_CLOSED)

    def member_id(self, topic: str) -> str:
        return f"{self.server.process_id}/{self.id}/{topic}"

    def groups_of(self, channel: Channel) -> frozenset[str]:
        return self.server.groups.of(channel)

    async def join(self, channel: Channel, group: str) -> None:
        await self.server.groups.join(channel, group)

    async def leave(self, channel: Channel, group: str) -> None:
        await self.server.groups.leave(channel, group)

    def share_presence(self, channel: Channel, group: str) -> bool:
        """Send ``prs`` frames of ``group`` on ``channel``'s topic, on the
        extended protocol only (docs/PROTOCOL-EXTENSIONS.md, section 6)."""
        if self._session is None or channel.closed or self.state is not State.OPEN:
            return False
        topic = channel.topic

        def send(payload: str) -> Awaitable[None] | None:
            if channel.closed or self.state is State.CLOSED:
                return None
            return self._outbox.send(format_frame(PRS, topic, payload), True)

        self.server.presence_hub.share(self, channel, group, send)
        return True

    def unshare_presence(self, channel: Channel, group: str) -> None:
        self.server.presence_hub.unshare(self, channel, group)

    # -- channels --------------------------------------------------------------

    def _closed(self, channel: Channel, reason: CloseReason) -> None:
        """What follows the close of a channel, whoever closed it."""
        self._ledger.closed(channel.topic)
        channel.mark_closed(reason)
        self.server.groups.forget(channel)
        self.server.presence_hub.forget(self, channel)
        if self._task_free is not None:
            self._task_free.closed(channel, reason)

    def _open_channel(self, topic: str) -> None:
        service = self._registry.for_topic(topic)
        assert service is not None  # the protocol asked is_registered
        channel = Channel(self, service.name, topic, self._ledger.open(topic))
        self._channels[topic] = channel
        if self.state is State.CLOSING:  # a sub that came during the goodbyes
            self.close_channel(channel, CloseReason.SHUTDOWN, GOING_AWAY)
            return
        if service.callbacks is not None and (
            self.server.authorize is None and service.authorize is None
        ):
            self._start_task_free(service, channel)
            return
        task = asyncio.get_running_loop().create_task(
            self._run_handler(service, channel), name=f"multiplex {channel.name!r}"
        )
        self._handlers.add(task)
        task.add_done_callback(self._handlers.discard)

    def _start_task_free(self, service: Service, channel: Channel) -> None:
        assert service.callbacks is not None
        if self._task_free is None:
            self._task_free = TaskFreeServices(self._callback_failed, self._log)
        self._task_free.start(service.callbacks, channel)

    def _callback_failed(self, channel: Channel) -> None:
        self.stats.handler_failures += 1
        self.close_channel(channel, CloseReason.HANDLER_FAILED)

    async def _run_handler(self, service: Service, channel: Channel) -> None:
        _current_handler.set(asyncio.current_task())
        try:
            await self._serve_channel(service, channel)
        finally:
            # Nothing reads the channel after this: what is left unread must
            # not count against the connection's max_connection_queue_size.
            channel.drop_unread()

    async def _serve_channel(self, service: Service, channel: Channel) -> None:
        if not await self._authorize(service, channel):
            return
        if service.callbacks is not None:
            self._start_task_free(service, channel)
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
        self.close_channel(channel, reason)

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
        self.close_channel(channel, CloseReason.REFUSED, FORBIDDEN)
        return False

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


def _stale(text: str) -> None:
    """A frame from a carrier whose session went on elsewhere: dropped."""
    return None
