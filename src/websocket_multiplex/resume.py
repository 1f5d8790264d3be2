"""Resumable sessions, sans I/O: what each side keeps so that a new carrier
can carry on exactly where a lost one stopped (docs/PROTOCOL-EXTENSIONS.md,
section 3).

A session is the stream of multiplex frames one side sends the other,
whatever their channel, in order. The carrier (a WebSocket, a SockJS
session) delivers in order and loses nothing while it lasts, so a frame's
sequence number is implicit: its position in that stream, counted from 1
by both sides from the ``hey`` that opened the session. It costs no byte
on the wire. What the sides exchange is how far they got:

* ``ack,<n>``: "I have received your first ``n`` frames", sent every
  :data:`ACK_EVERY` frames (by the server with the frames it sends anyway,
  alone only after :data:`ACK_ALONE`) and on a short timer for the rest
  (the asyncio layer's; with the next frames sent, if frames are going
  out: :attr:`Book.overdue`), never one per frame;
* on a new carrier, ``hey,r1,<token>,<n>`` from each side: the session and
  how many of the other's frames it has; each then resends exactly the
  frames the other lacks, so that every frame arrives once, in order;
* over a carrier that can lose messages without ending (the SockJS HTTP
  transports, :func:`format_carried`), ``seq,<n>`` from the server at the
  start of each answer: "this carrier brought you ``n`` messages before
  this one"; a client that counted fewer drops the carrier and resumes.

The client proposes the token in its offer (``hey,r1,<token>``), so that
a carrier lost before the server's answer arrived can still be resumed.

Channels, handlers and the base protocol never see any of it: for them the
stream simply goes on. :class:`Book` is one side's ledger of the session,
the same for client and server; the hello frames are :class:`Hello`.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import chain, islice
from typing import Final

__all__ = [
    "ACK",
    "ACK_ALONE",
    "ACK_EVERY",
    "CONTROL",
    "GOODBYE",
    "HELLO",
    "MAX_TOKEN_LENGTH",
    "VERSION",
    "Book",
    "Hello",
    "format_ack",
    "format_carried",
    "is_control",
    "parse_ack",
    "parse_carried",
]

HELLO: Final = "hey"
ACK: Final = "ack"
VERSION: Final = "r1"
"""The extension's name and version, the ``topic`` of every hello: a topic
no service of the original server can have open, and no
``Object.prototype`` member, so that the original server ignores it."""
GOODBYE: Final = f"{HELLO},{VERSION},bye"
"""A client that closes on purpose says so: the server forgets the session
at once instead of keeping it for a client that will not come back."""
ACK_EVERY: Final = 32
"""Acknowledge after this many unacknowledged frames (and on the timer for
the rest): acks cost one frame in 32."""
ACK_ALONE: Final = 8 * ACK_EVERY
"""A side that sends its acks along with its own frames (:meth:`Book.due`;
the server) sends one alone once this many wait: a peer that only sends
is still acknowledged often enough, not only by the timer."""
_MAX_COUNT_DIGITS: Final = 18


CARRIED: Final = "seq"
CONTROL: Final = (f"{HELLO},", f"{ACK},", f"{CARRIED},")
"""The prefixes of the session's own frames (``str.startswith`` takes it)."""


def is_control(frame: str) -> bool:
    """Whether ``frame`` is a hello, an ack or a ``seq``: part of the
    session's own talk, never numbered, kept or resent."""
    return frame.startswith(CONTROL)


def format_ack(count: int) -> str:
    return f"{ACK},{count}"


def format_carried(count: int) -> str:
    """The server's ``seq,<n>``: the carrier brought ``count`` messages
    before this one (a SockJS HTTP answer's first; docs/PROTOCOL-EXTENSIONS.md,
    section 3)."""
    return f"{CARRIED},{count}"


def parse_carried(frame: str) -> int | None:
    """The count of a ``seq,<n>`` frame, or ``None`` if it is not one."""
    kind, _, count = frame.partition(",")
    return int(count) if kind == CARRIED and _is_count(count) else None


def parse_ack(frame: str) -> int | None:
    """The count of an ``ack,<n>`` frame, or ``None`` if it is not one."""
    kind, _, count = frame.partition(",")
    return int(count) if kind == ACK and _is_count(count) else None


_TOKEN_CHARACTERS: Final = frozenset(
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
)


def _is_token(text: str) -> bool:
    """1 to 64 of ``[A-Za-z0-9_-]`` (base64url)."""
    return 0 < len(text) <= MAX_TOKEN_LENGTH and _TOKEN_CHARACTERS.issuperset(text)


def _is_count(text: str) -> bool:
    return text.isascii() and text.isdigit() and len(text) <= _MAX_COUNT_DIGITS


MAX_TOKEN_LENGTH: Final = 64


@dataclass(frozen=True, slots=True)
class Hello:
    """A ``hey`` frame: a client's offer or resume, or a server's answer.

    ``hey,r1,<token>`` (``received`` is ``None``) offers a new session and
    proposes its token: the client's first frame on its first carrier.
    ``hey,r1,<token>,<received>`` names a session and says how many of the
    peer's frames this side has received: a client asking to resume it,
    or the server answering either. The server's token is the session's:
    one other than the client asked to resume means "not resumed, this is
    a new session".
    """

    token: str
    received: int | None = None

    def format(self) -> str:
        if self.received is None:
            return f"{HELLO},{VERSION},{self.token}"
        return f"{HELLO},{VERSION},{self.token},{self.received}"

    @classmethod
    def parse(cls, frame: str) -> Hello | None:
        """The hello in ``frame``, or ``None`` if it is not one of this
        version (a peer speaking another one, a goodbye, or junk)."""
        parts = frame.split(",", 4)
        if len(parts) not in (3, 4) or parts[0] != HELLO or parts[1] != VERSION:
            return None
        token = parts[2]
        if not _is_token(token) or token == "bye":
            return None
        if len(parts) == 3:
            return cls(token)
        if not _is_count(parts[3]):
            return None
        return cls(token, int(parts[3]))


