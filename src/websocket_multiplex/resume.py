"""Resumable channels, sans I/O: what each side must keep so that a new
carrier can carry on where a lost one stopped (docs/PROTOCOL-EXTENSIONS.md,
section 3).

On the extended protocol every frame of a channel (its ``sub``, its
``msg`` frames, its ``err`` and ``uns``) has a sequence number: its
position in that channel's stream, counted from 1 by both sides. The
carrier (a WebSocket, a SockJS session) delivers in order and loses
nothing while it lasts, so the number is implicit and costs no byte on
the wire; what the sides exchange is how far they got:

* ``ack,<topic>,<n>``: "I have received your first ``n`` frames of this
  channel", sent now and then (every :data:`ACK_EVERY` frames, or when the
  asyncio layer's timer says), never one per frame;
* on a new carrier, each side's position for every channel it still
  holds (:meth:`Streams.positions`), in the ``hey`` frames; each then
  resends exactly what the other has not received (:meth:`Streams.resume`).

A sender keeps each frame until it is acknowledged
(:attr:`Streams.retained_size` is what the flow control bounds). A channel
ends with a ``uns`` from each side (the receiver of the first answers it),
and is forgotten once both are acknowledged, so that the topic can be used
again without an old acknowledgement landing on a new channel.

:class:`Streams` is one side's book, the same for client and server.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Final

from .wire import UNS

__all__ = [
    "ACK",
    "ACK_EVERY",
    "HELLO",
    "Position",
    "Streams",
    "format_positions",
    "parse_positions",
]

ACK: Final = "ack"
HELLO: Final = "hey"
ACK_EVERY: Final = 32
"""Acknowledge after this many unacknowledged frames of a channel (and
on the asyncio layer's timer for the rest): acks cost a frame per 32."""


@dataclass(frozen=True, slots=True)
class Position:
    """How far one side got with one channel's streams."""

    topic: str
    received: int  # the peer's frames this side has received
    sent: int  # the frames this side has sent


def format_positions(positions: list[Position]) -> str:
    """``T:r:s,...``: a topic holds neither ``:`` nor ``,`` (``escape()``
    writes them as ``%3A`` and ``%2C``)."""
    return ",".join(f"{p.topic}:{p.received}:{p.sent}" for p in positions)


def parse_positions(text: str, limit: int) -> list[Position] | None:
    """The positions in ``text``, at most ``limit`` of them; ``None`` if
    it is not a list of positions (the peer is broken or hostile)."""
    if not text:
        return []
    items = text.split(",")
    if len(items) > limit:
        return None
    positions = []
    for item in items:
        topic, _, counts = item.partition(":")
        received, _, sent = counts.partition(":")
        if not (topic and _is_count(received) and _is_count(sent)):
            return None
        positions.append(Position(topic, int(received), int(sent)))
    return positions


def _is_count(text: str) -> bool:
    return text.isascii() and text.isdigit() and len(text) <= 18


@dataclass(slots=True)
class _Stream:
    """Both directions of one channel, as this side sees them."""

    sent: int = 0  # frames sent, the number of the last one
    acked: int = 0  # of them, how many the peer has received
    retained: deque[str] = field(default_factory=deque)  # acked+1 .. sent
    received: int = 0  # the peer's frames received
    told: int = 0  # of them, how many this side acknowledged
    closed_out: bool = False  # this side sent its uns
    closed_in: bool = False  # the peer's uns arrived

    @property
    def done(self) -> bool:
        """Both ``uns`` sent, received and acknowledged."""
        return (
            self.closed_out
            and self.closed_in
            and not self.retained
            and self.told == self.received
        )


class Streams:
    """One side's book of its channels' streams on a resumable session.

    Feed it every frame of a channel this side sends (:meth:`sent`) and
    receives (:meth:`received`), and every ``ack`` (:meth:`acknowledged`);
    it says which acks are due and, on a new carrier, what to resend.
    """

    __slots__ = ("_streams", "retained_size")

    def __init__(self) -> None:
        self._streams: dict[str, _Stream] = {}
        self.retained_size = 0
        """Characters sent and not yet acknowledged, all channels."""

    def __contains__(self, topic: str) -> bool:
        """Whether ``topic`` is still in the book: a channel on it is open,
        or closed and not yet forgotten (its topic is not free again)."""
        return topic in self._streams

    def __len__(self) -> int:
        return len(self._streams)

    # -- frames ------------------------------------------------------------------

    def sent(self, topic: str, frame: str) -> None:
        """This side sends ``frame`` (``sub``, ``msg``, ``err`` or ``uns``)
        on ``topic``: keep it until it is acknowledged."""
        stream = self._streams.get(topic)
        if stream is None:
            stream = self._streams[topic] = _Stream()
        stream.sent += 1
        stream.retained.append(frame)
        self.retained_size += len(frame)
        if frame.startswith(UNS) and frame[3:4] == ",":
            stream.closed_out = True

    def received(self, topic: str, kind: str) -> str | None:
        """A frame of type ``kind`` arrived on ``topic``; the ``ack`` to
        send now, if one is due (every :data:`ACK_EVERY` frames, and at
        once for a ``uns``: the peer forgets the channel only then)."""
        stream = self._streams.get(topic)
        if stream is None:
            stream = self._streams[topic] = _Stream()
        stream.received += 1
        if kind == UNS:
            stream.closed_in = True
        elif stream.received - stream.told < ACK_EVERY:
            return None
        return self._ack(topic, stream)

    def must_answer_close(self, topic: str) -> bool:
        """The peer closed ``topic`` and this side has not: it must send
        its own ``uns`` (the channel's end, both ways)."""
        stream = self._streams.get(topic)
        return stream is not None and stream.closed_in and not stream.closed_out

    def acknowledged(self, topic: str, count: int) -> bool:
        """The peer says it has received ``count`` frames of ``topic``;
        whether that made sense (an ack beyond what was sent, or for a
        topic not in the book, is ignored)."""
        stream = self._streams.get(topic)
        if stream is None or not stream.acked <= count <= stream.sent:
            return False
        retained = stream.retained
        while stream.acked < count:
            self.retained_size -= len(retained.popleft())
            stream.acked += 1
        self._forget_if_done(topic, stream)
        return True

    def due_acks(self) -> list[str]:
        """An ``ack`` for every channel with frames not yet acknowledged
        (the timer's flush: what :meth:`received` did not send already)."""
        return [
            self._ack(topic, stream)
            for topic, stream in list(self._streams.items())
            if stream.received != stream.told
        ]

    def _ack(self, topic: str, stream: _Stream) -> str:
        stream.told = stream.received
        frame = f"{ACK},{topic},{stream.received}"
        self._forget_if_done(topic, stream)
        return frame

    def _forget_if_done(self, topic: str, stream: _Stream) -> None:
        if stream.done:
            del self._streams[topic]

    # -- a new carrier -----------------------------------------------------------

    def positions(self) -> list[Position]:
        """Where this side is with every channel in the book, to tell the
        peer on a new carrier (which acknowledges what it received)."""
        for stream in self._streams.values():
            stream.told = stream.received
        return [
            Position(topic, stream.received, stream.sent)
            for topic, stream in self._streams.items()
        ]

    def resume(
        self, theirs: list[Position], *, listed_all: bool
    ) -> tuple[list[str], list[Position]]:
        """Carry on after the peer's ``theirs``: the frames to resend, in
        order, and this side's positions to answer with.

        ``listed_all``: ``theirs`` is the peer's whole book (what a client
        sends first), so a channel this side holds and the peer does not is
        one the peer finished and forgot: forget it too. The answering
        side (the client, reading the server's positions) passes ``False``.

        For a topic the peer holds and this side does not: if the peer has
        received nothing of it, this side never saw the channel open (its
        ``sub`` was lost), and the peer's resent frames open it; otherwise
        this side finished and forgot it, and everything the peer sent is
        acknowledged.
        """
        answer: list[Position] = []
        resend: list[str] = []
        listed = set()
        for position in theirs:
            topic = position.topic
            listed.add(topic)
            stream = self._streams.get(topic)
            if stream is None:
                if position.received == 0:  # its sub never reached us
                    answer.append(Position(topic, 0, 0))
                else:  # finished here: all of theirs arrived, all of ours
                    answer.append(Position(topic, position.sent, position.received))
                continue
            answer.append(Position(topic, stream.received, stream.sent))
            stream.told = stream.received  # the answer acknowledges it
            if not stream.acked <= position.received <= stream.sent:
                continue  # nonsense: resend nothing rather than guess
            self.acknowledged(topic, position.received)
            if topic in self._streams:
                resend.extend(stream.retained)
        if listed_all:
            for topic in [t for t in self._streams if t not in listed]:
                self._drop(topic)
        return resend, answer

    def _drop(self, topic: str) -> None:
        stream = self._streams.pop(topic)
        self.retained_size -= sum(len(frame) for frame in stream.retained)
