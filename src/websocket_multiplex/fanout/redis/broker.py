"""The Redis broker: the :class:`~websocket_multiplex.fanout.Broker` that
composes a subscriber session, a publisher and presence.

This module holds no Redis logic of its own: it checks the settings, makes
the command client on start, runs the parts' tasks, and closes them in
order. Each part is in its own module (see the package docstring).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Literal

from redis.asyncio import Redis

from ...exceptions import LocalProtocolError
from ...streams import Position
from ..broker import BrokerUnavailable, Deliver, Delivery, Replay
from ..presence import PresenceListener
from .history import StreamHistory
from .link import LOST, command_client
from .presence import Presence
from .publisher import Publisher
from .subscriber import DEFAULT_RECONNECT, ReconnectDelays, Subscriber
from .wire import Names, redact

__all__ = ["RedisBroker"]


class RedisBroker:
    """Fan-out and presence across server processes through Redis.

    ::

        server = MultiplexServer(broker=RedisBroker("redis://redis:6379/0"))

    Every process subscribes once to each group that has a member there, so
    Redis carries each message once per interested process, not once per
    channel. Messages from one process arrive everywhere in the order it
    published them.

    **When Redis goes away** the broker logs ``redis unreachable at <url>,
    retrying in <n> s`` (WARNING), retries with ``reconnect`` delays
    (exponential with jitter by default; any object with a
    ``delay(attempt)`` method, e.g. :class:`websocket_multiplex.Backoff`,
    whose ``max_attempts`` is ignored: the broker never gives up), logs
    ``redis reachable again`` when it is back, subscribes every current
    group again and registers the presence of every local member again.
    Joining and leaving keep working meanwhile; :meth:`members` raises
    :class:`~websocket_multiplex.fanout.BrokerUnavailable`, since it cannot
    see the other processes.

    **Publishes during an outage** are buffered, up to ``outage_buffer``
    messages, and sent in order once Redis is back. Messages published by
    other processes during the outage come to this one from the groups'
    histories once it is back (see below); without a history
    (``history_size=0``) they are lost for it. When the buffer is full,
    :meth:`publish` raises ``BrokerUnavailable`` and the message is *not*
    published. The policy is to fail loudly rather than drop silently: the
    caller knows which message was refused and can tell its client, retry
    or drop it; memory stays bounded. The messages of a pipeline cut by the
    outage are sent again, so a message published just as Redis fails may
    arrive twice.

    **Histories** (docs/PROTOCOL-EXTENSIONS.md, section 4): each publish
    is also kept in a stream per group, trimmed to ``history_size``
    messages, none replayed once older than ``history_age`` seconds (both
    keys of a group expire that long after its last publish). A handler
    that joins a group for a client of ours that lost its session replays
    what that client missed (:meth:`history`); a process back from an
    outage delivers what its groups published meanwhile before the live
    messages, once each, and logs a warning for what the history no longer
    held. Publishing is one Lua script (count, append, publish), so Redis
    6.2 or later, and an ACL allowing ``EVALSHA``.

    **Presence** lives in a sorted set per group (see
    :mod:`~websocket_multiplex.fanout.redis.presence`). Entries expire
    ``presence_ttl`` seconds after the last refresh, so process clocks must
    agree to well within ``presence_ttl``. Each change is announced once on
    the group's changes channel (:mod:`~websocket_multiplex.fanout.redis.changes`),
    which only processes that watch the group subscribe; the members of a
    dead process are announced as expired by the first live process that
    sweeps them, within ``presence_ttl * 4 / 3``. After an outage, every
    watcher reads a snapshot marked as a gap.

    A command Redis *refuses* (say, for want of an ACL permission) is logged
    at ERROR rather than retried, and a refused publish raises
    ``BrokerUnavailable``: reconnecting would not help.

    ``timeout`` (seconds) bounds connecting and each command; a command
    that takes longer counts as a lost connection. The subscriber
    connection waits for messages without a timeout; it is PINGed every
    ``presence_ttl / 3`` seconds, and counts as lost if the PONG has not
    come by the next time. Call :meth:`close` (the server does, in
    :meth:`MultiplexServer.close`) to stop the background tasks and close
    both connections.
    """

    def __init__(
        self,
        url: str = "redis://127.0.0.1:6379/0",
        *,
        channel_prefix: str = "websocket-multiplex:",
        outage_buffer: int = 1000,
        reconnect: ReconnectDelays = DEFAULT_RECONNECT,
        presence_ttl: float = 30.0,
        timeout: float = 5.0,
        history_size: int = 1000,
        history_age: float = 300.0,
    ) -> None:
        if outage_buffer < 0:
            raise ValueError("outage_buffer must be 0 or more")
        if presence_ttl <= 0 or timeout <= 0:
            raise ValueError("presence_ttl and timeout must be positive")
        self.url = url
        self.channel_prefix = channel_prefix
        self.outage_buffer = outage_buffer
        self.reconnect = reconnect
        self.presence_ttl = presence_ttl
        self.timeout = timeout
        self._state: Literal["new", "running", "closed"] = "new"
        self._client: Redis | None = None
        self._tasks: list[asyncio.Task[None]] = []
        names, where = Names(channel_prefix), redact(url)
        self._history = (
            StreamHistory(names, size=history_size, age=history_age)
            if history_size
            else None
        )
        self._subscriber = Subscriber(url, names, reconnect=reconnect, timeout=timeout)
        self._publisher = Publisher(
            names,
            self._subscriber,
            outage_buffer=outage_buffer,
            where=where,
            history=self._history,
        )
        self._presence = Presence(
            names, self._subscriber, ttl=presence_ttl, timeout=timeout, where=where
        )

    def __repr__(self) -> str:
        closed = self._state == "closed"
        state = "up" if self._subscriber.up else "closed" if closed else "down"
        return f"<RedisBroker {redact(self.url)} {state}>"

    # -- the Broker protocol -----------------------------------------------------

    async def start(self, deliver: Deliver) -> None:
        """Connect and start the background tasks; returns after the first
        connection attempt, whether or not Redis answered."""
        if self._state != "new":
            raise LocalProtocolError("a RedisBroker serves one server, once")
        self._state = "running"
        client = self._client = command_client(self.url, self.timeout)
        self._presence.attach(client)
        if self._history is not None:
            self._history.attach(client)
        self._subscriber.start(
            deliver, _Parts(client, self._publisher, self._presence, self._history)
        )
        self._tasks = [
            asyncio.create_task(self._subscriber.run(), name="redis-broker-subscriber"),
            asyncio.create_task(
                self._publisher.run(client), name="redis-broker-publisher"
            ),
            asyncio.create_task(
                self._subscriber.keep_alive(self.presence_ttl / 3),
                name="redis-broker-presence",
            ),
        ]
        await self._subscriber.first_attempt()

    async def subscribe(self, group: str) -> None:
        """Subscribe ``group``; returns once Redis confirmed it (or once the
        connection is lost: the next session subscribes it again)."""
        await self._subscriber.subscribe(group)

    async def unsubscribe(self, group: str) -> None:
        await self._subscriber.unsubscribe(group)

    async def publish(self, delivery: Delivery) -> None:
        """Hand ``delivery`` to Redis; returns once Redis took it or, while
        Redis is unreachable, once it is buffered. Raises
        :class:`BrokerUnavailable` if the broker is not running or the
        outage buffer is full."""
        if self._state != "running":
            raise BrokerUnavailable("the Redis broker is not running")
        await self._publisher.publish(delivery)

    async def set_presence(self, group: str, member: str, present: bool) -> None:
        """Record locally, then in Redis if connected; a process that is not
        connected writes everything when it reconnects."""
        await self._presence.set(group, member, present)

    async def members(self, group: str) -> list[str]:
        """The members of ``group`` in every process whose entries have not
        expired. Raises :class:`BrokerUnavailable` while Redis is unreachable."""
        return await self._presence.members(group)

    async def history(self, group: str, since: Position) -> Replay:
        """What the stream of ``group`` holds after ``since``. Raises
        :class:`BrokerUnavailable` while Redis is unreachable."""
        if self._history is None:
            return Replay((), complete=False)
        if self._client is None or not self._subscriber.up:
            raise BrokerUnavailable(f"redis unreachable at {redact(self.url)}")
        try:
            return await self._history.since(self._client, group, since)
        except LOST as exc:
            raise BrokerUnavailable(f"redis unreachable at {redact(self.url)}") from exc

    # -- presence events (fanout/presence.py) ------------------------------------

    def listen_presence(self, listener: PresenceListener) -> None:
        """Report presence changes of watched groups to ``listener``."""
        self._presence.listen(listener)

    async def watch_presence(self, group: str) -> None:
        """Report ``group``'s changes from every process; returns once
        subscribed to its changes channel (or once the connection is lost:
        the next session subscribes it, and reports a gap)."""
        self._presence.watch(group)
        await self._subscriber.watch(group)

    async def unwatch_presence(self, group: str) -> None:
        self._presence.unwatch(group)
        await self._subscriber.unwatch(group)

    async def close(self) -> None:
        """Stop the background tasks and close both connections. Messages
        still buffered for an outage are dropped, with a warning."""
        if self._state == "closed":
            return
        if self._subscriber.up and self._presence.local:
            await self._presence.forget()
        self._state = "closed"
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._publisher.drop()
        if self._client is not None:
            await self._client.aclose()
        await self._subscriber.close()


@dataclass(frozen=True, slots=True)
class _Parts:
    """What each subscriber session asks of the other parts (its
    :class:`~.subscriber.SessionOwner`)."""

    client: Redis
    publisher: Publisher
    presence: Presence
    history: StreamHistory | None

    @property
    def buffered(self) -> int:
        return self.publisher.buffered

    async def restore(self) -> None:
        await self.client.ping()  # publishes and presence go through this one
        await self.presence.refresh()
        self.presence.resynced()  # last: the session goes up right after it

    async def refresh(self) -> None:
        await self.presence.refresh()

    def session_ended(self) -> None:
        self.publisher.release()

    async def recover(self, group: str, since: Position | None) -> Replay:
        if self.history is None:
            return Replay((), complete=True)  # positions come only with one
        return await self.history.recover(self.client, group, since)

    async def head(self, group: str) -> Position | None:
        if self.history is None:
            return None
        return await self.history.head(self.client, group)

    def presence_changed(self, group: str, payload: bytes) -> None:
        self.presence.received(group, payload)
