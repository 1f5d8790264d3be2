"""The server side of one multiplexed connection, without any I/O.

:class:`ServerProtocol` is a state machine: which topics are open on this
connection and what each incoming frame means for them (PROTOCOL.md,
"Semantics"). Feed it carrier messages with :meth:`~ServerProtocol.receive`
and get back at most one event per message; ask it for the text of the
frames you want to send. It never touches a socket, a task or a clock, so
the asyncio layer, the tests and a fuzzer drive it the same way.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from .events import (
    ChannelClosedEvent,
    ChannelOpened,
    CloseReason,
    Event,
    MessageReceived,
)
from .exceptions import InvalidFrame, LocalProtocolError
from .wire import MSG, SUB, UNS, format_frame, parse_frame

__all__ = ["ProtocolCounters", "ServerProtocol"]


@dataclass(slots=True)
class ProtocolCounters:
    """What one connection's core has seen, for logs and metrics."""

    frames_received: int = 0
    frames_sent: int = 0
    invalid_frames: int = 0
    ignored_frames: int = 0


class ServerProtocol:
    """Tracks the open channels of one connection, server side.

    ``is_registered(topic)`` tells whether a service answers to that topic;
    the core opens a channel only for such topics, once per topic, as the
    reference server does. Everything the protocol says to ignore (invalid
    frames, unknown types, topics that are not open) returns ``None`` and
    is counted in :attr:`counters`.
    """

    def __init__(self, is_registered: Callable[[str], bool]) -> None:
        self._is_registered = is_registered
        self._open: set[str] = set()
        self.counters = ProtocolCounters()

    @property
    def open_topics(self) -> frozenset[str]:
        """The topics with an open channel on this connection."""
        return frozenset(self._open)

    def is_open(self, topic: str) -> bool:
        return topic in self._open

    def receive(self, text: str) -> Event | None:
        """Interpret one carrier message from the client."""
        self.counters.frames_received += 1
        try:
            frame = parse_frame(text)
        except InvalidFrame:
            self.counters.invalid_frames += 1
            return None
        topic = frame.topic
        if topic in self._open:
            if frame.type == MSG:
                return MessageReceived(topic, frame.payload)
            if frame.type == UNS:
                self._open.discard(topic)
                return ChannelClosedEvent(topic, CloseReason.CLIENT_CLOSED)
        elif frame.type == SUB and self._is_registered(topic):
            self._open.add(topic)
            return ChannelOpened(topic)
        self.counters.ignored_frames += 1
        return None

    def send(self, topic: str, payload: str) -> str:
        """Return the frame that carries ``payload`` on an open channel."""
        self._require_open(topic)
        self.counters.frames_sent += 1
        return format_frame(MSG, topic, payload)

    def close(self, topic: str) -> str:
        """Close an open channel; return the ``uns`` frame to send."""
        self._require_open(topic)
        self._open.discard(topic)
        self.counters.frames_sent += 1
        return format_frame(UNS, topic)

    def connection_lost(
        self, reason: CloseReason = CloseReason.CONNECTION_LOST
    ) -> list[ChannelClosedEvent]:
        """Close every channel because the carrier is gone; nothing to send."""
        closed = [ChannelClosedEvent(topic, reason) for topic in self._open]
        self._open.clear()
        return closed

    def _require_open(self, topic: str) -> None:
        if topic not in self._open:
            raise LocalProtocolError(
                f"topic {topic!r} is not open on this connection; "
                "send only on channels the client subscribed to"
            )
