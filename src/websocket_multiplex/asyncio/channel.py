"""A virtual channel: one service talking to one client over a connection."""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Protocol

from ..events import CloseReason
from ..exceptions import ChannelClosed, RequestsNotSupported
from ..flow import Held
from ..request import RequestInfo
from ..streams import Position
from .inbox import ReceivingChannel
from .requests import DEFAULT_TIMEOUT, Calls, Request, RequestOwner

__all__ = ["Channel", "ChannelOwner"]


class ChannelOwner(RequestOwner, Protocol):
    """What a channel asks of its connection (a
    :class:`~websocket_multiplex.Connection` implements it): send a frame,
    offer one, close me, am I closed, and group membership."""

    @property
    def id(self) -> int: ...

    @property
    def request(self) -> RequestInfo: ...

    @property
    def closed(self) -> bool:
        """The carrier is gone (or going): nothing more is sent."""
        ...

    def send_frame(self, topic: str, data: str) -> Awaitable[None] | None:
        """Send ``data`` on ``topic``; what to await, if anything."""
        ...

    def offer_frame(self, topic: str, data: str) -> None:
        """Queue ``data`` on ``topic`` without waiting."""
        ...

    def offer_publication(self, topic: str, data: str, tail: str | None) -> None:
        """Queue a group message on ``topic`` without waiting, with its place
        in the group's history if ``tail``."""
        ...

    def offer_gap(self, topic: str, group: str) -> None:
        """Tell the client ``group`` could not replay all it missed."""
        ...

    def presented(self, topic: str, group: str) -> Position | None:
        """Where the client says the channel stands in ``group`` (taken once)."""
        ...

    def close_channel(
        self, channel: Channel, reason: CloseReason, notice: str | None = None
    ) -> None:
        """Close ``channel`` from the server side (``err`` if ``notice``, ``uns``)."""
        ...

    def member_id(self, topic: str) -> str:
        """The id of the channel of ``topic`` in groups, across processes."""
        ...

    @property
    def takes_requests(self) -> bool:
        """The client takes part in the extensions: requests may be sent."""
        ...

    def send_request(
        self, topic: str, name: str, data: str
    ) -> tuple[str, Awaitable[None] | None]:
        """Send a request on ``topic``: its id, and what to await (room)."""
        ...

    def abandon(self, topic: str, request_id: str) -> None:
        """Stop awaiting the reply to ``request_id``."""
        ...

    def groups_of(self, channel: Channel) -> frozenset[str]: ...

    async def join(self, channel: Channel, group: str) -> None: ...

    async def leave(self, channel: Channel, group: str) -> None: ...

    def share_presence(self, channel: Channel, group: str) -> bool: ...

    def unshare_presence(self, channel: Channel, group: str) -> None: ...


class TaskFreeHandler(Protocol):
    """A task-free :class:`ChannelHandler` as its channel holds it."""

    def on_open(self) -> Awaitable[None] | None: ...
    def on_message(self, data: str) -> Awaitable[None] | None: ...
    def on_close(self, reason: CloseReason) -> Awaitable[None] | None: ...
    def on_request(self, request: Request) -> Awaitable[None] | None: ...