class Book:
    """One side's ledger of a resumable session.

    Feed it every numbered frame this side hands to a carrier
    (:meth:`sent`), every frame that arrives (:meth:`received`) and every
    ``ack`` (:meth:`acknowledged`); it says when to acknowledge and, on a
    new carrier, what to resend (:meth:`resend_after`).
    """

    __slots__ = (
        "_chunks",
        "_sent_when_armed",
        "_skip",
        "acked",
        "overdue",
        "received_count",
        "retained_size",
        "sent_count",
        "told",
    )

    def __init__(self) -> None:
        self.sent_count = 0
        """Frames this side sent: the number of the last one."""
        self.acked = 0
        """Of them, how many the peer said it has."""
        # Frames acked+1 .. sent_count, in the lists they were sent in (so
        # that acknowledging many costs a few steps, not one per frame),
        # the first ``_skip`` of the first list acknowledged already.
        self._chunks: deque[list[str]] = deque()
        self._skip = 0
        self.retained_size = 0
        """Characters sent and not yet acknowledged: what flow control bounds."""
        self.received_count = 0
        """The peer's frames received."""
        self.told = 0
        """Of them, how many this side acknowledged."""
        self.overdue = False
        """The ack timer found frames unacknowledged while frames were
        going out: the next ones carry the ack (:meth:`due`)."""
        self._sent_when_armed = 0

    def sent(self, frame: str) -> None:
        """This side hands ``frame`` to a carrier, or would if it had one:
        keep it until the peer acknowledges it."""
        self.sent_count += 1
        self._chunks.append([frame])
        self.retained_size += len(frame)

    def sent_many(self, frames: list[str]) -> None:
        """:meth:`sent` for each of ``frames``, in order (the book keeps
        the list itself: do not change it afterwards)."""
        if frames:
            self.sent_count += len(frames)
            self._chunks.append(frames)
            self.retained_size += sum(map(len, frames))

    def received(self) -> str | None:
        """A numbered frame arrived; the ``ack`` to send now, if one is due."""
        self.received_count += 1
        if self.received_count - self.told < ACK_EVERY:
            return None
        return self.ack()

    def due(self) -> str | None:
        """The ``ack`` to send with the frames going out now, if
        :data:`ACK_EVERY` frames wait for one, or it is :attr:`overdue`."""
        if self.received_count - self.told < ACK_EVERY and not self.overdue:
            return None
        return self.ack()

    def timer_armed(self) -> None:
        """The ack timer (the caller's, of about 50 ms) starts now."""
        self._sent_when_armed = self.sent_count

    def timer_fired(self) -> str | None:
        """The ack timer is up: the ``ack`` to send alone now, if one is.
        While frames go out, ``None`` the first time, with :attr:`overdue`
        set: the next frames carry the ack (an ack alone costs a carrier
        message, under load one per connection per timer), and the caller
        starts the timer once more, after which it goes alone."""
        if self.received_count == self.told:
            return None
        if not self.overdue and self.sent_count != self._sent_when_armed:
            self.overdue = True
            return None
        return self.ack()

    def ack(self) -> str | None:
        """The ``ack`` for what arrived since the last one, if anything did
        (the timer's flush)."""
        self.overdue = False
        if self.received_count == self.told:
            return None
        self.told = self.received_count
        return format_ack(self.told)

    def acknowledged(self, count: int) -> bool:
        """The peer has this side's first ``count`` frames: forget them.
        ``False`` (and nothing forgotten) if that is impossible: more than
        was sent, or fewer than already acknowledged."""
        if not self.acked <= count <= self.sent_count:
            return False
        chunks, todo = self._chunks, count - self.acked
        while todo:
            first, skip = chunks[0], self._skip
            left = len(first) - skip
            done = min(left, todo)
            self.retained_size -= sum(map(len, islice(first, skip, skip + done)))
            if done == left:
                chunks.popleft()
                self._skip = 0
            else:
                self._skip = skip + done
            todo -= done
        self.acked = count
        return True

    def _kept(self) -> Iterator[str]:
        """Every frame kept, in order."""
        return islice(chain.from_iterable(self._chunks), self._skip, None)

    def since(self, count: int) -> list[str]:
        """The frames numbered after ``count`` (at least :attr:`acked`):
        what was kept since the sender last looked."""
        return list(islice(self._kept(), count - self.acked, None))

    def resend_after(self, count: int) -> list[str] | None:
        """On a new carrier, the peer says it has this side's first
        ``count`` frames: the ones to send again, in order; ``None`` if it
        cannot be (``count`` is beyond what was sent, or before what the
        peer already acknowledged: frames that are forgotten)."""
        if not self.acknowledged(count):
            return None
        return list(self._kept())

    def hello(self, token: str) -> Hello:
        """This side's hello on a new carrier, which acknowledges everything
        received so far."""
        self.told = self.received_count
        return Hello(token, self.received_count)
