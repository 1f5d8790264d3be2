"""Group membership of one server's channels, and fan-out through its broker.

A channel joins a group through :class:`Groups`; what the broker delivers
to a group is offered to each local member without waiting (fan-out never
waits for the slowest member: docs/LIMITS.md). Membership is kept here,
not on the channels.
"""

from __future__ import annotations

import asyncio

from ..exceptions import BrokerUnavailable, ChannelClosed
from ..fanout.broker import Broker, Delivery, Replay
from ..fanout.history import unseen
from ..streams import Position, publication_tail
from .channel import Channel

__all__ = ["Groups"]


class Groups:
    """The groups of one server's channels, over ``broker``."""

    def __init__(self, broker: Broker) -> None:
        self.broker = broker
        self._groups: dict[str, set[Channel]] = {}
        self._member_of: dict[Channel, set[str]] = {}
        # One broker subscription per group, shared by every local member:
        # a member's join returns once it is in place, not before.
        self._subscriptions: dict[str, asyncio.Future[None]] = {}
        # A join in progress, per channel and group: done once it ends.
        self._joins: dict[tuple[Channel, str], asyncio.Future[None]] = {}
        self._broker_started: asyncio.Future[None] | None = None
        self._membership_tasks: set[asyncio.Task[None]] = set()
        # Members replaying what they missed (section 4 of
        # docs/PROTOCOL-EXTENSIONS.md): the live messages held meanwhile.
        self._replaying: dict[tuple[Channel, str], list[Delivery]] = {}
        self._replaying_groups: dict[str, int] = {}

    def of(self, channel: Channel) -> frozenset[str]:
        """The groups ``channel`` is in (or joining)."""
        return frozenset(self._member_of.get(channel, ()))

    async def publish(
        self, group: str, message: str, *, exclude: Channel | None = None
    ) -> None:
        """See :meth:`MultiplexServer.publish`."""
        await self.start_broker()
        member = exclude.member_id if exclude is not None else None
        await self.broker.publish(Delivery(group, message, member))

    async def members(self, group: str) -> list[str]:
        """The member ids of ``group`` across every live server process."""
        await self.start_broker()
        return await self.broker.members(group)

    async def join(self, channel: Channel, group: str) -> None:
        # Joins of one channel to one group run one at a time: a second one
        # waits for the first, then returns if it succeeded, or tries again.
        while (earlier := self._joins.get((channel, group))) is not None:
            await asyncio.wait([earlier])
        if channel.close_reason is not None:
            raise ChannelClosed(channel.name, channel.close_reason)
        groups = self._member_of.setdefault(channel, set())
        if group in groups:
            return
        # Three awaits (the broker's first start, its subscription, the
        # presence write) during which the channel may close or leave. The
        # membership is recorded before the first, so that a close or a
        # leave() sees it and undoes whatever was done; after each, a join
        # that was undone goes no further. A channel whose close interrupted
        # its join gets ChannelClosed, as a join after the close would.
        groups.add(group)
        self._joins[channel, group] = done = asyncio.get_running_loop().create_future()
        since = channel.presented(group)
        try:
            await self.start_broker()
            if self._joining(channel, group):
                if since is not None:
                    self._hold(channel, group)
                self._groups.setdefault(group, set()).add(channel)
                await self._subscribed(group)
            if since is not None and self._joining(channel, group):
                await self._replay(channel, group, since)
            if self._joining(channel, group):
                await self.broker.set_presence(group, channel.member_id, True)
                if not self._joining(channel, group):
                    # Undone during the write: its removal may have gone first.
                    await self.broker.set_presence(group, channel.member_id, False)
        except BaseException:  # failed or cancelled: undone, to be tried again
            self._discard(channel, group)
            await self._drop_member(channel, group)
            raise
        finally:
            if since is not None:
                self._release(channel, group)
            del self._joins[channel, group]
            done.set_result(None)
        if channel.close_reason is not None:
            raise ChannelClosed(channel.name, channel.close_reason)

    def _hold(self, channel: Channel, group: str) -> None:
        """Hold ``group``'s live messages for ``channel`` while it replays."""
        self._replaying[channel, group] = []
        self._replaying_groups[group] = self._replaying_groups.get(group, 0) + 1

    def _release(self, channel: Channel, group: str) -> list[Delivery]:
        """Stop holding; what was held."""
        held = self._replaying.pop((channel, group), None)
        if held is None:
            return []
        count = self._replaying_groups[group] - 1
        if count:
            self._replaying_groups[group] = count
        else:
            del self._replaying_groups[group]
        return held

    async def _replay(self, channel: Channel, group: str, since: Position) -> None:
        """Give ``channel`` what ``group``'s history holds after ``since``,
        then the live messages held meanwhile that it has not had: each
        once, in order; a ``gap`` first if the history lacks some."""
        try:
            replay = await self.broker.history(group, since)
        except BrokerUnavailable:
            replay = Replay((), complete=False)
        if not self._joining(channel, group):
            return
        if not replay.complete:
            channel.offer_gap(group)
        member = channel.member_id
        held = self._release(channel, group)
        for delivery in unseen(since, (*replay.deliveries, *held)):
            if delivery.exclude != member:
                channel.offer_publication(delivery.message, _tail(delivery))

    def _joining(self, channel: Channel, group: str) -> bool:
        """Whether a join of ``group`` still stands: no leave() or close since."""
        return channel.close_reason is None and group in self._member_of.get(
            channel, ()
        )

    def _discard(self, channel: Channel, group: str) -> None:
        groups = self._member_of.get(channel)
        if groups is not None:
            groups.discard(group)
            if not groups:
                del self._member_of[channel]

    async def _subscribed(self, group: str) -> None:
        subscription = self._subscriptions.get(group)
        if subscription is None:
            subscription = asyncio.ensure_future(self.broker.subscribe(group))
            self._subscriptions[group] = subscription
        try:
            await asyncio.shield(subscription)
        except Exception:
            if self._subscriptions.get(group) is subscription:
                del self._subscriptions[group]  # the next join tries again
            raise

    async def leave(self, channel: Channel, group: str) -> None:
        if group not in self._member_of.get(channel, ()):
            return
        self._discard(channel, group)
        await self._drop_member(channel, group)

    async def _drop_member(self, channel: Channel, group: str) -> None:
        """Undo a join: deliveries, then the subscription if it was the last
        local member, then presence. A join still waiting for the broker to
        start has done nothing yet: it stops by itself."""
        members = self._groups.get(group)
        if members is None or channel not in members:
            return
        members.discard(channel)
        if not members:
            del self._groups[group]
            await self._unsubscribe(group)
        await self.broker.set_presence(group, channel.member_id, False)

    async def _unsubscribe(self, group: str) -> None:
        """The last local member left: drop the group's subscription. One
        still on its way is waited for, not cancelled, or it would land
        after the unsubscribe; a member that joins meanwhile shares it, and
        then it stays."""
        subscription = self._subscriptions.get(group)
        if subscription is None:
            return  # its subscribe failed: nothing to undo
        if not subscription.done():
            await asyncio.wait([subscription])  # does not cancel it
        if group in self._groups or self._subscriptions.get(group) is not subscription:
            return  # joined again meanwhile, or failed and forgotten
        del self._subscriptions[group]
        if not subscription.cancelled() and subscription.exception() is None:
            await self.broker.unsubscribe(group)

    def forget(self, channel: Channel) -> None:
        """A closed channel leaves its groups (from a synchronous path)."""
        for group in self._member_of.pop(channel, ()):
            task = asyncio.get_running_loop().create_task(
                self._drop_member(channel, group)
            )
            self._membership_tasks.add(task)
            task.add_done_callback(self._membership_tasks.discard)

    def deliver(self, delivery: Delivery) -> None:
        members = self._groups.get(delivery.group)
        if not members:
            return
        message, tail = delivery.message, _tail(delivery)
        replaying = delivery.group in self._replaying_groups
        for channel in list(members):
            if channel.member_id == delivery.exclude:
                continue
            if replaying:
                held = self._replaying.get((channel, delivery.group))
                if held is not None:
                    held.append(delivery)
                    continue
            channel.offer_publication(message, tail)

    async def start_broker(self) -> None:
        if self._broker_started is None:
            self._broker_started = asyncio.ensure_future(
                self.broker.start(self.deliver)
            )
        await asyncio.shield(self._broker_started)

    async def close(self) -> None:
        """Wait for membership changes under way, then stop the broker."""
        if self._membership_tasks:
            await asyncio.gather(*self._membership_tasks, return_exceptions=True)
        if self._broker_started is not None:
            self._broker_started = None
            await self.broker.close()


def _tail(delivery: Delivery) -> str | None:
    """The ``pub`` frame's tail of ``delivery``, if it has a position."""
    position = delivery.position
    if position is None:
        return None
    return publication_tail(delivery.group, position, delivery.message)
