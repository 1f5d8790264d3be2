"""Presence, sans I/O: one watcher's view of a group, and its ``prs`` frames.

A :class:`PresenceView` is fed the changes a broker reports
(:meth:`~PresenceView.changed`) and read as events
(:meth:`~PresenceView.next_event`). It never waits and never grows past
its bound: a watcher that falls ``limit`` changes behind loses them, and
reads a :class:`~websocket_multiplex.events.PresenceSnapshot` with
``gap=True`` next. Reading is driven from outside: when
:attr:`~PresenceView.snapshot_due`, the reader fetches the members
(:meth:`~PresenceView.begin_snapshot`, then
:meth:`~PresenceView.snapshot`).

**Why snapshot and changes agree.** The view is fed from before the
snapshot is asked for, so no change after it is lost; changes that the
snapshot already holds are dropped as they are read, since each event must
change the view: a join of a member it has, a departure of one it has not,
are not events. The view a reader builds is so always the snapshot plus
every later change, once each.

The second half is the wire format of docs/PROTOCOL-EXTENSIONS.md,
section 6 (:func:`format_presence`, :func:`parse_presence`).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable

from .events import (
    LeaveReason,
    MemberJoined,
    MemberLeft,
    PresenceChange,
    PresenceEvent,
    PresenceSnapshot,
)
from .wire import escape, unescape

__all__ = ["PRS", "PresenceView", "format_presence", "parse_presence"]

PRS = "prs"
"""The frame type of presence events, server to client (section 6)."""


class PresenceView:
    """The members of ``group`` as one watcher has read them, and the
    changes it has not read yet (at most ``limit``)."""

    __slots__ = (
        "_gap",
        "_generation",
        "_members",
        "_pending",
        "group",
        "limit",
        "snapshot_due",
    )

    def __init__(self, group: str, limit: int) -> None:
        self.group = group
        self.limit = limit
        self._members: set[str] = set()
        self._pending: deque[PresenceChange] = deque()
        self._generation = 0  # bumped by every loss: a snapshot in flight is stale
        self._gap = False  # a snapshot is due because changes were lost
        self.snapshot_due = True
        """The next read must be a snapshot: at the start, and after a gap."""

    def __repr__(self) -> str:
        due = " snapshot due" if self.snapshot_due else ""
        return (
            f"<PresenceView {self.group!r} {len(self._members)} members "
            f"{len(self._pending)} pending{due}>"
        )

    @property
    def members(self) -> frozenset[str]:
        """The members as read so far."""
        return frozenset(self._members)

    @property
    def pending(self) -> int:
        """Changes reported and not read yet."""
        return len(self._pending)

    def changed(self, change: PresenceChange) -> None:
        """A broker reported ``change``: queue it, or, past ``limit``, drop
        every queued one and make the next read a snapshot."""
        if len(self._pending) >= self.limit:
            self.lost()
        else:
            self._pending.append(change)

    def lost(self) -> None:
        """Changes may have been missed (an overflow, a broker outage): the
        next read is a snapshot with ``gap=True`` (``False`` if the watcher
        never had one)."""
        self._pending.clear()
        self._generation += 1
        self._gap = self._gap or not self.snapshot_due
        self.snapshot_due = True

    def begin_snapshot(self) -> int:
        """About to ask the broker for the members: pass what this returns
        to :meth:`snapshot` with them."""
        return self._generation

    def snapshot(self, began: int, members: Iterable[str]) -> PresenceSnapshot | None:
        """The members fetched since :meth:`begin_snapshot` returned
        ``began``; ``None`` if changes were lost meanwhile (fetch again).
        The changes queued since stay, to apply on top of it."""
        if began != self._generation:
            return None
        self._members = set(members)
        self.snapshot_due = False
        gap, self._gap = self._gap, False
        return PresenceSnapshot(self.group, frozenset(self._members), gap)

    def next_event(self) -> PresenceChange | None:
        """The next queued change that changes the view (it is applied), or
        ``None``. Call only while no snapshot is due."""
        assert not self.snapshot_due, "read the snapshot first"
        members, pending = self._members, self._pending
        while pending:
            change = pending.popleft()
            if type(change) is MemberJoined:
                if change.member not in members:
                    members.add(change.member)
                    return change
            elif change.member in members:
                members.discard(change.member)
                return change
        return None


# -- the wire: prs,<topic>,<group>,<change> ----------------------------------------

_JOINED, _LEFT, _EXPIRED, _SNAPSHOT, _GAP = "+", "-", "~", "=", "!"


def format_presence(event: PresenceEvent) -> str:
    """The payload of the ``prs`` frame that carries ``event``: the escaped
    group, a comma, then ``+member``, ``-member``, ``~member`` (expired),
    or ``=`` (``!`` after a gap) and the members, comma-separated.
    Everything is escaped with JavaScript's ``escape()``, so commas only
    separate."""
    group = escape(event.group)
    if type(event) is PresenceSnapshot:
        mark = _GAP if event.gap else _SNAPSHOT
        return f"{group},{mark}{','.join(escape(m) for m in sorted(event.members))}"
    if type(event) is MemberJoined:
        mark = _JOINED
    else:
        assert type(event) is MemberLeft
        mark = _EXPIRED if event.reason is LeaveReason.EXPIRED else _LEFT
    return f"{group},{mark}{escape(event.member)}"


def parse_presence(payload: str) -> PresenceEvent | None:
    """The event a ``prs`` payload carries, or ``None`` if it is not one
    (to be ignored, as frames of unknown types are)."""
    group, comma, change = payload.partition(",")
    if not comma or not change:
        return None
    mark, rest = change[0], change[1:]
    name = unescape(group)
    if mark in (_SNAPSHOT, _GAP):
        members = frozenset(unescape(m) for m in rest.split(",") if m)
        return PresenceSnapshot(name, members, mark == _GAP)
    if not rest:
        return None
    if mark == _JOINED:
        return MemberJoined(name, unescape(rest))
    if mark == _LEFT:
        return MemberLeft(name, unescape(rest))
    if mark == _EXPIRED:
        return MemberLeft(name, unescape(rest), LeaveReason.EXPIRED)
    return None
