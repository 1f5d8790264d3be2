"""Both sides of one multiplexed connection, without any I/O.

:class:`ServerProtocol` and :class:`ClientProtocol` are state machines:
which topics are open on this connection and what each incoming frame
means for them (docs/PROTOCOL.md, "Semantics"). Feed one carrier messages with
``receive`` and get back at most one event per message; ask it for the
text of the frames you want to send. They never touch a socket, a task or
a clock, so the asyncio layer, the tests and a fuzzer drive them the same
way.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from .codes import TOO_LARGE, TOO_MANY_CHANNELS
from .events import (
    ChannelClosedEvent,
    ChannelOpened,
    ChannelRefused,
    CloseReason,
    Event,
    LimitExceeded,
    MessagePublished,
    MessageReceived,
    PositionPresented,
    StreamGap,
)
from .exceptions import InvalidFrame, LocalProtocolError
from .limits import DEFAULT_LIMITS, Limits
from .pacing import TokenBucket
from .reqrep import RequestBook
from .streams import (
    POS,
    Position,
    gap_frame,
    parse_gap,
    parse_position,
    parse_publication,
    position_frame,
    publication_frame,
)
from .wire import (
    ERR,
    MSG,
    REQUEST_FRAMES,
    SUB,
    UNS,
    Frame,
    escape,
    format_frame,
    instance_topic,
    parse_frame,
)

__all__ = ["ClientProtocol", "ProtocolCounters", "ServerProtocol"]


@dataclass(slots=True)
class ProtocolCounters:
    """What one connection's core has seen, for logs and metrics."""

    frames_received: int = 0
    frames_sent: int = 0
    invalid_frames: int = 0
    ignored_frames: int = 0
    refused_subscriptions: int = 0
    limits_hit: dict[str, int] = field(default_factory=dict)

    def hit(self, limit: str) -> None:
        self.limits_hit[limit] = self.limits_hit.get(limit, 0) + 1


def _parse_counted(text: str, counters: ProtocolCounters) -> Frame | None:
    """Parse a received frame, counting it, and invalid ones apart."""
    counters.frames_received += 1
    try:
        return parse_frame(text)
    except InvalidFrame:
        counters.invalid_frames += 1
        return None


