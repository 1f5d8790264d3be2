"""Resumable group streams, without any I/O (docs/PROTOCOL-EXTENSIONS.md, section 4).

Each publish to a group gets a :class:`Position`: the group's *epoch*,
which names one continuous history of the group (a new one begins when a
broker loses what it kept, e.g. a Redis restart without persistence), and
an *offset*, increasing within the epoch. A client of ours learns the
position of every group message it receives (``pub`` frames) and, when its
session could not be resumed, presents the last one it holds per group
(``pos`` frames) on the new connection, so that a handler rejoining the
group there replays what was missed, or says it cannot (``gap``).

The frames, sent only on a connection whose session extension was
negotiated (section 3)::

    pub,<topic>,<group>,<epoch>,<offset>,<payload>   server: a group message
    pos,<topic>,<group>,<epoch>,<offset>             client: where I am in a group
    gap,<topic>,<group>                              server: missed messages are gone

``<group>`` is passed through JavaScript's ``escape()`` so that it holds no
comma.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

from .wire import escape, unescape

__all__ = [
    "GAP",
    "POS",
    "PUB",
    "Position",
    "Positioned",
    "gap_frame",
    "parse_gap",
    "parse_position",
    "parse_publication",
    "position_frame",
    "publication_frame",
    "publication_tail",
]

PUB: Final = "pub"
POS: Final = "pos"
GAP: Final = "gap"

_EPOCH = re.compile(r"[A-Za-z0-9_-]{1,32}")
_OFFSET = re.compile(r"[0-9]{1,20}(?:-[0-9]{1,20})?")
MAX_GROUP_LENGTH: Final = 256
"""Characters of an escaped group name in a ``pos`` frame; longer is ignored."""


@dataclass(frozen=True, slots=True, order=False)
class Position:
    """Where a message stands in its group's history.

    ``offset`` is decimal digits, or two groups of them joined by ``-`` (a
    Redis stream id); offsets compare as the tuple of their numbers, which
    is the order the broker gave them. Positions of different epochs do not
    compare: :meth:`follows` is false for them.
    """

    epoch: str
    offset: str

    @classmethod
    def parse(cls, epoch: str, offset: str) -> Position | None:
        """A position from its two wire fields, or ``None`` if malformed."""
        if _EPOCH.fullmatch(epoch) and _OFFSET.fullmatch(offset):
            return cls(epoch, offset)
        return None

    @property
    def key(self) -> tuple[int, int]:
        """The offset as numbers, for ordering within the epoch."""
        first, _, second = self.offset.partition("-")
        return int(first), int(second or 0)

    def follows(self, other: Position) -> bool:
        """Whether this position comes after ``other`` in the same history."""
        return self.epoch == other.epoch and self.key > other.key

    def after(self, other: Position) -> bool:
        """Whether this position is news to whoever had ``other``: later in
        the same history, or in another one (a history that began again)."""
        return self.epoch != other.epoch or self.key > other.key

    def __str__(self) -> str:
        return f"{self.epoch}:{self.offset}"


@dataclass(frozen=True, slots=True)
class Positioned:
    """A group message a client received, with where it stands (a ``pub``)."""

    topic: str
    group: str
    position: Position
    payload: str


def publication_tail(group: str, position: Position, payload: str) -> str:
    """What follows the topic in the ``pub`` frame of a group message: the
    same for every member, so made once per message, not per member."""
    return f"{escape(group)},{position.epoch},{position.offset},{payload}"


def publication_frame(topic: str, tail: str) -> str:
    """The ``pub`` frame for the channel ``topic`` (``tail``: see
    :func:`publication_tail`)."""
    return f"pub,{topic},{tail}"


def parse_publication(text: str) -> Positioned | None:
    """The message in a ``pub`` frame, or ``None`` if it is malformed."""
    parts = text.split(",", 5)
    if len(parts) != 6 or parts[0] != PUB or not parts[1] or not parts[2]:
        return None
    position = Position.parse(parts[3], parts[4])
    if position is None:
        return None
    return Positioned(parts[1], unescape(parts[2]), position, parts[5])


def position_frame(topic: str, group: str, position: Position) -> str:
    """The ``pos`` frame that says where the channel ``topic`` is in ``group``."""
    return f"pos,{topic},{escape(group)},{position.epoch},{position.offset}"


def parse_position(text: str) -> tuple[str, str, Position] | None:
    """Topic, group and position of a ``pos`` frame, or ``None`` if malformed."""
    parts = text.split(",")
    if len(parts) != 5 or parts[0] != POS or not parts[1] or not parts[2]:
        return None
    if len(parts[2]) > MAX_GROUP_LENGTH:
        return None
    position = Position.parse(parts[3], parts[4])
    if position is None:
        return None
    return parts[1], unescape(parts[2]), position


def gap_frame(topic: str, group: str) -> str:
    """The ``gap`` frame: some of ``group``'s messages after the position the
    channel ``topic`` presented are no longer kept."""
    return f"gap,{topic},{escape(group)}"


def parse_gap(text: str) -> tuple[str, str] | None:
    """Topic and group of a ``gap`` frame, or ``None`` if malformed."""
    parts = text.split(",")
    if len(parts) != 3 or parts[0] != GAP or not parts[1] or not parts[2]:
        return None
    return parts[1], unescape(parts[2])
