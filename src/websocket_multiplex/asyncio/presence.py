"""Presence watchers of one server, and the channels that share them.

:class:`PresenceHub` is the broker's
:class:`~websocket_multiplex.fanout.PresenceListener`: it hands each
change to every watcher of its group without waiting (a change costs one
append per watcher; the slowest one loses changes, never holds anyone up:
docs/LIMITS.md). A :class:`PresenceWatch` is what
:meth:`MultiplexServer.presence` returns: an async iterator over a
:class:`~websocket_multiplex.presence.PresenceView`. A channel that
shares a group's presence with its client runs one watch, whose events go
out as ``prs`` frames (docs/PROTOCOL-EXTENSIONS.md, section 6).

Nothing here runs per published message.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import Literal, Protocol

from ..events import PresenceChange, PresenceEvent
from ..exceptions import BrokerUnavailable, LocalProtocolError
from ..fanout.broker import Broker
from ..fanout.presence import PresenceBroker
from ..limits import Limits
from ..presence import PresenceView, format_presence

__all__ = ["PresenceHub", "PresenceWatch", "WatchOwner"]

logger = logging.getLogger("websocket_multiplex")

Send = Callable[[str], "Awaitable[None] | None"]
"""Sends one ``prs`` payload to a client; what to await, if anything."""


class WatchOwner(Protocol):
    """What a :class:`PresenceWatch` asks of its hub."""

    async def begin(self, watch: PresenceWatch) -> None:
        """Feed ``watch`` from now on; returns once the broker reports its
        group's changes."""
        ...

    async def end(self, watch: PresenceWatch) -> None:
        """Feed ``watch`` no more."""
        ...

    async def members(self, group: str) -> list[str]: ...


class PresenceWatch:
    """The members of one group, then their changes, as an async iterator.

    ::

        async with server.presence("lobby") as watch:
            async for event in watch:
                ...  # PresenceSnapshot, then MemberJoined / MemberLeft

    The first event is a :class:`~websocket_multiplex.PresenceSnapshot`;
    every change after it comes once, in order. A watcher that leaves more
    than ``Limits.presence_queue`` changes unread loses them and reads a
    snapshot with ``gap=True`` instead; so does every watcher after the
    broker lost its connection to the other processes. While the broker
    cannot list the members (Redis unreachable), the watch waits for it.
    Close it (``async with``, or :meth:`aclose`) when done: until then its
    group's changes are kept for it.
    """

    def __init__(self, owner: WatchOwner, group: str, limit: int) -> None:
        self.group = group
        self._owner = owner
        self._view = PresenceView(group, limit)
        self._wakeup = asyncio.Event()
        self._state: Literal["new", "watching", "closed"] = "new"

    def __repr__(self) -> str:
        return f"<PresenceWatch {self.group!r} {self._state} {self._view!r}>"

    @property
    def members(self) -> frozenset[str]:
        """The members as read so far (the last snapshot and the changes
        read since)."""
        return self._view.members

    # -- fed by the hub --------------------------------------------------------

    def feed(self, change: PresenceChange) -> None:
        self._view.changed(change)
        self._wakeup.set()

    def lose(self) -> None:
        self._view.lost()
        self._wakeup.set()

    # -- read by the application -------------------------------------------------

    def __aiter__(self) -> PresenceWatch:
        return self

    async def __anext__(self) -> PresenceEvent:
        if self._state == "new":
            self._state = "watching"
            try:
                await self._owner.begin(self)
            except BaseException:
                self._state = "closed"
                raise
        view = self._view
        while True:
            # Cleared before looking: a wake-up while fetching is not lost.
            self._wakeup.clear()
            if self._state == "closed":
                raise StopAsyncIteration
            if view.snapshot_due:
                began = view.begin_snapshot()
                try:
                    members = await self._owner.members(self.group)
                except BrokerUnavailable:
                    await self._wakeup.wait()  # the broker says when it is back
                    continue
                snapshot = view.snapshot(began, members)
                if snapshot is not None:
                    return snapshot
                continue  # changes were lost while fetching: fetch again
            change = view.next_event()
            if change is not None:
                return change
            await self._wakeup.wait()

    def stop(self) -> None:
        """The server closed: the reader stops (its hub forgot it)."""
        self._state = "closed"
        self._wakeup.set()

    async def aclose(self) -> None:
        """Stop watching; a reader waiting for the next event stops too."""
        if self._state == "closed":
            return
        began = self._state == "watching"
        self._state = "closed"
        self._wakeup.set()
        if began:
            await self._owner.end(self)

    async def __aenter__(self) -> PresenceWatch:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.aclose()


class GroupsHost(Protocol):
    """What the hub needs of the server's groups (a
    :class:`~websocket_multiplex.asyncio.groups.Groups`)."""

    @property
    def broker(self) -> Broker: ...

    async def start_broker(self) -> None: ...

    async def members(self, group: str) -> list[str]: ...


