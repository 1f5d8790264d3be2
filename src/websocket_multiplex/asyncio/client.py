"""The asyncio client: channels over one carrier, reconnecting when it drops.

This module knows carriers only through :class:`Carrier`; the network
carriers (raw WebSocket, SockJS) and :func:`~websocket_multiplex.client.connect`
live in :mod:`websocket_multiplex.client`, which imports aiohttp, and the
in-memory one in :mod:`websocket_multiplex.testing`. A channel knows its
client only through :class:`ClientChannelOwner`.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Generator
from types import TracebackType
from typing import Protocol, runtime_checkable

from ..backoff import Backoff  # re-exported from here
from ..codes import NoticeCode, RequestCode, notice_code
from ..events import (
    ChannelClosedEvent,
    CloseReason,
    MessagePublished,
    MessageReceived,
    PresenceEvent,
    ReplyReceived,
    RequestDeclined,
    RequestReceived,
    StreamGap,
)
from ..exceptions import (  # ChannelGap and Disconnection: re-exported from here
    ChannelClosed,
    ChannelGap,
    DisconnectCause,
    Disconnection,
    GroupGap,
    LocalProtocolError,
    RequestFailed,
    RequestsNotSupported,
)
from ..flow import Held, Ledger
from ..pacing import FRAMES_PER_TURN
from ..presence import PRS, parse_presence
from ..protocol import ClientProtocol
from ..reqrep import RequestBook
from ..resume import CARRIED, GOODBYE, Hello, is_control, parse_carried
from ..streams import Position
from .client_presence import PresenceInbox
from .client_session import ClientSession, Offer
from .inbox import ReceivingChannel
from .requests import DEFAULT_TIMEOUT, AnswerKind, Calls, Request, RequestOwner

__all__ = [
    "Backoff",
    "Carrier",
    "ChannelGap",
    "ClientChannel",
    "ClientChannelOwner",
    "ClientState",
    "DisconnectCause",
    "Disconnection",
    "MultiplexClient",
]

logger = logging.getLogger("websocket_multiplex.client")

_PRS_FRAME = f"{PRS},"

MAX_POSITIONS = 256
"""Groups whose position one channel keeps (the server's default
``Limits.max_stream_positions``); a further group's is not kept."""

HELLO_TIMEOUT = 10.0
"""Seconds a resuming client waits for the server's answer to its hello
before it takes the server for one that does not resume."""
GOODBYE_WAIT = 2.0
"""Seconds :meth:`MultiplexClient.close` waits for a reconnection under
way, and again for its catch-up, to say goodbye on it."""
ACK_DELAY = 0.05
"""Seconds within which a frame from the server is acknowledged, when
fewer than ``ACK_EVERY`` came (docs/PROTOCOL-EXTENSIONS.md, section 3)."""


@runtime_checkable
class Carrier(Protocol):
    """One client connection that carries text messages both ways.

    A carrier may also have a ``close_frame`` attribute: ``None``, or the
    ``(code, reason)`` the server closed it with (a WebSocket close frame,
    SockJS's ``c[code,reason]``), set by the time ``receive`` returns
    ``None``. The client reports it in :attr:`MultiplexClient.disconnection`;
    a carrier without one ends as a lost connection.
    """

    async def send(self, text: str) -> None:
        """Send one message; raise ``ConnectionError`` once closed."""
        ...

    async def receive(self) -> str | None:
        """The next message, or ``None`` once the connection is gone."""
        ...

    async def close(self) -> None: ...


CarrierFactory = Callable[[], Awaitable[Carrier]]


class ClientState(enum.Enum):
    """Where a :class:`MultiplexClient` is; ``on_state`` sees every change.

    ``CONNECTING``: :meth:`~MultiplexClient.start` is opening the first
    connection. It is reported once per ``start()`` call (again when a
    failed ``start()`` is retried); reconnection attempts after a
    connection was open are reported as ``RECONNECTING`` instead.
    ``OPEN``: channels work. ``RECONNECTING``: the connection ended; an
    attempt is scheduled (once per attempt). ``CLOSED``: for good;
    :attr:`MultiplexClient.disconnection` says why.
    """

    CONNECTING = "connecting"
    OPEN = "open"
    RECONNECTING = "reconnecting"
    CLOSED = "closed"


def _ended(carrier: Carrier, error: BaseException | None) -> Disconnection:
    """How ``carrier`` ended, from its ``close_frame`` if it has one."""
    close_frame: tuple[int, str] | None = getattr(carrier, "close_frame", None)
    if error is None and close_frame is not None:
        code, reason = close_frame
        return Disconnection(DisconnectCause.SERVER, code=code, reason=reason)
    return Disconnection(DisconnectCause.LOST, error=error)


class _GapMark(str):
    """Where a gap falls, queued in the inbox in order with the messages.

    A ``str`` so that the inbox stays a plain list of strings; only
    :meth:`ClientChannel.receive` ever sees one, and turns it into
    :class:`ChannelGap`.
    """

    disconnection: Disconnection
    reconnections: int
    group: str | None  # a group's history lacked some (GroupGap)

    def __new__(
        cls, disconnection: Disconnection, reconnections: int, group: str | None = None
    ) -> _GapMark:
        mark = super().__new__(cls, "")
        mark.disconnection = disconnection
        mark.reconnections = reconnections
        mark.group = group
        return mark