class Channel(ReceivingChannel):
    """Behaves like a socket of its own, as the reference's channels do.

    Messages arrive in order through ``async for data in channel`` or
    :meth:`receive`; :meth:`send` queues a message for the client;
    :meth:`close` ends the channel with an ``uns`` frame. Once closed,
    :attr:`close_reason` says why, and ``send``/``receive`` raise
    :class:`~websocket_multiplex.ChannelClosed`.
    """

    __slots__ = ("_calls", "callbacks", "connection", "identity")

    def __init__(
        self, connection: ChannelOwner, name: str, topic: str, held: Held | None = None
    ) -> None:
        super().__init__(name, topic, held)
        self.connection = connection
        self.identity: object = None
        """What the authorizer set on the :class:`Subscription`, if any."""
        self.callbacks: TaskFreeHandler | None = None
        """The task-free :class:`ChannelHandler` serving this channel, if
        any (set by its connection)."""
        self._calls: Calls | None = None  # made on the first request

    def __repr__(self) -> str:
        return f"{super().__repr__()[:-1]} on {self.connection!r}>"

    @property
    def request(self) -> RequestInfo:
        """Headers, cookies, query and address of the client's connection."""
        return self.connection.request

    # -- groups ----------------------------------------------------------------

    @property
    def groups(self) -> frozenset[str]:
        """The groups this channel is a member of (a join still in progress
        included); it leaves them on close."""
        return self.connection.groups_of(self)

    @property
    def member_id(self) -> str:
        """Names this channel in groups, across every server process."""
        return self.connection.member_id(self.topic)

    async def join(self, group: str) -> None:
        """Receive what is published to ``group``, from any process.

        Returns once the broker delivers the group here (with Redis: once
        this process is subscribed), so a publish made after it reaches this
        channel. Raises :class:`ChannelClosed` if the channel is closed, or
        closes before the join is done. Joining a group again does nothing;
        while the first join is still in progress, it waits for it (and
        tries again if that one failed).
        """
        if self._close_reason is not None:
            raise ChannelClosed(self.name, self._close_reason)
        await self.connection.join(self, group)

    async def leave(self, group: str) -> None:
        """Stop receiving ``group``; leaving a group one is not in does nothing."""
        await self.connection.leave(self, group)

    def share_presence(self, group: str) -> bool:
        """Tell this channel's client who joins and leaves ``group``.

        The client gets the members, then every change, as ``prs`` frames
        (docs/PROTOCOL-EXTENSIONS.md, section 6), until :meth:`unshare_presence`
        or the channel closes; it need not be a member. Returns ``False``,
        and sends nothing, to a client that speaks only the base protocol
        (the original browser client): it would not understand them. Raises
        :class:`~websocket_multiplex.LocalProtocolError` past
        ``Limits.max_presence_shares`` groups per connection.
        """
        if self._close_reason is not None:
            raise ChannelClosed(self.name, self._close_reason)
        return self.connection.share_presence(self, group)

    def unshare_presence(self, group: str) -> None:
        """Stop sharing ``group``'s presence (not shared: nothing)."""
        self.connection.unshare_presence(self, group)

    # -- sending ---------------------------------------------------------------

    async def send(self, data: str) -> None:
        """Send ``data`` to the client on this channel.

        Waits while the connection's output is above its high-water mark.
        """
        if not isinstance(data, str):
            raise TypeError(f"channels carry text: encode {type(data).__name__} first")
        if self._close_reason is not None:
            raise ChannelClosed(self.name, self._close_reason)
        connection = self.connection
        if connection.closed:
            raise ChannelClosed(self.name, CloseReason.CONNECTION_LOST)
        pending = connection.send_frame(self.topic, data)
        if pending is not None:
            await pending
            if connection.closed:
                raise ChannelClosed(self.name, CloseReason.CONNECTION_LOST)

    def send_nowait(self, data: str) -> None:
        """Queue ``data`` for the client without waiting, from plain code
        such as a task-free :class:`ChannelHandler`'s callbacks.

        Nothing holds the caller back, so a client that cannot keep up is
        dropped (code 4008) once its queue stays above
        ``Limits.write_limit`` for ``slow_client_timeout`` or reaches four
        times it, as for group publishing.
        """
        if not isinstance(data, str):
            raise TypeError(f"channels carry text: encode {type(data).__name__} first")
        if self._close_reason is not None:
            raise ChannelClosed(self.name, self._close_reason)
        if self.connection.closed:
            raise ChannelClosed(self.name, CloseReason.CONNECTION_LOST)
        self.connection.offer_frame(self.topic, data)

    def offer(self, data: str) -> None:
        """Send without waiting, for fan-out: a slow client is dropped
        instead; nothing happens on a closed channel."""
        if self._close_reason is None and not self.connection.closed:
            self.connection.offer_frame(self.topic, data)

    # -- for its groups (not the application) ------------------------------------

    def offer_publication(self, data: str, tail: str | None) -> None:
        """:meth:`offer` a group message, with its place in the group's
        history (``tail``, if it has one) for a client that can keep it."""
        if self._close_reason is None and not self.connection.closed:
            self.connection.offer_publication(self.topic, data, tail)

    def offer_gap(self, group: str) -> None:
        """Tell the client that ``group`` could not replay all it missed."""
        if self._close_reason is None and not self.connection.closed:
            self.connection.offer_gap(self.topic, group)

    def presented(self, group: str) -> Position | None:
        """Where the client says this channel stands in ``group``: set when a
        client of ours comes back after losing its session; a join takes it."""
        return self.connection.presented(self.topic, group)

    def close_nowait(self, message: str | None = None) -> None:
        """:meth:`close` for plain code: ``message`` goes with
        :meth:`send_nowait`."""
        if self._close_reason is not None:
            return
        if message is not None:
            self.send_nowait(message)
        self.connection.close_channel(self, CloseReason.SERVER_CLOSED)

    async def close(self, message: str | None = None) -> None:
        """Close the channel, sending ``message`` first if given.

        The client receives ``msg`` (optional) then ``uns``, like the
        reference's ``end(data)``. Closing a closed channel does nothing.
        """
        if self._close_reason is not None:
            return
        if message is not None:
            await self.send(message)
        self.connection.close_channel(self, CloseReason.SERVER_CLOSED)

    # -- requests (docs/PROTOCOL-EXTENSIONS.md, section 5) ----------------------

    def _get_calls(self) -> Calls:
        calls = self._calls
        if calls is None:
            calls = self._calls = Calls(self.name, self.held)
            if self._close_reason is not None:
                calls.close(self._close_reason)
        return calls

    def requests(self) -> Calls:
        """The client's requests on this channel, in order:
        ``async for request in channel.requests(): await request.reply(...)``.

        Requests wait (counted in the inbox bounds, at most
        ``Limits.max_outstanding_requests`` unanswered) until they are read;
        the iteration ends when the channel closes. Read them from one task;
        a handler that also reads messages reads these from a second task.
        Each :class:`Request` is answered once, with ``reply`` or ``fail``.
        """
        return self._get_calls()

    def refuse_requests(self) -> None:
        """Answer every request on this channel ``rer 501`` (nothing answers
        here), those waiting included, so that the client need not wait for
        its timeout. A :class:`ChannelHandler` without ``on_request`` does
        this for itself."""
        self._get_calls().refuse()

    async def ask(self, data: str, *, timeout: float | None = DEFAULT_TIMEOUT) -> str:
        """Send the client a request and return its reply (``data`` of its
        ``request.reply()``): the client's ``channel.request()``, the other
        way (``request`` is taken here: :attr:`request` is the HTTP request).

        Raises :class:`~websocket_multiplex.RequestTimeout` after
        ``timeout`` seconds (``None``: wait as long as the channel lasts),
        :class:`~websocket_multiplex.RequestFailed` if the client answered
        with an error or ``Limits.max_outstanding_requests`` are in flight
        on this channel already, :class:`ChannelClosed` if the channel
        closes first, and
        :class:`~websocket_multiplex.RequestsNotSupported` (sending
        nothing) if the client speaks only the base protocol (the
        original browser client, a client with ``resume=False``).
        """
        if not isinstance(data, str):
            raise TypeError(f"channels carry text: encode {type(data).__name__} first")
        if self._close_reason is not None:
            raise ChannelClosed(self.name, self._close_reason)
        connection = self.connection
        if connection.closed:
            raise ChannelClosed(self.name, CloseReason.CONNECTION_LOST)
        if not connection.takes_requests:
            raise RequestsNotSupported(
                f"channel {self.name!r}: its client does not take requests (the "
                "original browser client, or one connected with resume=False); "
                "send it a message instead"
            )
        calls = self._get_calls()
        request_id, pending = connection.send_request(self.topic, self.name, data)
        future = calls.expect(request_id)
        try:
            if pending is not None:
                await pending
            return await calls.wait(request_id, future, timeout)
        finally:
            connection.abandon(self.topic, request_id)

    # -- for its connection ------------------------------------------------------

    def deliver_request(self, request: Request) -> None:
        """A request from the client, counted in ``held`` already."""
        self._get_calls().put(request)

    def take_requests(self) -> list[Request]:
        """The requests waiting to be read (for a task-free handler that
        starts after they came)."""
        return [] if self._calls is None else self._calls.take_all()

    def replied(self, request_id: str, payload: str, notice: str | None) -> None:
        """The client answered our request ``request_id``."""
        if self._calls is not None:
            self._calls.replied(request_id, payload, notice)

    def mark_closed(self, reason: CloseReason) -> None:
        super().mark_closed(reason)
        if self._calls is not None:
            self._calls.close(reason)

    def drop_unread(self) -> None:
        if self._calls is not None:
            self._calls.take_all()
        super().drop_unread()