class PresenceHub:
    """Every presence watcher of one server, fed by its broker."""

    def __init__(self, groups: GroupsHost, limits: Limits) -> None:
        self._groups = groups
        self._limits = limits
        broker = groups.broker
        self._broker = broker if isinstance(broker, PresenceBroker) else None
        if self._broker is not None:
            self._broker.listen_presence(self)
        self._watches: dict[str, set[PresenceWatch]] = {}
        # One broker watch per group, shared by every local watcher.
        self._watching: dict[str, asyncio.Future[None]] = {}
        # Shared with clients: per connection, per channel, per group.
        self._shares: dict[object, dict[tuple[object, str], asyncio.Task[None]]] = {}

    def watch(self, group: str) -> PresenceWatch:
        """See :meth:`MultiplexServer.presence`."""
        if self._broker is None:
            raise LocalProtocolError(
                f"{type(self._groups.broker).__name__} reports no presence "
                "changes: use a broker that implements "
                "websocket_multiplex.fanout.PresenceBroker (InMemoryBroker "
                "and RedisBroker do), or poll members()"
            )
        return PresenceWatch(self, group, self._limits.presence_queue)

    # -- the broker's PresenceListener -------------------------------------------

    def changed(self, change: PresenceChange) -> None:
        for watch in tuple(self._watches.get(change.group, ())):
            watch.feed(change)

    def lost(self, group: str) -> None:
        for watch in tuple(self._watches.get(group, ())):
            watch.lose()

    # -- the watches' WatchOwner -------------------------------------------------

    async def begin(self, watch: PresenceWatch) -> None:
        assert self._broker is not None
        group = watch.group
        self._watches.setdefault(group, set()).add(watch)
        try:
            await self._groups.start_broker()
            watching = self._watching.get(group)
            if watching is None:
                watching = asyncio.ensure_future(self._broker.watch_presence(group))
                self._watching[group] = watching
            try:
                await asyncio.shield(watching)
            except Exception:
                if self._watching.get(group) is watching:
                    del self._watching[group]  # the next watcher tries again
                raise
        except BaseException:
            await self.end(watch)
            raise

    async def end(self, watch: PresenceWatch) -> None:
        """The last watcher of a group gone: the broker stops watching it
        (after a watch still on its way, or it would land after)."""
        assert self._broker is not None
        group = watch.group
        watches = self._watches.get(group)
        if watches is None or watch not in watches:
            return
        watches.discard(watch)
        if watches:
            return
        del self._watches[group]
        watching = self._watching.get(group)
        if watching is None:
            return
        if not watching.done():
            await asyncio.wait([watching])
        if group in self._watches or self._watching.get(group) is not watching:
            return  # watched again meanwhile
        del self._watching[group]
        if not watching.cancelled() and watching.exception() is None:
            await self._broker.unwatch_presence(group)

    async def members(self, group: str) -> list[str]:
        return await self._groups.members(group)

    def close(self) -> None:
        """The server closes: every watch ends (its reader stops)."""
        watches, self._watches = self._watches, {}
        for group in watches.values():
            for watch in group:
                watch.stop()

    # -- shared with clients -----------------------------------------------------

    def share(
        self, connection: object, channel: object, group: str, send: Send
    ) -> None:
        """Send ``group``'s presence through ``send`` until :meth:`unshare`
        or :meth:`forget`; sharing it again does nothing."""
        shares = self._shares.get(connection, {})
        if (channel, group) in shares:
            return
        if len(shares) >= self._limits.max_presence_shares:
            raise LocalProtocolError(
                f"this connection already shares {len(shares)} groups' presence "
                "(Limits.max_presence_shares): unshare one first, or raise the limit"
            )
        watch = self.watch(group)  # raises if the broker reports no presence
        shares = self._shares.setdefault(connection, shares)
        task = asyncio.get_running_loop().create_task(
            _pump(watch, send), name=f"multiplex presence {group!r}"
        )
        shares[channel, group] = task
        task.add_done_callback(lambda _: self._done(connection, channel, group, task))

    def unshare(self, connection: object, channel: object, group: str) -> None:
        """Stop sending ``group``'s presence on ``channel``."""
        task = self._shares.get(connection, {}).get((channel, group))
        if task is not None:
            task.cancel()

    def forget(self, connection: object, channel: object) -> None:
        """``channel`` closed: whatever it shared stops."""
        for (sharer, _), task in tuple(self._shares.get(connection, {}).items()):
            if sharer is channel:
                task.cancel()

    def _done(
        self, connection: object, channel: object, group: str, task: asyncio.Task[None]
    ) -> None:
        shares = self._shares.get(connection)
        if shares is None or shares.get((channel, group)) is not task:
            return
        del shares[channel, group]
        if not shares:
            del self._shares[connection]
        if not task.cancelled() and task.exception() is not None:
            logger.error(
                "sharing the presence of %r failed", group, exc_info=task.exception()
            )


async def _pump(watch: PresenceWatch, send: Send) -> None:
    """Send every event of ``watch``; a client that reads slowly holds this
    one up (``send`` waits), so it falls behind and gets a gap instead."""
    async with watch:
        async for event in watch:
            pending = send(format_presence(event))
            if pending is not None:
                await pending