class ClientChannelOwner(RequestOwner, Protocol):
    """What a :class:`ClientChannel` asks of its client (a
    :class:`MultiplexClient` implements it): the bounds of its inbox, send
    a message or a request, close me."""

    @property
    def max_queue(self) -> int: ...

    @property
    def max_queue_size(self) -> int: ...

    async def send_frame(self, topic: str, data: str) -> None:
        """Send ``data`` on ``topic``, waiting out a reconnection; raise
        ``ConnectionError`` once the client is closed for good."""
        ...

    async def close_channel(self, channel: ClientChannel, reason: CloseReason) -> None:
        """Unsubscribe ``channel`` and mark it closed with ``reason`` (a
        closed one: nothing)."""
        ...

    async def requests_ready(self) -> None:
        """Wait until the server's part is known; raise
        :class:`RequestsNotSupported` if it takes no requests."""
        ...

    def new_request(self, topic: str, name: str, data: str) -> tuple[str, str]:
        """The id and frame of a request on ``topic`` (429 past the bound)."""
        ...

    async def send_request(self, frame: str) -> None:
        """Send a request's frame, as :meth:`send_frame` sends a message."""
        ...

    def abandon(self, topic: str, request_id: str) -> None: ...


class ClientChannel(ReceivingChannel):
    """One channel to a service: send, receive, close; like a socket of its own.

    Across a reconnection the channel stays open and is subscribed again;
    :attr:`gaps` counts those reconnections, each a window in which
    messages in either direction may have been lost (the protocol has no
    replay). To learn *where* in the stream, open the channel with
    ``report_gaps=True``: ``receive`` (and ``async for``) then raises
    :class:`ChannelGap` at that point, between the last message of the
    old connection and the first of the new one. If the application
    leaves more than ``max_queue`` messages, or ``max_queue_size``
    characters, unread, the channel is closed with
    :attr:`CloseReason.INBOX_FULL` rather than letting memory grow or
    stalling the other channels.
    """

    def __init__(
        self,
        owner: ClientChannelOwner,
        name: str,
        topic: str,
        *,
        report_gaps: bool = False,
    ) -> None:
        share = Held(Ledger())  # what its inbox holds, for the owner's bounds
        super().__init__(name, topic, share)
        self.gaps = 0
        """Reconnections this channel went through while open."""
        self._owner = owner
        self._share = share
        self._close_detail = ""
        self._report_gaps = report_gaps
        self._open_gap: _GapMark | None = None  # queued last, and not read yet
        self._positions: dict[str, Position] = {}
        self.group_gaps = 0
        """Times a group's history could not replay all this channel missed."""
        self._presence = PresenceInbox(owner.max_queue)
        self._calls: Calls | None = None  # made on the first request

    @property
    def report_gaps(self) -> bool:
        """Whether ``receive`` raises :class:`ChannelGap` where gaps fall."""
        return self._report_gaps

    async def receive(self, timeout: float | None = None) -> str:
        """Return the next message; raise ``ChannelClosed`` when none will come.

        With ``timeout``, raise ``TimeoutError`` after that many seconds.
        With ``report_gaps=True``, raise :class:`ChannelGap` where a
        reconnection cut the stream, then go on with the next message.
        """
        message = await super().receive(timeout)
        if type(message) is _GapMark:
            raise self._gap(message)
        return message

    async def __anext__(self) -> str:
        if not self.unread:
            try:
                return await self.receive()  # waits; raises a gap as ChannelGap
            except ChannelClosed:
                raise StopAsyncIteration from None
        message = self.take()  # the common case: no coroutine per message
        if type(message) is _GapMark:
            raise self._gap(message)
        return message

    def _gap(self, mark: _GapMark) -> ChannelGap:
        """What a gap mark just read stands for."""
        if mark is self._open_gap:
            self._open_gap = None
        if mark.group is not None:
            return GroupGap(
                self.name, mark.group, mark.disconnection, mark.reconnections
            )
        return ChannelGap(self.name, mark.disconnection, mark.reconnections)

    @property
    def positions(self) -> dict[str, Position]:
        """Where this channel stands in each group whose messages it got from
        a server that keeps group histories (a copy): what it presents to
        a server that could not resume its session."""
        return dict(self._positions)

    @property
    def close_detail(self) -> str:
        """The server's refusal notice, e.g. ``"404 no such service"``."""
        return self._close_detail

    def presence(self) -> AsyncIterator[PresenceEvent]:
        """The presence of the groups the service shares with this channel
        (``Channel.share_presence`` on the server), until the channel closes::

            async for event in channel.presence():
                ...  # PresenceSnapshot, then MemberJoined / MemberLeft

        Each group starts with a :class:`~websocket_multiplex.PresenceSnapshot`;
        one with ``gap=True`` means changes were missed (more than
        ``max_queue`` events left unread, or the server's session was lost),
        and gives the members now. Only our server, on a resumable
        connection, sends these: with any other, nothing comes. One reader
        at a time.
        """
        return self._presence.events()

    def members(self, group: str) -> frozenset[str]:
        """The members of ``group`` as the server last said."""
        return self._presence.members(group)

    async def send(self, data: str) -> None:
        """Send ``data``; while reconnecting, wait for the new connection."""
        if not isinstance(data, str):
            raise TypeError(f"channels carry text: encode {type(data).__name__} first")
        if (reason := self.close_reason) is not None:
            raise ChannelClosed(self.name, reason)
        try:
            await self._owner.send_frame(self.topic, data)
        except ConnectionError:
            if (reason := self.close_reason) is not None:  # the client gave up
                raise ChannelClosed(self.name, reason) from None
            raise

    async def close(self) -> None:
        """Unsubscribe (``uns``); closing a closed channel does nothing."""
        await self._owner.close_channel(self, CloseReason.CLIENT_CLOSED)

    # -- requests (docs/PROTOCOL-EXTENSIONS.md, section 5) ----------------------

    def _get_calls(self) -> Calls:
        calls = self._calls
        if calls is None:
            calls = self._calls = Calls(self.name, self._share)
            if (reason := self.close_reason) is not None:
                calls.close(reason)
        return calls

    async def request(
        self, data: str, *, timeout: float | None = DEFAULT_TIMEOUT
    ) -> str:
        """Send the service a request and return its reply.

        The service answers with ``request.reply(data)`` (see
        :meth:`~websocket_multiplex.Channel.requests`); replies are matched
        by id, whatever their order. Raises
        :class:`~websocket_multiplex.RequestTimeout` after ``timeout``
        seconds (``None``: no limit), :class:`RequestFailed` if the service
        answered with an error (``code``: 400 refused, 500 its handler
        failed, 501 it answers no requests), if ``max_outstanding_requests``
        are in flight already on this channel (429, at once), or if the
        connection was replaced without resuming its session (502),
        :class:`ChannelClosed` if the channel closes first, and
        :class:`~websocket_multiplex.RequestsNotSupported`, sending
        nothing, if the server speaks only the base protocol (the original
        node server) or this client was made with ``resume=False`` or
        without reconnection. A resumed reconnection loses no request.
        """
        if not isinstance(data, str):
            raise TypeError(f"channels carry text: encode {type(data).__name__} first")
        if (reason := self.close_reason) is not None:
            raise ChannelClosed(self.name, reason)
        owner = self._owner
        await owner.requests_ready()
        if (reason := self.close_reason) is not None:
            raise ChannelClosed(self.name, reason)
        calls = self._get_calls()
        request_id, frame = owner.new_request(self.topic, self.name, data)
        future = calls.expect(request_id)
        try:
            try:
                await owner.send_request(frame)
            except ConnectionError:
                raise ChannelClosed(
                    self.name, self.close_reason or CloseReason.CONNECTION_LOST
                ) from None
            return await calls.wait(request_id, future, timeout)
        finally:
            owner.abandon(self.topic, request_id)

    def requests(self) -> Calls:
        """The server's requests on this channel, in order:
        ``async for request in channel.requests(): await request.reply(...)``.

        Unread requests count in the inbox bounds (``max_queue``,
        ``max_queue_size``); the iteration ends when the channel closes.
        """
        return self._get_calls()

    def accept_request(self, request: Request) -> bool:
        """Queue a request from the server; ``False`` if the inbox is full."""
        owner, share = self._owner, self._share
        if share.count >= owner.max_queue or (
            share.count and share.size + len(request.data) > owner.max_queue_size
        ):
            return False
        share.arrived(len(request.data))
        self._get_calls().put(request)
        return True

    def replied(self, request_id: str, payload: str, notice: str | None) -> None:
        """The server answered our request ``request_id``."""
        if self._calls is not None:
            self._calls.replied(request_id, payload, notice)

    def requests_lost(self) -> None:
        """The session they belonged to is gone: requests awaited fail
        (502), the server's unread ones are dropped (nobody awaits them)."""
        if self._calls is not None:
            self._calls.fail_all(
                RequestFailed(
                    self.name,
                    RequestCode.LOST,
                    "the connection was replaced and its session not resumed: "
                    "the request may or may not have been answered",
                )
            )
            self._calls.take_all()

    async def __aenter__(self) -> ClientChannel:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    # -- for the client (the owner), not the application ----------------------

    def accept(self, payload: str) -> bool:
        """Queue a message from the server; ``False`` if the inbox is full
        (the owner then closes the channel with ``INBOX_FULL``)."""
        owner, share = self._owner, self._share
        if share.count >= owner.max_queue or (
            share.count and share.size + len(payload) > owner.max_queue_size
        ):  # an empty inbox takes any message, as on the server
            return False
        self.deliver(payload)
        self._open_gap = None
        return True

    def published(self, event: MessagePublished) -> bool:
        """Queue a group message and note its position; ``False`` if the
        inbox is full (see :meth:`accept`)."""
        positions = self._positions
        if event.group in positions or len(positions) < MAX_POSITIONS:
            positions[event.group] = Position(event.epoch, event.offset)
        return self.accept(event.payload)

    def group_gap(self, group: str, disconnection: Disconnection) -> None:
        """``group``'s history could not replay all this channel missed."""
        self.group_gaps += 1
        logger.warning(
            "channel %r: messages of group %r were lost (no longer in its history)",
            self.name,
            group,
        )
        if self._report_gaps:
            self._open_gap = None  # a point of its own
            self.deliver(_GapMark(disconnection, 1, group))

    def mark_closed(self, reason: CloseReason, detail: str = "") -> None:
        """The channel is closed; ``detail`` is the server's refusal notice."""
        self._close_detail = detail
        super().mark_closed(reason)
        self._presence.close()
        if self._calls is not None:
            self._calls.close(reason)

    def presence_received(self, event: PresenceEvent) -> None:
        """A ``prs`` frame of this channel came."""
        self._presence.received(event)

    def reconnected(self, disconnection: Disconnection) -> None:
        """Count a gap and, if reported, mark its place in the inbox."""
        self.gaps += 1
        if not self._report_gaps:
            return
        gap = self._open_gap
        if gap is not None:  # no message since the last gap: one point for both
            gap.disconnection = disconnection
            gap.reconnections += 1
        else:
            self._open_gap = _GapMark(disconnection, 1)
            self.deliver(self._open_gap)


