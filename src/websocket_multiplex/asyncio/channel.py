"""A virtual channel: one service talking to one client over a connection."""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

from ..events import CloseReason
from ..exceptions import ChannelClosed, LocalProtocolError
from ..request import RequestInfo

if TYPE_CHECKING:
    from .connection import Connection

__all__ = ["Channel"]


class Channel:
    """Behaves like a socket of its own, as the reference's channels do.

    Messages arrive in order through ``async for data in channel`` or
    :meth:`receive`; :meth:`send` queues a message for the client;
    :meth:`close` ends the channel with an ``uns`` frame. Once closed,
    :attr:`close_reason` says why, and ``send``/``receive`` raise
    :class:`~websocket_multiplex.ChannelClosed`.
    """

    def __init__(self, connection: Connection, name: str, topic: str) -> None:
        self.name = name
        """The service name the client subscribed to, unescaped."""
        self.topic = topic
        """The name as it travels on the wire (JavaScript ``escape()``)."""
        self.connection = connection
        self._inbox: deque[str] = deque()
        self._waiter: asyncio.Future[None] | None = None
        self._close_reason: CloseReason | None = None
        self._closed = asyncio.Event()

    def __repr__(self) -> str:
        state = self._close_reason.name if self._close_reason else "OPEN"
        return f"<Channel {self.name!r} {state} on {self.connection!r}>"

    @property
    def request(self) -> RequestInfo:
        """Headers, cookies, query and address of the client's connection."""
        return self.connection.request

    @property
    def closed(self) -> bool:
        return self._close_reason is not None

    @property
    def close_reason(self) -> CloseReason | None:
        """Why the channel closed, or ``None`` while it is open."""
        return self._close_reason

    async def send(self, data: str) -> None:
        """Send ``data`` to the client on this channel.

        Waits while the connection's output is above its high-water mark.
        """
        if not isinstance(data, str):
            raise TypeError(f"channels carry text: encode {type(data).__name__} first")
        if self._close_reason is not None:
            raise ChannelClosed(self.name, self._close_reason)
        await self.connection._send_frame(
            self.connection._protocol.send(self.topic, data)
        )
        if self.connection.closed:
            raise ChannelClosed(self.name, CloseReason.CONNECTION_LOST)

    async def receive(self, timeout: float | None = None) -> str:
        """Return the next message; raise ``ChannelClosed`` when none will come.

        Messages that arrived before the close are still returned first.
        With ``timeout``, raise ``TimeoutError`` after that many seconds.
        Only one task may wait at a time; a second raises
        :class:`~websocket_multiplex.LocalProtocolError`.
        """
        while not self._inbox:
            if self._close_reason is not None:
                raise ChannelClosed(self.name, self._close_reason)
            if self._waiter is not None:
                raise LocalProtocolError(
                    f"channel {self.name!r} is already being received from: "
                    "read it from one task only and share the messages yourself"
                )
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                async with asyncio.timeout(timeout):
                    await self._waiter
            finally:
                self._waiter = None
        return self._inbox.popleft()

    def __aiter__(self) -> AsyncIterator[str]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[str]:
        while True:
            try:
                yield await self.receive()
            except ChannelClosed:
                return

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

    async def wait_closed(self) -> CloseReason:
        """Wait until the channel is closed, by either side; return why."""
        await self._closed.wait()
        assert self._close_reason is not None
        return self._close_reason

    def _deliver(self, payload: str) -> None:
        self._inbox.append(payload)
        self._wake()

    def _mark_closed(self, reason: CloseReason) -> None:
        self._close_reason = reason
        self._closed.set()
        self._wake()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)
