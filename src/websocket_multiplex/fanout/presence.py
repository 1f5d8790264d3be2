"""The presence seam: how a server hears members join and leave groups.

A broker that implements :class:`PresenceBroker` as well as
:class:`~websocket_multiplex.fanout.Broker` lets a server watch groups
(:meth:`MultiplexServer.presence`). It reports every change of a watched
group's members to one :class:`PresenceListener`, once per change and in
the order of the changes of each member; it never sends anything per
published message. When it may have missed changes (a lost connection), it
says so with :meth:`PresenceListener.lost`, and watchers fetch the members
again (``members``).
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from ..events import MemberJoined, MemberLeft, PresenceChange

__all__ = ["MemoryPresence", "PresenceBroker", "PresenceListener"]


class PresenceListener(Protocol):
    """What a broker tells the server about presence (called on the event
    loop, never concurrently, and never awaited: it must not block)."""

    def changed(self, change: PresenceChange) -> None:
        """A member of a watched group joined or left."""
        ...

    def lost(self, group: str) -> None:
        """Changes of the watched ``group`` may have been missed."""
        ...


@runtime_checkable
class PresenceBroker(Protocol):
    """What a broker adds to :class:`~websocket_multiplex.fanout.Broker`
    for presence events."""

    def listen_presence(self, listener: PresenceListener) -> None:
        """Report changes to ``listener`` from now on (before ``start``)."""
        ...

    async def watch_presence(self, group: str) -> None:
        """Report the changes of ``group``; returns once they are reported
        (with Redis: once subscribed), so a ``members`` fetched after it and
        the changes reported since agree."""
        ...

    async def unwatch_presence(self, group: str) -> None:
        """Stop reporting ``group``'s changes."""
        ...


class MemoryPresence:
    """Presence changes within one process: the
    :class:`~websocket_multiplex.fanout.InMemoryBroker`'s part. Nobody
    expires here: a process that dies takes its watchers with it."""

    def __init__(self) -> None:
        self._listener: PresenceListener | None = None
        self._watched: set[str] = set()

    def listen(self, listener: PresenceListener) -> None:
        self._listener = listener

    def watch(self, group: str) -> None:
        self._watched.add(group)

    def unwatch(self, group: str) -> None:
        self._watched.discard(group)

    def report(self, group: str, member: str, joined: bool) -> None:
        """``member`` did join or leave ``group`` (the broker's set changed)."""
        if self._listener is None or group not in self._watched:
            return
        change = MemberJoined(group, member) if joined else MemberLeft(group, member)
        self._listener.changed(change)
