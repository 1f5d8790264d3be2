"""The one seam between a carrier and what it carries.

Every carrier (a raw WebSocket, SockJS over a WebSocket or over HTTP,
under aiohttp or ASGI) meets its application the same way:

* the application sends through a :class:`Transport` the carrier gives it;
* the carrier hands what it reads to an :class:`Inlet` over the
  application's :class:`Recipient`, and ends it when the carrier ends.

A :class:`~websocket_multiplex.Connection` is a recipient (from
:meth:`MultiplexServer.accept <websocket_multiplex.MultiplexServer.accept>`),
and so is a plain SockJS connection's
(:class:`~websocket_multiplex.asyncio.sockjs_connection.SessionInbox`).
The inlet is where the pace of incoming frames is kept
(``Limits.frame_rate``), so no carrier can forget it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Protocol, runtime_checkable

from ..limits import Limits
from ..pacing import FRAMES_PER_TURN, FramePace
from ..request import RequestInfo

__all__ = ["CarriesSessions", "Inlet", "Recipient", "Transport", "WritesNow"]


@runtime_checkable
class Transport(Protocol):
    """One message-oriented text connection to a client, to send on."""

    @property
    def request(self) -> RequestInfo:
        """The request that opened the connection, captured at connect time."""
        ...

    async def send(self, text: str) -> None:
        """Send one carrier message; raise ``ConnectionError`` once closed."""
        ...

    async def send_many(self, texts: list[str]) -> None:
        """Send several messages, in order, in as few writes as the carrier
        allows (SockJS packs them into one ``a[...]`` frame); raise
        ``ConnectionError`` once closed. Waits while the carrier is full."""
        ...

    async def close(self, code: int, reason: str) -> None:
        """Close the carrier; its inlet then ends the recipient."""
        ...


@runtime_checkable
class WritesNow(Protocol):
    """A :class:`Transport` that can tell when a message would go out at
    once: its sender then writes it in its own turn, with no task switch
    (the round trip of a ping-pong). Optional; without it, every message
    goes through the connection's writer task."""

    def can_write_now(self) -> bool:
        """Whether a message sent now would not wait (nothing buffered)."""
        ...


@runtime_checkable
class CarriesSessions(Protocol):
    """A :class:`Transport` that serves a resumable session better when
    told that one rides on it. Optional."""

    def carries_session(self, mark: Callable[[int], str]) -> None:
        """A resumable session rides on this carrier from now on: the
        carrier's end costs a resume, a message lost without one breaks
        the session's promise (exactly once, in order). Where the carrier
        could lose messages without its client noticing, it should end
        instead, or, where it cannot know, put ``mark(n)`` before the
        messages that follow a possible loss (``n``: the messages it
        carried before), so that the client can tell."""
        ...


class Recipient(Protocol):
    """What a carrier delivers to: one application connection."""

    def receive(self, text: str) -> None:
        """Handle one message from the client (never blocks)."""
        ...

    def backlog(self) -> Awaitable[None] | None:
        """An awaitable while the recipient wants no more messages for now
        (the carrier stops reading until it is done); else ``None``."""
        ...

    async def connection_lost(self) -> None:
        """The carrier is gone; safe to call more than once."""
        ...


class Inlet:
    """How a carrier hands what it reads to its recipient, at a bounded pace.

    Call :meth:`feed` with the messages of each carrier message; when it
    returns an awaitable, await it before reading on. Call :meth:`end`
    once the carrier is gone.
    """

    __slots__ = (
        "_backlog",
        "_granted",
        "_left",
        "_loop",
        "_pace",
        "_receive",
        "recipient",
    )

    def __init__(self, recipient: Recipient, limits: Limits) -> None:
        self.recipient = recipient
        self._receive = recipient.receive
        self._backlog = recipient.backlog
        self._pace = FramePace(limits)
        # Frames that may go before the pace is asked again, and how many
        # it granted: counting down is all a frame costs here.
        self._granted = self._left = self._pace.budget()
        self._loop = asyncio.get_running_loop()

    def feed(self, texts: Sequence[str]) -> Awaitable[None] | None:
        """Deliver ``texts``; returns what to await before reading on, if
        anything (a pause for the frame rate, a turn for other clients, the
        recipient's backlog)."""
        if len(texts) > FRAMES_PER_TURN:  # packed: in slices, between turns
            return self._deliver_sliced(texts)
        receive = self._receive
        for text in texts:
            receive(text)
        self._left -= len(texts)
        if self._left <= 0:
            return self._pause()
        return self._backlog()

    def feed_one(self, text: str) -> Awaitable[None] | None:
        """:meth:`feed` for a carrier whose messages are one frame each."""
        self._receive(text)
        self._left -= 1
        if self._left <= 0:
            return self._pause()
        return self._backlog()

    def ignored(self) -> Awaitable[None] | None:
        """A carrier message with nothing to deliver (a binary one): it
        counts toward the pace all the same."""
        self._left -= 1
        if self._left <= 0:
            return self._pause()
        return None

    def charge(self, frames: int) -> None:
        """Count ``frames`` toward the pace without delivering any (a
        message refused for holding too many costs what it would have)."""
        self._left -= frames

    def owed(self) -> Awaitable[None] | None:
        """What to await until the pace allows more; ``None`` if it does."""
        if self._left <= 0:
            return self._wait_for_pace()
        return None

    async def deliver(self, texts: Sequence[str]) -> None:
        """:meth:`feed`, and wait for what it returns."""
        pause = self.feed(texts)
        if pause is not None:
            await pause

    async def end(self) -> None:
        """The carrier is gone: end the recipient."""
        await self.recipient.connection_lost()

    async def _pause(self) -> None:
        await self._wait_for_pace()
        backlog = self._backlog()
        if backlog is not None:
            await backlog

    async def _wait_for_pace(self) -> None:
        pace = self._pace
        await asyncio.sleep(pace.pause(self._granted - self._left, self._loop.time()))
        self._granted = self._left = pace.budget()

    async def _deliver_sliced(self, texts: Sequence[str]) -> None:
        receive = self._receive
        for start in range(0, len(texts), FRAMES_PER_TURN):
            piece = texts[start : start + FRAMES_PER_TURN]
            for text in piece:
                receive(text)
            self._left -= len(piece)
            if self._left <= 0:
                await self._wait_for_pace()
            backlog = self._backlog()  # between slices too: bounds the inbox
            if backlog is not None:
                await backlog
