"""What a client channel heard of the presence its service shares.

The server sends ``prs`` frames (docs/PROTOCOL-EXTENSIONS.md, section 6);
:class:`PresenceInbox` keeps the members they describe, per group, and
the events not read yet, at most ``limit``. One more replaces the unread
events with a snapshot of each group marked as a gap, as a server-side
watcher that falls behind gets: memory stays bounded, the carrier is read
on, and the application still ends up with the right members.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator

from ..events import MemberJoined, MemberLeft, PresenceEvent, PresenceSnapshot

__all__ = ["PresenceInbox"]


class PresenceInbox:
    """The presence events of one client channel, read by one task."""

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._members: dict[str, set[str]] = {}
        self._unread: deque[PresenceEvent] = deque()
        self._wakeup = asyncio.Event()
        self._closed = False

    def members(self, group: str) -> frozenset[str]:
        """The members of ``group`` as the server last said (read or not)."""
        return frozenset(self._members.get(group, ()))

    def received(self, event: PresenceEvent) -> None:
        """A ``prs`` frame came. A second snapshot of a group (the server
        lost its session and shared again) is a gap whatever it says."""
        group = event.group
        if type(event) is PresenceSnapshot:
            if group in self._members and not event.gap:
                event = PresenceSnapshot(group, event.members, gap=True)
            self._members[group] = set(event.members)
        elif type(event) is MemberJoined:
            self._members.setdefault(group, set()).add(event.member)
        elif type(event) is MemberLeft:
            self._members.setdefault(group, set()).discard(event.member)
        if len(self._unread) >= self._limit:
            self._unread.clear()
            self._unread.extend(
                PresenceSnapshot(name, frozenset(members), gap=True)
                for name, members in self._members.items()
            )
        else:
            self._unread.append(event)
        self._wakeup.set()

    def close(self) -> None:
        """The channel closed: a reader gets what is left, then stops."""
        self._closed = True
        self._wakeup.set()

    async def events(self) -> AsyncIterator[PresenceEvent]:
        while True:
            while self._unread:
                yield self._unread.popleft()
            if self._closed:
                return
            self._wakeup.clear()
            await self._wakeup.wait()
