"""Flow control of one connection, without any I/O (docs/LIMITS.md).

Two ledgers and the decisions made from them:

- :class:`Ledger` counts what a connection's channels hold unread, each
  (:class:`Held`) and in all, and says what to shed when a message from
  the client does not fit: the channel that fell behind, or the fullest
  ones of the connection (:class:`Overflow`).
- :class:`Output` counts what is queued for the client and not yet handed
  to its carrier, and says whether a frame may be written at once, whether
  a sender must wait, and when a client is too slow to keep.

The asyncio layer feeds them sizes and the time and carries out what they
decide; the property tests and the fuzzer drive them the same way.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from .limits import DEFAULT_LIMITS, Limits

__all__ = ["Held", "Ledger", "Output", "Overflow", "Shed", "Verdict"]

SLOW_FACTOR = 4
"""A client whose queue goes above this many times ``Limits.write_limit``
through frames nobody waits for (fan-out, refusals, goodbyes) is dropped
at once."""


class Held:
    """What one channel holds unread: its share of its connection's ledger."""

    __slots__ = ("_ledger", "count", "size")

    def __init__(self, ledger: Ledger) -> None:
        self._ledger = ledger
        self.count = 0
        self.size = 0  # in characters

    def arrived(self, size: int) -> None:
        """A message of ``size`` characters is now in the channel's inbox."""
        self.count += 1
        self.size += size
        self._ledger.size += size

    def took(self, size: int) -> None:
        """The application read a message of ``size`` characters."""
        self.count -= 1
        self.size -= size
        self._ledger.size -= size

    def drop(self) -> None:
        """Everything unread is gone (a shed channel, a finished handler)."""
        self._ledger.size -= self.size
        self.count = self.size = 0


@dataclass(frozen=True, slots=True)
class Shed:
    """Close the channel of ``topic``: it went past ``limit`` (its unread
    messages are dropped already)."""

    topic: str
    limit: str


@dataclass(frozen=True, slots=True)
class Overflow:
    """What a message that did not fit costs: channels to shed first, and
    whether the message may then be delivered (it is counted if so)."""

    shed: tuple[Shed, ...]
    deliver: bool


class Ledger:
    """The unread messages of one connection's channels.

    ``Limits.max_queue`` and ``max_queue_size`` bound each channel; a
    channel past either is shed. ``max_connection_queue_size`` bounds
    them all: a message past it sheds the fullest open channels until it
    fits (the channels whose handlers fell behind, not the one that reads).
    Unread messages of a closed channel still count until they are read or
    dropped.
    """

    __slots__ = ("_max_queue", "_max_queue_size", "_open", "_room", "_total", "size")

    def __init__(self, limits: Limits = DEFAULT_LIMITS) -> None:
        self._max_queue = limits.max_queue
        self._max_queue_size = limits.max_queue_size
        self._total = limits.max_connection_queue_size
        # Within the smaller size limit, both hold: the common case.
        self._room = min(limits.max_queue_size, limits.max_connection_queue_size)
        self._open: dict[str, Held] = {}
        self.size = 0  # characters unread in all

    def open(self, topic: str) -> Held:
        """A channel opened on ``topic``: its share, to hand to its inbox."""
        held = self._open[topic] = Held(self)
        return held

    def closed(self, topic: str) -> None:
        """The channel of ``topic`` closed: it is no longer shed (what it
        holds counts until it is read or dropped)."""
        self._open.pop(topic, None)

    def admit(self, topic: str, held: Held, size: int) -> Overflow | None:
        """A message of ``size`` characters came for ``topic``: ``None`` if
        it fits (it is counted now: deliver it), else what to do."""
        if held.count < self._max_queue and self.size + size <= self._room:
            held.count += 1  # held.arrived(size), inlined: every message
            held.size += size
            self.size += size
            return None
        return self._overflow(topic, held, size)

    def _overflow(self, topic: str, held: Held, size: int) -> Overflow:
        if held.count >= self._max_queue:
            return Overflow((self._shed(topic, held, "max_queue"),), False)
        if held.count and held.size + size > self._max_queue_size:
            return Overflow((self._shed(topic, held, "max_queue_size"),), False)
        shed: list[Shed] = []
        # Each turn frees a non-empty share, or sheds this channel and stops.
        while self.size and self.size + size > self._total:
            fullest_topic, fullest = max(
                self._open.items(), key=_held_size, default=(topic, held)
            )
            if not fullest.size:  # what is held is in closed channels
                fullest_topic, fullest = topic, held
            shed.append(self._shed(fullest_topic, fullest, "max_connection_queue_size"))
            if fullest is held:
                return Overflow(tuple(shed), False)
        held.arrived(size)
        return Overflow(tuple(shed), True)

    def _shed(self, topic: str, held: Held, limit: str) -> Shed:
        held.drop()
        self.closed(topic)
        return Shed(topic, limit)


def _held_size(item: tuple[str, Held]) -> int:
    return item[1].size


class Verdict(enum.Enum):
    """What a frame just queued means for its connection."""

    ROOM = "below write_limit"
    FULL = "above write_limit: a sender waits until the writer drains it"
    SLOW = "the client is too slow: drop it (close 4008)"


class Output:
    """What is queued for one client and not yet handed to its carrier.

    Every frame counts, whatever its origin (messages, refusals, ``uns``,
    goodbyes). Above ``Limits.write_limit`` a sender that can wait waits;
    a client that stays above it for ``slow_client_timeout``, or whose
    queue reaches :data:`SLOW_FACTOR` times it through frames nobody waits
    for, is too slow. ``writing`` is set while the carrier takes a batch:
    a frame may go out at once only when nothing is queued or being written.
    """

    __slots__ = ("_limit", "_over_since", "_timeout", "size", "writing")

    def __init__(self, limits: Limits = DEFAULT_LIMITS) -> None:
        self._limit = limits.write_limit
        self._timeout = limits.slow_client_timeout
        self._over_since: float | None = None
        self.size = 0  # characters queued
        self.writing = False

    @property
    def idle(self) -> bool:
        """Nothing queued and nothing being written: a frame may go at once."""
        return not self.size and not self.writing

    def queued(self, size: int, now: float, waits: bool) -> Verdict:
        """``size`` more characters are queued at ``now``; ``waits``: their
        sender can wait (a handler's ``send``), else nothing holds it back."""
        return Verdict.ROOM if self.add(size) else self.over(now, waits)

    def add(self, size: int) -> bool:
        """:meth:`queued` in two steps, so that the clock is read only when
        needed: ``size`` more characters are queued; whether the queue is
        still within ``write_limit`` (else ask :meth:`over`)."""
        self.size += size
        return self.size <= self._limit

    def over(self, now: float, waits: bool) -> Verdict:
        """What a queue above ``write_limit`` at ``now`` means for a frame
        whose sender can wait (``waits``: a handler's ``send``) or not."""
        if self.size <= self._limit:
            return Verdict.ROOM
        if self._over_since is None:
            self._over_since = now
        if self.too_slow(now) or (not waits and self.size > SLOW_FACTOR * self._limit):
            return Verdict.SLOW
        return Verdict.FULL

    def deadline(self) -> float | None:
        """When a client above ``write_limit`` becomes too slow."""
        if self._over_since is None:
            return None
        return self._over_since + self._timeout

    def too_slow(self, now: float) -> bool:
        """Whether the client has been above ``write_limit`` too long."""
        deadline = self.deadline()  # the same sum: no rounding apart
        return deadline is not None and now > deadline

    def taken(self) -> None:
        """The writer took everything queued, to hand to the carrier."""
        self.size = 0
        self._over_since = None
