"""A virtual channel: one service talking to one client over a connection."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..events import CloseReason
from ..exceptions import ChannelClosed
from ..request import RequestInfo
from .inbox import ReceivingChannel

if TYPE_CHECKING:
    from .connection import Connection
    from .server import ChannelHandler

__all__ = ["Channel"]


class Channel(ReceivingChannel):
    """Behaves like a socket of its own, as the reference's channels do.

    Messages arrive in order through ``async for data in channel`` or
    :meth:`receive`; :meth:`send` queues a message for the client;
    :meth:`close` ends the channel with an ``uns`` frame. Once closed,
    :attr:`close_reason` says why, and ``send``/``receive`` raise
    :class:`~websocket_multiplex.ChannelClosed`.
    """

    __slots__ = ("_callbacks", "_groups", "connection", "identity")

    def __init__(self, connection: Connection, name: str, topic: str) -> None:
        super().__init__(name, topic, connection._unread)
        self.connection = connection
        self.identity: object = None
        """What the authorizer set on the :class:`Subscription`, if any."""
        self._groups: set[str] | None = None  # made on the first join
        self._callbacks: ChannelHandler | None = None  # a task-free service

    @property
    def groups(self) -> frozenset[str]:
        """The groups this channel is a member of (a join still in progress
        included); it leaves them on close."""
        return frozenset(self._groups or ())

    @property
    def member_id(self) -> str:
        """Names this channel in groups, across every server process."""
        return f"{self.connection.server.process_id}/{self.connection.id}/{self.topic}"

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
        await self.connection.server._join(self, group)

    async def leave(self, group: str) -> None:
        """Stop receiving ``group``; leaving a group one is not in does nothing."""
        await self.connection.server._leave(self, group)

    def _mark_closed(self, reason: CloseReason) -> None:
        super()._mark_closed(reason)
        if self._groups:
            self.connection.server._forget(self)
        callbacks, self._callbacks = self._callbacks, None
        if callbacks is not None:
            self.connection._call(self, callbacks.on_close, reason)

    def __repr__(self) -> str:
        return f"{super().__repr__()[:-1]} on {self.connection!r}>"

    @property
    def request(self) -> RequestInfo:
        """Headers, cookies, query and address of the client's connection."""
        return self.connection.request

    async def send(self, data: str) -> None:
        """Send ``data`` to the client on this channel.

        Waits while the connection's output is above its high-water mark.
        """
        if not isinstance(data, str):
            raise TypeError(f"channels carry text: encode {type(data).__name__} first")
        if self._close_reason is not None:
            raise ChannelClosed(self.name, self._close_reason)
        connection = self.connection
        if connection._lost:
            raise ChannelClosed(self.name, CloseReason.CONNECTION_LOST)
        # Queued here rather than through a Connection coroutine: this runs
        # for every message sent, and an await costs a coroutine.
        connection._enqueue(connection._protocol.send(self.topic, data))
        if connection._outbox_size > connection._limits.write_limit:
            await connection._wait_writable()
            if connection._lost:
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
        if self.connection._lost:
            raise ChannelClosed(self.name, CloseReason.CONNECTION_LOST)
        self.connection._offer_frame(self.connection._protocol.send(self.topic, data))

    def close_nowait(self, message: str | None = None) -> None:
        """:meth:`close` for plain code: ``message`` goes with
        :meth:`send_nowait`."""
        if self._close_reason is not None:
            return
        if message is not None:
            self.send_nowait(message)
        self.connection._close_channel(self, CloseReason.SERVER_CLOSED)

    def _offer(self, data: str) -> None:
        """Send without waiting, for fan-out: a slow client is dropped instead."""
        if self._close_reason is None and not self.connection.closed:
            self.connection._offer_frame(
                self.connection._protocol.send(self.topic, data)
            )

    async def close(self, message: str | None = None) -> None:
        """Close the channel, sending ``message`` first if given.

        The client receives ``msg`` (optional) then ``uns``, like the
        reference's ``end(data)``. Closing a closed channel does nothing.
        """
        if self._close_reason is not None:
            return
        if message is not None:
            await self.send(message)
        self.connection._close_channel(self, CloseReason.SERVER_CLOSED)