class ServerProtocol:
    """Tracks the open channels of one connection, server side.

    ``is_registered(topic)`` tells whether a service answers to that topic;
    the core opens a channel only for such topics, once per topic, as the
    reference server does. A ``sub`` to any other topic gives
    :class:`ChannelRefused`, to be answered with :meth:`refuse`.
    Everything the protocol says to ignore (invalid frames, unknown types,
    topics that are not open) returns ``None`` and is counted in
    :attr:`counters`.
    """

    def __init__(
        self, is_registered: Callable[[str], bool], limits: Limits = DEFAULT_LIMITS
    ) -> None:
        self._is_registered = is_registered
        self._limits = limits
        self._open: set[str] = set()
        # subscribe_rate per second, subscribe_burst deep.
        self._subscribes = TokenBucket(limits.subscribe_rate, limits.subscribe_burst)
        self.counters = ProtocolCounters()
        self.requests: RequestBook | None = None
        """Requests both ways, once :meth:`take_requests` is called."""

    @property
    def extended(self) -> bool:
        """The client negotiated our extensions (its session is on,
        :meth:`take_requests` was called): it may present group positions,
        make requests, and group messages go as ``pub``."""
        return self.requests is not None

    def take_requests(self) -> RequestBook:
        """The client takes part in the extensions (it opened a resumable
        session): ``req``, ``rep`` and ``rer`` are no longer ignored."""
        if self.requests is None:
            self.requests = RequestBook(self._limits.max_outstanding_requests)
        return self.requests

    @property
    def open_topics(self) -> frozenset[str]:
        """The topics with an open channel on this connection."""
        return frozenset(self._open)

    def is_open(self, topic: str) -> bool:
        return topic in self._open

    def receive(self, text: str, now: float | None = None) -> Event | None:
        """Interpret one carrier message from the client.

        ``now`` (seconds, any monotonic origin) paces subscriptions; without
        it the subscribe rate is not enforced.
        """
        kind, _, rest = text.partition(",")
        if kind == MSG and len(text) <= self._limits.max_frame_size:
            # The hot path, equivalent to the general one below: a message
            # on an open channel (parse_frame's payload is "" if missing).
            topic, _, payload = rest.partition(",")
            if topic in self._open:
                self.counters.frames_received += 1
                return MessageReceived(topic, payload)
        elif kind == POS and self.extended and len(text) <= self._limits.max_frame_size:
            return self._position(text)
        frame = _parse_counted(text, self.counters)
        if frame is None:
            return None
        topic = frame.topic
        if len(text) > self._limits.max_frame_size:
            return self._oversized(frame.type, topic, frame.payload)
        if topic in self._open:
            if frame.type == MSG:
                return MessageReceived(topic, frame.payload)
            if frame.type == UNS:
                self._close(topic)
                return ChannelClosedEvent(topic, CloseReason.CLIENT_CLOSED)
            if frame.type in REQUEST_FRAMES and self.requests is not None:
                event = self.requests.receive(frame)
                if event is not None:
                    return event
        elif frame.type == SUB:
            return self._subscribe(topic, now)
        self.counters.ignored_frames += 1
        return None

    def _subscribe(self, topic: str, now: float | None) -> Event | None:
        limits = self._limits
        if now is not None and not self._subscribes.take(now):
            self.counters.hit("subscribe_rate")
            return LimitExceeded("subscribe_rate")
        if len(topic) > limits.max_topic_length:
            self.counters.hit("max_topic_length")
            return None
        if not self._is_registered(topic):
            self.counters.refused_subscriptions += 1
            return ChannelRefused(topic)
        if len(self._open) >= limits.max_channels:
            self.counters.hit("max_channels")
            self.counters.refused_subscriptions += 1
            return ChannelRefused(topic, TOO_MANY_CHANNELS)
        self._open.add(topic)
        return ChannelOpened(topic)

    def _position(self, text: str) -> Event | None:
        """A ``pos`` frame: the topic need not be open yet (it comes before
        its ``sub``)."""
        self.counters.frames_received += 1
        presented = parse_position(text)
        if presented is None:
            self.counters.invalid_frames += 1
            return None
        topic, group, position = presented
        return PositionPresented(topic, group, position.epoch, position.offset)

    def _oversized(self, kind: str, topic: str, payload: str) -> Event | None:
        self.counters.hit("max_frame_size")
        if topic in self._open:
            if kind == MSG:
                return LimitExceeded("max_frame_size", topic, TOO_LARGE)
            if self.requests is not None:
                return self.requests.too_large(Frame(kind, topic, payload))
        return None

    def send(self, topic: str, payload: str) -> str:
        """Return the frame that carries ``payload`` on an open channel."""
        if topic not in self._open:
            self._require_open(topic)  # raises
        self.counters.frames_sent += 1
        return f"msg,{topic},{payload}"

    def publish(self, topic: str, tail: str) -> str:
        """The ``pub`` frame of a group message on an open channel
        (``tail``: :func:`~websocket_multiplex.streams.publication_tail`)."""
        if topic not in self._open:
            self._require_open(topic)  # raises
        self.counters.frames_sent += 1
        return publication_frame(topic, tail)

    def gap(self, topic: str, group: str) -> str:
        """The ``gap`` frame: ``group``'s history could not give the channel
        ``topic`` everything it missed."""
        self._require_open(topic)
        self.counters.frames_sent += 1
        return gap_frame(topic, group)

    def close(self, topic: str) -> str:
        """Close an open channel; return the ``uns`` frame to send."""
        self._require_open(topic)
        self._close(topic)
        self.counters.frames_sent += 1
        return format_frame(UNS, topic)

    def _close(self, topic: str) -> None:
        self._open.discard(topic)
        if self.requests is not None:
            self.requests.closed(topic)

    def fail(self, topic: str, notice: str) -> list[str]:
        """Close an open channel with a refusal notice such as ``"500 ..."``.

        Returns ``err`` then ``uns`` (docs/PROTOCOL-EXTENSIONS.md): a peer
        that knows only the base protocol ignores the ``err``.
        """
        return [self._notice(topic, notice), self.close(topic)]

    def refuse(self, topic: str, notice: str) -> list[str]:
        """Answer a ``sub`` that opened nothing, e.g. ``"404 no such service"``."""
        if topic in self._open:
            raise LocalProtocolError(f"topic {topic!r} is open: use fail() instead")
        self.counters.frames_sent += 1
        return [self._notice(topic, notice), format_frame(UNS, topic)]

    def _notice(self, topic: str, notice: str) -> str:
        self.counters.frames_sent += 1
        return format_frame(ERR, topic, notice)

    def connection_lost(
        self, reason: CloseReason = CloseReason.CONNECTION_LOST
    ) -> list[ChannelClosedEvent]:
        """Close every channel because the carrier is gone; nothing to send."""
        closed = [ChannelClosedEvent(topic, reason) for topic in self._open]
        self._open.clear()
        if self.requests is not None:
            self.requests.clear()
        return closed

    def _require_open(self, topic: str) -> None:
        if topic not in self._open:
            raise LocalProtocolError(
                f"topic {topic!r} is not open on this connection; "
                "send only on channels the client subscribed to"
            )