class _ChannelOpening:
    """What ``client.channel(name)`` returns: await it or ``async with`` it."""

    def __init__(self, opening: Awaitable[ClientChannel]) -> None:
        self._opening = opening
        self._channel: ClientChannel | None = None

    def __await__(self) -> Generator[object, None, ClientChannel]:
        return self._opening.__await__()

    async def __aenter__(self) -> ClientChannel:
        self._channel = await self._opening
        return self._channel

    async def __aexit__(self, *exc_info: object) -> None:
        assert self._channel is not None
        await self._channel.close()

    def __getattr__(self, name: str) -> object:
        # Only for what it lacks: a channel's send, receive... used on the
        # opening itself, which must be awaited first.
        if name.startswith("_") or not hasattr(ClientChannel, name):
            raise AttributeError(name)
        raise AttributeError(
            f"client.channel(...) opens a channel and must be awaited before "
            f"its {name!r} can be used: write `channel = await "
            f'client.channel("name")` or `async with client.channel("name") '
            f"as channel:`"
        )


class MultiplexClient:
    """Channels over one carrier connection, opened by ``open_carrier``.

    Usually made by :func:`websocket_multiplex.client.connect`. With a
    :class:`Backoff` as ``reconnect``, a carrier that drops is replaced and
    every open channel subscribed again. With ``resume`` (the default) and
    a server of ours, the new carrier instead carries on where the old one
    stopped: nothing sent either way is lost or repeated, and the channels
    see no gap (docs/PROTOCOL-EXTENSIONS.md, section 3). If the server no
    longer holds the session (its handlers ended with
    :attr:`CloseReason.NOT_RESUMED`), the channels are subscribed again
    as without ``resume``, each with a gap, and the state's reason says
    so. With the original server nothing changes. ``on_state`` is called with each
    new :class:`ClientState` and a short reason, in order: ``CONNECTING``
    when :meth:`start` begins, ``OPEN``, then ``RECONNECTING`` before each
    attempt and ``OPEN`` again, and ``CLOSED`` at the end, with
    :attr:`disconnection` set before the call (its ``str()`` is the
    reason).
    """

    def __init__(
        self,
        open_carrier: CarrierFactory,
        *,
        reconnect: Backoff | None = Backoff(),
        max_queue: int = 1024,
        max_queue_size: int = 1 << 20,
        on_state: Callable[[ClientState, str], None] | None = None,
        resume: bool = True,
        max_outstanding_requests: int = 64,
    ) -> None:
        self.max_queue = max_queue
        self.max_queue_size = max_queue_size
        self._open_carrier = open_carrier
        self._backoff = reconnect
        self._on_state = on_state
        self._protocol = ClientProtocol(max_outstanding_requests)
        self._requests_of: int | None = None  # the session epoch they ride on
        self._channels: dict[str, ClientChannel] = {}
        self._carrier: Carrier | None = None
        self._state = ClientState.CONNECTING
        self._state_changed = asyncio.Event()
        self._connected = asyncio.Event()
        self._send_lock = asyncio.Lock()
        self._reader: asyncio.Task[None] | None = None
        self._session = ClientSession() if resume and reconnect is not None else None
        self._restarting: set[str] = set()  # closed by a restarting server
        self._first_text: str | None = None  # read by the handshake, not handled
        self._carried = 0  # messages the handshake read from the carrier
        self._ack_timer: asyncio.TimerHandle | None = None
        self._catching_up: asyncio.Task[None] | None = None  # after a resume
        self._dropped = asyncio.Event()  # set when a carrier is dropped
        self._saying_goodbye = False  # close() waits for the server's answer
        self._lost_sessions = 0  # sessions the server no longer held
        self.reconnects = 0
        """Successful reconnections so far (resumed ones included)."""
        self.resumptions = 0
        """Of them, how many carried on where the old connection stopped."""
        self.disconnection: Disconnection | None = None
        """How the last connection ended, or ``None`` if none has.

        Set when the client goes ``RECONNECTING`` (why the connection was
        lost) and when it goes ``CLOSED`` (why it closed for good: the
        application, the server's close code and reason, a lost
        connection without reconnection, or giving up).
        """

    @property
    def state(self) -> ClientState:
        """The current :class:`ClientState`."""
        return self._state

    @property
    def channels(self) -> list[ClientChannel]:
        """The open channels, in the order they were opened."""
        return list(self._channels.values())

    @property
    def resumable(self) -> bool:
        """Whether the server takes part in a resumable session: a lost
        connection is then resumed, not only replaced."""
        return self._session is not None and self._session.on

    async def start(self) -> None:
        """Open the first carrier, then keep it running.

        Errors propagate: the client stays ``CONNECTING`` and ``start``
        may be called again.
        """
        self._set_state(ClientState.CONNECTING, "connecting")
        carrier = await self._open_carrier()
        try:  # channels opened before start() are subscribed now
            await self._handshake(carrier)
        except BaseException:
            await carrier.close()
            raise
        self._sync_requests()
        self._carrier = carrier
        self._set_state(ClientState.OPEN, "connected")
        self._reader = asyncio.get_running_loop().create_task(self._run())

    def channel(self, name: str, *, report_gaps: bool = False) -> _ChannelOpening:
        """Open a channel to the service ``name``.

        ``channel = await client.channel("news")``, or
        ``async with client.channel("news") as channel:`` to close it on exit.
        A second channel of the same name is independent of the first.
        With ``report_gaps=True``, ``receive`` raises :class:`ChannelGap`
        where a reconnection may have lost messages (see
        :class:`ClientChannel`).
        """
        return _ChannelOpening(self._open_channel(name, report_gaps))

    async def _open_channel(self, name: str, report_gaps: bool) -> ClientChannel:
        if self._state is ClientState.CLOSED:
            raise LocalProtocolError("the client is closed: connect again")
        topic, frame = self._protocol.open(name)
        channel = ClientChannel(self, name, topic, report_gaps=report_gaps)
        self._channels[topic] = channel
        session = self._session
        if self._state is ClientState.OPEN or (
            self._state is ClientState.RECONNECTING
            and session is not None
            and session.offer is not Offer.OFF
        ):
            await self._send(frame)  # a resumed session sends what it kept
        return channel  # otherwise the reconnection subscribes it

    async def wait_for(self, state: ClientState, timeout: float | None = None) -> None:
        """Wait until the client is in ``state``.

        A state that lasts less than one event-loop turn may be missed; to
        see every change, pass ``on_state`` to the client instead.
        """
        try:
            async with asyncio.timeout(timeout):
                while self._state is not state:
                    self._state_changed.clear()
                    await self._state_changed.wait()
        except TimeoutError:
            raise TimeoutError(
                f"the client did not become {state.name} within {timeout:g} s "
                f"(it is {self._state.name})"
            ) from None

    async def close(self) -> None:
        """Close every channel and the carrier; no reconnection follows."""
        if self._state is ClientState.CLOSED:
            return
        for channel in list(self._channels.values()):
            await channel.close()
        if self.resumable:
            await self._say_goodbye()
        self._closed_for_good(Disconnection(DisconnectCause.APPLICATION))
        reader, self._reader = self._reader, None
        if reader is not None:
            reader.cancel()
            await asyncio.gather(reader, return_exceptions=True)
        await self._drop_carrier()

    async def _say_goodbye(self) -> None:
        """End the session on the server, so that it does not keep it, the
        handlers waiting, for ``resume_grace``.

        The goodbye goes after a reconnection under way and its catch-up
        (the channels' unsubscriptions among it). The server answers it by
        closing the carrier; a carrier lost instead, the goodbye goes again
        on the next one. All within :data:`GOODBYE_WAIT` seconds."""
        self._saying_goodbye = True
        try:
            async with asyncio.timeout(GOODBYE_WAIT):
                while self._state is not ClientState.CLOSED:
                    self._dropped.clear()  # before the waits: a drop in them counts
                    await self.wait_for(ClientState.OPEN)
                    while (catching_up := self._catching_up) is not None:
                        await asyncio.shield(catching_up)
                    carrier = self._carrier
                    if self._dropped.is_set():
                        continue  # lost meanwhile: on the next carrier
                    if not await self._send_control(GOODBYE) and (
                        self._state is not ClientState.OPEN
                    ):
                        continue  # it went before the goodbye could
                    await self._dropped.wait()
                    if getattr(carrier, "close_frame", None) is not None:
                        return  # the server's answer (or its own close)
        except TimeoutError:
            pass
        finally:
            self._saying_goodbye = False

    async def __aenter__(self) -> MultiplexClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()

    # -- for its channels (ClientChannelOwner), not the application -----------

    async def send_frame(self, topic: str, data: str) -> None:
        """Send ``data`` on the channel of ``topic``: what
        :meth:`ClientChannel.send` does (call that instead). While
        reconnecting, wait for the new connection; raise
        ``ConnectionError`` once the client is closed for good."""
        await self._send(self._protocol.send(topic, data))

    async def close_channel(self, channel: ClientChannel, reason: CloseReason) -> None:
        """Send ``uns`` for ``channel`` and mark it closed with ``reason``:
        what :meth:`ClientChannel.close` does (call that instead). Closing
        a closed channel does nothing; one closed while disconnected is
        simply not subscribed again."""
        if channel.closed:
            return
        frame = self._protocol.close(channel.topic)
        del self._channels[channel.topic]
        self._restarting.discard(channel.topic)
        channel.mark_closed(reason)
        session = self._session
        if session is not None and session.on:
            await self._send_in_session(session, frame)
            return
        carrier = self._carrier
        if self._state is ClientState.OPEN and carrier is not None:
            with contextlib.suppress(ConnectionError):
                await self._write(carrier, frame)

    # -- internals -----------------------------------------------------------

    # -- requests (ClientChannelOwner, RequestOwner) ----------------------------

    async def requests_ready(self) -> None:
        """Wait for the server's answer to the offer, then raise
        :class:`RequestsNotSupported` unless it takes part."""
        session = self._session
        if session is not None:
            # Our server answers the offer first thing; the original never
            # does, and may say nothing at all for a while.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(HELLO_TIMEOUT):
                    await session.settled()
        if self._protocol.requests is None:
            why = (
                "this client was made with resume=False or without reconnection"
                if session is None
                else "the server speaks only the base protocol (the original "
                "node server?)"
            )
            raise RequestsNotSupported(
                f"requests need our server and a resumable session: {why}; "
                "send messages instead"
            )

    def new_request(self, topic: str, name: str, data: str) -> tuple[str, str]:
        requests = self._protocol.requests
        if requests is None:  # lost while the caller waited
            raise RequestsNotSupported("the server no longer takes requests")
        return requests.ask(topic, name, data)

    async def send_request(self, frame: str) -> None:
        await self._send(frame)

    def abandon(self, topic: str, request_id: str) -> None:
        requests = self._protocol.requests
        if requests is not None:
            requests.abandon(topic, request_id)

    def answer(
        self, request: Request, frame_of: AnswerKind, wait: bool
    ) -> Awaitable[None] | None:
        """Send the answer to ``request``, unless its channel closed or its
        session is gone (nobody awaits it then)."""
        requests = self._protocol.requests
        channel = request.channel
        if (
            requests is None
            or request.origin is not requests
            or self._channels.get(channel.topic) is not channel
        ):
            return None
        if frame_of.notice is None:
            frame = requests.reply(channel.topic, request.id, frame_of.data)
        else:
            frame = requests.fail(channel.topic, request.id, frame_of.notice)
        if wait:
            return self._send(frame)
        self._in_background(self._send(frame))
        return None

    def _in_background(self, sending: Awaitable[None]) -> None:
        async def run() -> None:
            with contextlib.suppress(ConnectionError):
                await sending

        task = asyncio.get_running_loop().create_task(run())
        _background.add(task)
        task.add_done_callback(_background.discard)

    def _sync_requests(self) -> None:
        """Requests ride on one session: a new one (not resumed), or none
        any more, fails those in flight and drops the server's."""
        session = self._session
        epoch = session.epoch if session is not None and session.on else None
        if epoch == self._requests_of:
            return
        had = self._protocol.requests is not None
        self._requests_of = epoch
        self._protocol.take_requests(epoch is not None)
        if had:
            for channel in self._channels.values():
                channel.requests_lost()

    def _request_received(self, event: RequestReceived) -> None:
        channel = self._channels[event.topic]
        request = Request(
            self, channel, event.request_id, event.payload, self._protocol.requests
        )
        if not channel.accept_request(request):
            logger.warning("%r: inbox full, closing the channel", channel)
            self._in_background(self.close_channel(channel, CloseReason.INBOX_FULL))

    async def _send(self, frame: str) -> None:
        session = self._session
        kept_in: int | None = None  # the session epoch that kept the frame
        while True:
            if self._state is ClientState.CLOSED:
                raise ConnectionError("the client is closed")
            if session is not None and session.on:
                if kept_in == session.epoch:
                    return  # kept by the session that resumed: it was resent
                await self._send_in_session(session, frame)
                return
            carrier = self._carrier
            if self._state is ClientState.OPEN and carrier is not None:
                try:
                    if session is not None:
                        kept_in = session.epoch
                    await self._write(carrier, frame)
                    return
                except ConnectionError:
                    # The carrier failed before the reader saw it end: wait
                    # for the reader to reconnect or give up, do not spin.
                    if self._carrier is carrier:
                        self._connected.clear()
            await self._connected.wait()

    async def _write(self, carrier: Carrier, frame: str) -> None:
        """Send one numbered frame, kept by the session if there is one."""
        session = self._session
        if session is not None:
            session.record(frame)
        async with self._send_lock:
            if session is not None:
                session.written = session.book.sent_count
            await carrier.send(frame)

    async def _send_in_session(self, session: ClientSession, frame: str) -> None:
        """Keep ``frame`` and send it if connected: a frame the carrier
        fails to take, or sent while reconnecting, goes on resuming."""
        session.record(frame)
        carrier = self._carrier
        if (
            self._state is ClientState.OPEN
            and carrier is not None
            and self._catching_up is None  # else it sends this frame too
        ):
            try:
                async with self._send_lock:
                    session.written = session.book.sent_count
                    await carrier.send(frame)
            except ConnectionError:
                pass  # the reader sees the end and resumes
        await session.room()

    async def _send_control(self, frame: str) -> bool:
        """An ack or the goodbye: on this carrier or not at all (a resume
        acknowledges); whether it went."""
        carrier = self._carrier
        if self._state is ClientState.OPEN and carrier is not None:
            try:
                async with self._send_lock:
                    await carrier.send(frame)
            except ConnectionError:
                return False
            return True
        return False

    def _ack_later(self) -> None:
        if self._ack_timer is None:
            self._ack_timer = asyncio.get_running_loop().call_later(
                ACK_DELAY, self._flush_ack
            )

    def _flush_ack(self) -> None:
        self._ack_timer = None
        session = self._session
        ack = None if session is None else session.book.ack()
        if ack is not None:
            task = asyncio.get_running_loop().create_task(self._send_control(ack))
            _background.add(task)
            task.add_done_callback(_background.discard)

    async def _run(self) -> None:
        while True:
            carrier = self._carrier
            error: Exception | None = None
            assert carrier is not None
            try:
                await self._read(carrier)
            except _MessagesLost as exc:  # and it was closed: resume past it
                logger.info("%s", exc)
                error = exc
            except Exception as exc:  # a broken carrier: lost, never a dead reader
                logger.warning("the connection failed", exc_info=True)
                error = exc
            await self._drop_carrier()
            self.disconnection = ended = _ended(carrier, error)
            if self._saying_goodbye and ended.cause is DisconnectCause.SERVER:
                return  # the answer to close()'s goodbye: close() goes on
            if self._backoff is None:
                self._give_up(ended)
                return
            if not await self._reconnect(self._backoff, ended):
                return

    async def _read(self, carrier: Carrier) -> None:
        first, self._first_text = self._first_text, None
        carried = self._carried  # messages of this carrier (the first among them)
        if first is not None:
            await self._handle(first)
        handled = 0
        while (text := await carrier.receive()) is not None:
            if text.startswith(_CARRIED) and self._session_on():  # section 3
                if parse_carried(text) != carried:
                    await carrier.close()
                    raise _MessagesLost(
                        f"the connection lost messages ({text!r} after "
                        f"{carried}): resuming on a new one"
                    )
                continue
            carried += 1
            await self._handle(text)
            handled += 1
            if handled % FRAMES_PER_TURN == 0:
                # A carrier with frames buffered answers without waiting:
                # let the channels' readers run, or their inboxes overflow.
                await asyncio.sleep(0)

    def _session_on(self) -> bool:
        session = self._session
        return session is not None and session.on

    async def _handle(self, text: str) -> None:
        session = self._session
        if session is not None and session.offer is not Offer.OFF:
            if not session.on:  # the first frame after a fresh offer
                answered = session.answered(text)
                self._sync_requests()
                if answered:
                    return
            elif is_control(text):
                if text.startswith("ack,") and not session.acknowledged(text):
                    logger.debug("ignoring an impossible %r", text)
                return
            else:
                ack = session.book.received()
                if ack is not None:
                    await self._send_control(ack)
                else:
                    self._ack_later()
            if text.startswith(_PRS_FRAME):  # only on a session: section 6
                self._presence_frame(text)
                return
        event = self._protocol.receive(text)
        if type(event) is MessageReceived:
            channel = self._channels[event.topic]
            if not channel.accept(event.payload):
                logger.warning("%r: inbox full, closing the channel", channel)
                await self.close_channel(channel, CloseReason.INBOX_FULL)
        elif type(event) is MessagePublished:
            channel = self._channels[event.topic]
            if not channel.published(event):
                logger.warning("%r: inbox full, closing the channel", channel)
                await self.close_channel(channel, CloseReason.INBOX_FULL)
        elif type(event) is StreamGap:
            disconnection = self.disconnection or Disconnection(DisconnectCause.LOST)
            self._channels[event.topic].group_gap(event.group, disconnection)
        elif type(event) is ChannelClosedEvent:
            going_away = notice_code(event.detail) == NoticeCode.GOING_AWAY
            if going_away and self._backoff is not None:
                # The server is restarting: keep the channel and
                # subscribe it again once reconnected.
                self._protocol.keep(event.topic)
                self._restarting.add(event.topic)
            else:  # a shutdown is not a refusal
                reason = CloseReason.SHUTDOWN if going_away else event.reason
                channel = self._channels.pop(event.topic)
                channel.mark_closed(reason, event.detail)
        elif type(event) is RequestReceived:
            self._request_received(event)
        elif type(event) is ReplyReceived:
            self._channels[event.topic].replied(
                event.request_id, event.payload, event.notice
            )
        elif type(event) is RequestDeclined:
            self._in_background(
                self._send(
                    RequestBook.decline(event.topic, event.request_id, event.notice)
                )
            )

    def _presence_frame(self, text: str) -> None:
        _, _, rest = text.partition(",")
        topic, _, payload = rest.partition(",")
        channel = self._channels.get(topic)
        event = parse_presence(payload)
        if channel is not None and event is not None:
            channel.presence_received(event)

    async def _reconnect(self, backoff: Backoff, ended: Disconnection) -> bool:
        """Reconnect and resubscribe; ``False`` once it gave up (and closed)."""
        cut = list(self._channels.values())  # opened later: nothing was lost
        attempt, why, error = 0, str(ended), None
        while backoff.max_attempts is None or attempt < backoff.max_attempts:
            delay = backoff.delay(attempt)
            self._set_state(
                ClientState.RECONNECTING,
                f"attempt {attempt + 1} in {delay:.2f}s; {why}",
            )
            await asyncio.sleep(delay)
            try:
                carrier = await self._open_carrier()
                try:
                    lost = self._lost_sessions
                    resumed = await self._handshake(carrier)
                except BaseException:  # also close() cancelling us: do not leak it
                    await carrier.close()
                    raise
            except Exception as exc:  # e.g. a 503 or a hang-up mid-handshake
                logger.info("reconnection attempt %d failed: %r", attempt + 1, exc)
                attempt, error = attempt + 1, exc
                why = f"attempt {attempt} failed: {exc!r}"
                continue
            self._carrier = carrier
            self._sync_requests()
            self.reconnects += 1
            if resumed:
                self.resumptions += 1
            else:
                for channel in cut:
                    if not channel.closed:
                        channel.reconnected(ended)
            if resumed:
                reason = "resumed"
            elif self._lost_sessions > lost:
                reason = "reconnected; the session was not resumed"
            else:
                reason = "reconnected"
            self._set_state(ClientState.OPEN, reason)
            return True
        self._give_up(
            Disconnection(DisconnectCause.GAVE_UP, attempts=attempt, error=error)
        )
        return False

    async def _handshake(self, carrier: Carrier) -> bool:
        """Begin on a new carrier: offer or resume a session if this client
        does, subscribe what needs it; whether the session resumed."""
        self._carried = 0
        session = self._session
        if session is None or session.offer is Offer.OFF:
            await self._resubscribe(carrier)
            return False
        if not session.resuming:  # the offer; the answer comes to the reader
            await carrier.send(session.hello())
            await self._resubscribe(carrier)
            return False
        offered = not session.on
        await carrier.send(session.hello())
        text = await _answer(carrier)
        self._carried = 1 if text else 0
        answer = Hello.parse(text)
        unwritten = session.unwritten()
        if answer is None or answer.received is None:
            # A server that does not resume (any more): the base protocol.
            session.give_up()
            self._first_text = text or None
            if not offered:  # a session was on: what it carried is lost
                self._session_lost()
            await self._resubscribe(carrier, unwritten)
            return False
        if answer.token != session.token:
            # The server does not hold the session: it expired, or the
            # server restarted, or our offer never reached it. It cannot
            # tell which, so nothing kept is resent but what never went
            # out: a gap, never a repeat.
            self._session_lost()
            session.restart(answer.token)
            await self._resubscribe(carrier, unwritten, present=True)
            return False
        session.adopt(answer.token)
        resend = session.resend_after(answer.received)
        if resend is None:  # the server is confused: begin afresh
            self._session_lost()
            session.forget()
            raise ConnectionError(f"the server resumed impossibly: {text!r}")
        upto = session.book.sent_count  # resend ends there; the rest follows
        self._resubscribe_restarting(session)
        # What the server lacks goes in a task, before anything sent from
        # now on, while the reader takes what the server resends.
        self._catching_up = asyncio.get_running_loop().create_task(
            self._catch_up(carrier, session, resend, upto)
        )
        return True

    async def _catch_up(
        self, carrier: Carrier, session: ClientSession, resend: list[str], upto: int
    ) -> None:
        """Send what the server lacks (``resend``, up to frame ``upto``),
        and what senders kept meanwhile."""
        book = session.book
        try:
            while True:
                for frame in resend:
                    async with self._send_lock:
                        await carrier.send(frame)
                if session.book is book:
                    session.written = upto
                if book.sent_count == upto or session.book is not book:
                    break
                resend, upto = book.since(upto), book.sent_count
        except ConnectionError:
            pass  # the reader sees the end, and the next carrier resumes
        finally:
            if self._catching_up is asyncio.current_task():
                self._catching_up = None

    def _resubscribe_restarting(self, session: ClientSession) -> None:
        """Channels a restarting server closed (1001): subscribe them again
        (kept, so that the catch-up sends them)."""
        for topic in sorted(self._restarting & self._protocol.open_topics):
            session.record(f"sub,{topic}")
        self._restarting.clear()

    def _session_lost(self) -> None:
        """The server no longer holds the session (its handlers ended with
        ``NOT_RESUMED``): what was in flight is lost. The channels are
        subscribed again, as in a base reconnection, and each counts a gap
        (:class:`ChannelGap` where they report them)."""
        self._lost_sessions += 1
        logger.warning(
            "the server did not resume the session: %d channel(s) subscribed "
            "again, messages in flight may be lost",
            len(self._channels),
        )

    async def _resubscribe(
        self,
        carrier: Carrier,
        unwritten: list[str] | None = None,
        *,
        present: bool = False,
    ) -> None:
        """Send ``sub`` for every open channel, also those opened meanwhile,
        then the ``unwritten`` messages of a lost session whose channel is
        still open. With ``present`` (a new session with a server of ours),
        each channel's group positions go first, so that the handlers
        rejoining those groups replay what it missed
        (docs/PROTOCOL-EXTENSIONS.md, section 4).

        A channel opened while these sends wait is not in the first round;
        the next round includes it. Repeating a ``sub`` for a topic that is
        open is harmless: servers ignore it (docs/PROTOCOL.md, "Semantics").
        """
        self._restarting.clear()
        if present:
            for channel in list(self._channels.values()):
                for group, position in channel.positions.items():
                    frame = self._protocol.present(channel.topic, group, position)
                    await self._write(carrier, frame)
        subscribed: frozenset[str] | None = None
        while subscribed != self._protocol.open_topics:
            subscribed = self._protocol.open_topics
            for frame in self._protocol.resubscribe():
                await self._write(carrier, frame)
        for frame in unwritten or ():
            if frame.split(",", 2)[1] in self._protocol.open_topics:
                await self._write(carrier, frame)

    def _give_up(self, disconnection: Disconnection) -> None:
        for event in self._protocol.connection_lost():
            self._channels.pop(event.topic).mark_closed(event.reason)
        self._closed_for_good(disconnection)

    def _closed_for_good(self, disconnection: Disconnection) -> None:
        session = self._session
        if session is not None and session.offer is Offer.OFFERED:
            session.give_up()  # nobody waits for the answer any more
        self.disconnection = disconnection
        self._set_state(ClientState.CLOSED, str(disconnection))

    async def _drop_carrier(self) -> None:
        if self._state is not ClientState.CLOSED:
            # Senders wait for the next carrier instead of finding none
            # (the state is still OPEN until the reader says otherwise).
            self._connected.clear()
        if self._ack_timer is not None:
            self._ack_timer.cancel()
            self._ack_timer = None
        carrier, self._carrier = self._carrier, None
        if carrier is not None:
            await carrier.close()
        self._dropped.set()

    def _set_state(self, state: ClientState, reason: str) -> None:
        self._state = state
        if state is ClientState.OPEN:
            self._connected.set()
        else:
            self._connected.clear()
        if state is ClientState.CLOSED:
            self._connected.set()  # release waiting senders: they raise
        self._state_changed.set()
        logger.debug("client %s: %s", state.value, reason)
        if self._on_state is not None:
            self._on_state(state, reason)


_background: set[asyncio.Task[object]] = set()  # acks under way: kept referenced

_CARRIED = f"{CARRIED},"


class _MessagesLost(ConnectionError):
    """The carrier says it brought more messages than arrived: an answer
    lost without a cut (docs/PROTOCOL-EXTENSIONS.md, section 3, ``seq``)."""


async def _answer(carrier: Carrier) -> str:
    """The server's first frame on a resuming carrier."""
    try:
        async with asyncio.timeout(HELLO_TIMEOUT):
            text = await carrier.receive()
    except TimeoutError:
        return ""  # no answer: a server that ignores the hello
    if text is None:
        raise ConnectionError("the connection closed before the server answered")
    return text
