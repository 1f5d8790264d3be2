"""The receiving half every channel shares, server side and client side."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Self

from ..events import CloseReason
from ..exceptions import ChannelClosed, ConcurrentReceive
from ..flow import Held, Ledger

__all__ = ["ReceivingChannel", "wake_all"]


def wake_all(waiters: Iterable[asyncio.Future[None]]) -> None:
    """Resolve every waiter still pending (cancelled ones are skipped)."""
    for waiter in waiters:
        if not waiter.done():
            waiter.set_result(None)


class ReceivingChannel:
    """Ordered delivery of one channel's messages, and how it closed.

    Messages that arrived before the close are still returned first (unless
    the channel was shed for falling behind: those are dropped); then
    ``receive`` raises :class:`~websocket_multiplex.ChannelClosed` and
    ``async for`` ends.
    """

    # A server holds thousands of connections with several channels each:
    # slots, a list for the inbox (an empty deque takes 760 bytes, a list
    # 56; inboxes stay short) and futures made only when someone waits.
    # What the inbox holds is counted in its share of the connection's
    # ledger (flow.Held), which decides what to shed.
    __slots__ = (
        "_close_reason",
        "_closed_waiters",
        "_inbox",
        "_waiter",
        "held",
        "name",
        "topic",
    )

    def __init__(self, name: str, topic: str, held: Held | None = None) -> None:
        self.name = name
        """The service name, unescaped."""
        self.topic = topic
        """The name as it travels on the wire (JavaScript ``escape()``)."""
        self._inbox: list[str] = []
        self.held = Held(Ledger()) if held is None else held
        """This inbox's share of its connection's ledger."""
        self._waiter: asyncio.Future[None] | None = None
        self._close_reason: CloseReason | None = None
        self._closed_waiters: list[asyncio.Future[None]] | None = None

    def __repr__(self) -> str:
        state = self._close_reason.name if self._close_reason else "OPEN"
        return f"<{type(self).__name__} {self.name!r} {state}>"

    @property
    def closed(self) -> bool:
        return self._close_reason is not None

    @property
    def _inbox_size(self) -> int:
        """Characters unread in this channel's inbox."""
        return self.held.size

    @property
    def close_reason(self) -> CloseReason | None:
        """Why the channel closed, or ``None`` while it is open."""
        return self._close_reason

    async def receive(self, timeout: float | None = None) -> str:
        """Return the next message; raise ``ChannelClosed`` when none will come.

        With ``timeout``, raise ``TimeoutError`` after that many seconds.
        Only one task may wait at a time; a second raises
        :class:`~websocket_multiplex.ConcurrentReceive`.
        """
        inbox = self._inbox
        while not inbox:
            if self._close_reason is not None:
                raise ChannelClosed(self.name, self._close_reason)
            if self._waiter is not None:
                raise ConcurrentReceive(self.name)
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                if timeout is None:
                    await self._waiter
                else:
                    await self._wait(timeout)
            finally:
                self._waiter = None
        return self.take()

    async def _wait(self, timeout: float) -> None:
        assert self._waiter is not None
        try:
            async with asyncio.timeout(timeout):
                await self._waiter
        except TimeoutError:
            raise TimeoutError(
                f"no message on channel {self.name!r} within {timeout:g} s"
            ) from None

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> str:
        inbox = self._inbox
        if inbox:  # the common case under load: no wait
            payload = inbox.pop(0)
            self.held.took(len(payload))
            return payload
        try:
            return await self.receive()
        except ChannelClosed:
            raise StopAsyncIteration from None

    async def wait_closed(self) -> CloseReason:
        """Wait until the channel is closed, by either side; return why."""
        if self._close_reason is None:
            waiter = asyncio.get_running_loop().create_future()
            if self._closed_waiters is None:
                self._closed_waiters = []
            self._closed_waiters.append(waiter)
            try:
                await waiter
            finally:
                if not waiter.done():  # cancelled: forget it
                    self._closed_waiters.remove(waiter)
        assert self._close_reason is not None
        return self._close_reason

    # -- for the channel's owner (its connection, or its client) -------------

    def deliver(self, payload: str) -> None:
        """Add a message, counted in :attr:`held`, and wake the reader."""
        self.held.arrived(len(payload))
        self.append(payload)

    def append(self, payload: str) -> None:
        """Add a message its ledger counted already (it admitted it), and
        wake the reader."""
        self._inbox.append(payload)
        waiter = self._waiter  # _wake, inlined: once per message received
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    @property
    def unread(self) -> bool:
        """Whether a message waits in the inbox."""
        return bool(self._inbox)

    def take(self) -> str:
        """The next message of a non-empty inbox, without waiting."""
        payload = self._inbox.pop(0)
        self.held.took(len(payload))
        return payload

    def drop_unread(self) -> None:
        """Forget every unread message (a shed channel's): free them now."""
        self.held.drop()
        self._inbox.clear()

    def mark_closed(self, reason: CloseReason) -> None:
        """The channel is closed: wake whoever waits on it."""
        self._close_reason = reason
        waiters, self._closed_waiters = self._closed_waiters, None
        wake_all(waiters or ())
        self._wake()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)