class ClientProtocol:
    """Tracks the channels one client opened on a connection.

    Topics are chosen here: the first channel of a name gets ``escape(name)``
    and further ones an instance topic (docs/PROTOCOL-EXTENSIONS.md). Open
    channels survive :meth:`connection_lost` when the caller means to
    reconnect; :meth:`resubscribe` then gives the frames that reopen them.
    """

    def __init__(self, max_outstanding_requests: int = 64) -> None:
        self._open: set[str] = set()
        self._notices: dict[str, str] = {}
        self._instances = 0
        self._max_outstanding = max_outstanding_requests
        self._last_request_id = 0  # ids go on across sessions
        self.counters = ProtocolCounters()
        self.requests: RequestBook | None = None
        """Requests both ways while :meth:`take_requests` holds."""

    @property
    def extended(self) -> bool:
        """The server takes part in our extensions (:meth:`take_requests`):
        requests go both ways and group messages come as ``pub``."""
        return self.requests is not None

    def take_requests(self, on: bool = True) -> RequestBook | None:
        """The server takes part in the extensions (``on``), or no longer
        does; either way nothing asked or owed before is kept."""
        last_id = 0 if self.requests is None else self.requests.last_id
        self._last_request_id = max(self._last_request_id, last_id)
        self.requests = (
            RequestBook(self._max_outstanding, self._last_request_id) if on else None
        )
        return self.requests

    @property
    def open_topics(self) -> frozenset[str]:
        return frozenset(self._open)

    def open(self, name: str) -> tuple[str, str]:
        """Open a channel to the service ``name``: its topic and ``sub`` frame."""
        if not name:
            raise LocalProtocolError("a channel needs a service name: got ''")
        topic = escape(name)
        while topic in self._open:
            self._instances += 1
            topic = instance_topic(escape(name), str(self._instances))
        self._open.add(topic)
        self.counters.frames_sent += 1
        return topic, format_frame(SUB, topic)

    def keep(self, topic: str) -> None:
        """Count ``topic`` as open again after the server closed it, so that
        :meth:`resubscribe` reopens it (the server said it was restarting)."""
        self._open.add(topic)

    def resubscribe(self) -> list[str]:
        """The ``sub`` frames that reopen every open channel on a new carrier."""
        self.counters.frames_sent += len(self._open)
        return [format_frame(SUB, topic) for topic in sorted(self._open)]

    def send(self, topic: str, payload: str) -> str:
        self._require_open(topic)
        self.counters.frames_sent += 1
        return format_frame(MSG, topic, payload)

    def close(self, topic: str) -> str:
        """Close a channel from this side; return the ``uns`` frame."""
        self._require_open(topic)
        self._forget(topic)
        self.counters.frames_sent += 1
        return format_frame(UNS, topic)

    def _forget(self, topic: str) -> str:
        """``topic`` is closed: its notice (returned), its requests."""
        self._open.discard(topic)
        if self.requests is not None:
            self.requests.closed(topic)
        return self._notices.pop(topic, "")

    def receive(self, text: str) -> Event | None:
        """Interpret one carrier message from the server. ``pub`` and
        ``gap`` are frames of the extensions: taken only while the server
        takes part in them (:meth:`take_requests`), as any other text
        otherwise."""
        if self.extended:
            kind = text[:4]
            if kind == "pub,":
                return self._published(text)
            if kind == "gap,":
                return self._gap(text)
        frame = _parse_counted(text, self.counters)
        if frame is None:
            return None
        topic = frame.topic
        if topic in self._open:
            if frame.type == MSG:
                return MessageReceived(topic, frame.payload)
            if frame.type == UNS:
                notice = self._forget(topic)
                reason = CloseReason.REFUSED if notice else CloseReason.SERVER_CLOSED
                return ChannelClosedEvent(topic, reason, notice)
            if frame.type == ERR:
                self._notices[topic] = frame.payload
                return None
            if frame.type in REQUEST_FRAMES and self.requests is not None:
                event = self.requests.receive(frame)
                if event is not None:
                    return event
        self.counters.ignored_frames += 1
        return None

    def _published(self, text: str) -> Event | None:
        self.counters.frames_received += 1
        published = parse_publication(text)
        if published is None:
            self.counters.invalid_frames += 1
            return None
        if published.topic not in self._open:
            self.counters.ignored_frames += 1
            return None
        position = published.position
        return MessagePublished(
            published.topic,
            published.payload,
            published.group,
            position.epoch,
            position.offset,
        )

    def _gap(self, text: str) -> Event | None:
        self.counters.frames_received += 1
        gap = parse_gap(text)
        if gap is None or gap[0] not in self._open:
            self.counters.ignored_frames += 1
            return None
        return StreamGap(*gap)

    def present(self, topic: str, group: str, position: Position) -> str:
        """The ``pos`` frame that tells a new connection where the channel
        ``topic`` stands in ``group`` (sent before its ``sub``)."""
        self.counters.frames_sent += 1
        return position_frame(topic, group, position)

    def connection_lost(self) -> list[ChannelClosedEvent]:
        """Close every channel: the carrier is gone and will not come back."""
        closed = [
            ChannelClosedEvent(topic, CloseReason.CONNECTION_LOST)
            for topic in self._open
        ]
        self._open.clear()
        self._notices.clear()
        if self.requests is not None:
            self.requests.clear()
        return closed

    def _require_open(self, topic: str) -> None:
        if topic not in self._open:
            raise LocalProtocolError(f"channel {topic!r} is closed; open a new one")
