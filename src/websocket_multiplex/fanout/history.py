"""What a broker keeps of each group's messages, so that a member that comes
back can have what it missed (docs/PROTOCOL-EXTENSIONS.md, section 4).

:class:`History` is the in-memory one, without any I/O: the caller says
what time it is. It is bounded per group by count (``size``) and by age
(``age`` seconds); a group with nothing left is forgotten whole, and its
next message begins a new epoch, so that offsets never repeat within one.
"""

from __future__ import annotations

import itertools
import secrets
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace

from ..streams import Position
from .messages import Delivery, Replay

__all__ = ["History", "new_epoch", "unseen"]


def new_epoch() -> str:
    """A name for a new history of a group: 48 random bits, base64url."""
    return secrets.token_urlsafe(6)


def unseen(
    since: Position | None, deliveries: Iterable[Delivery]
) -> Iterator[Delivery]:
    """``deliveries`` (a replay, then live messages held meanwhile) without
    those at or before the last position seen, starting from ``since``
    (``None``: none seen yet): so each message once, in order. A message
    of another epoch begins anew."""
    last = since
    for delivery in deliveries:
        position = delivery.position
        if position is not None:
            if last is not None and not position.after(last):
                continue
            last = position
        yield delivery


@dataclass(slots=True)
class _Stream:
    epoch: str
    entries: deque[tuple[float, Delivery]]  # (when, message), oldest first
    last: int = 0  # the offset of the latest message


class History:
    """The last ``size`` messages of every group, none older than ``age``."""

    def __init__(self, size: int = 1000, age: float = 300.0) -> None:
        if size < 1 or age <= 0:
            raise ValueError("a history needs a size of 1 or more and a positive age")
        self.size = size
        self.age = age
        self._streams: dict[str, _Stream] = {}
        self._recorded = 0

    def record(self, delivery: Delivery, now: float) -> Delivery:
        """Keep ``delivery``; return it with its position."""
        stream = self._streams.get(delivery.group)
        if stream is None:
            stream = _Stream(new_epoch(), deque(maxlen=self.size))
            self._streams[delivery.group] = stream
        stream.last += 1
        positioned = replace(
            delivery, position=Position(stream.epoch, str(stream.last))
        )
        stream.entries.append((now, positioned))
        self._recorded += 1
        if self._recorded % 1024 == 0:
            self._sweep(now)
        return positioned

    def since(self, group: str, position: Position, now: float) -> Replay:
        """What ``group`` holds after ``position``."""
        stream = self._streams.get(group)
        if stream is None or stream.epoch != position.epoch:
            return Replay((), complete=False)
        self._expire(stream, now)
        after = position.key[0]
        if after > stream.last:
            return Replay((), complete=False)  # a position never given
        # Offsets of a stream are 1, 2, 3, ...: the kept ones are the last
        # len(entries), so what follows ``after`` is a slice.
        first = stream.last - len(stream.entries) + 1
        kept = tuple(
            d
            for _, d in itertools.islice(
                stream.entries, max(after + 1 - first, 0), None
            )
        )
        return Replay(kept, complete=first <= after + 1)

    def _expire(self, stream: _Stream, now: float) -> None:
        entries, oldest = stream.entries, now - self.age
        while entries and entries[0][0] < oldest:
            entries.popleft()

    def _sweep(self, now: float) -> None:
        """Forget the groups with nothing left (their next message begins a
        new epoch)."""
        for group, stream in list(self._streams.items()):
            self._expire(stream, now)
            if not stream.entries:
                del self._streams[group]

    @property
    def groups(self) -> int:
        """Groups with a history (some possibly expired, until the next sweep)."""
        return len(self._streams)
