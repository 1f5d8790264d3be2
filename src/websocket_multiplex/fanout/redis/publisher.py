"""Publishing through Redis, in order, with a bounded backlog for outages.

Every publish joins one queue, the backlog, which a single task writes to
Redis in pipelines while the :class:`~.link.Link` is up: so messages leave
in the order they were published. While Redis is down the backlog holds up
to ``outage_buffer`` messages and :meth:`Publisher.publish` refuses the
next ones (loudly, with ``BrokerUnavailable``, rather than dropping them
silently); memory stays bounded.
"""

from __future__ import annotations

import asyncio
import itertools
from collections import deque
from dataclasses import dataclass

from redis.asyncio import Redis
from redis.exceptions import RedisError

from ..broker import BrokerUnavailable, Delivery
from .history import StreamHistory
from .link import LOST, Link, execute, logger
from .wire import Names, encode

__all__ = ["PUBLISH_BATCH", "Publisher"]

PUBLISH_BATCH = 500
"""At most this many buffered messages go to Redis in one pipeline."""


@dataclass(eq=False, slots=True)
class Outgoing:
    """One message in the backlog, encoded for its channel."""

    group: str
    channel: str
    payload: str
    published: asyncio.Future[None] | None = None
    """Resolved once Redis took it, or once it is buffered for an outage."""


class Publisher:
    """The backlog and the task that empties it into Redis.

    Call :meth:`run` (as a task) with the command client, :meth:`release`
    whenever the session ends, and :meth:`drop` on close.
    """

    def __init__(
        self,
        names: Names,
        link: Link,
        *,
        outage_buffer: int,
        where: str,
        history: StreamHistory | None = None,
    ) -> None:
        self._names = names
        self._history = history
        self._link = link
        self._outage_buffer = outage_buffer
        self._where = where  # the Redis URL, redacted for messages
        self._backlog: deque[Outgoing] = deque()
        # Set whenever the backlog is not empty (and then some).
        self._work = asyncio.Event()

    @property
    def buffered(self) -> int:
        """Messages waiting for Redis to take them."""
        return len(self._backlog)

    async def publish(self, delivery: Delivery) -> None:
        """Returns once Redis took ``delivery`` or, while Redis is down, once
        it is buffered; raises :class:`BrokerUnavailable` if the outage
        buffer is full (the message is then *not* published)."""
        group = delivery.group
        item = Outgoing(group, self._names.channel(group), encode(delivery))
        if not self._link.up:
            if len(self._backlog) >= self._outage_buffer:
                raise BrokerUnavailable(
                    f"redis unreachable at {self._where} and "
                    f"{len(self._backlog)} messages already wait for it "
                    f"(outage_buffer): message to {delivery.group!r} not published"
                )
            self._enqueue(item)
            return
        item.published = asyncio.get_running_loop().create_future()
        self._enqueue(item)
        await item.published

    def release(self) -> None:
        """The session ended: whoever waits on a publish is released; the
        message stays buffered until the next session."""
        for item in self._backlog:
            if item.published is not None and not item.published.done():
                item.published.set_result(None)

    async def run(self, client: Redis) -> None:
        """Publish the backlog in order, in pipelines, while Redis is up.

        A pipeline cut by a lost connection is sent again whole in the next
        session, so a message published just as Redis fails may arrive
        twice; none is lost.
        """
        while True:
            await self._work.wait()
            await self._link.wait_up()
            if not self._backlog:
                self._work.clear()
                continue
            session = self._link.session
            batch = list(itertools.islice(self._backlog, PUBLISH_BATCH))
            try:
                async with client.pipeline(transaction=False) as pipe:
                    history = self._history
                    for item in batch:
                        if history is not None:
                            await history.publish(pipe, item.group, item.payload)
                        else:
                            pipe.publish(item.channel, item.payload)
                    results = await execute(pipe, "publish")
            except LOST as exc:
                self._link.fail(exc, session)
                continue
            for result in results:
                self._settle(self._backlog.popleft(), result)

    def drop(self) -> None:
        """On close: forget the backlog, with a warning if it is not empty;
        whoever still waits on a publish gets ``BrokerUnavailable``."""
        if self._backlog:
            logger.warning(
                "closing with %d messages never published (redis unreachable at %s)",
                len(self._backlog),
                self._where,
            )
        for item in self._backlog:
            if item.published is not None and not item.published.done():
                item.published.set_exception(BrokerUnavailable("the broker closed"))
        self._backlog.clear()

    def _enqueue(self, item: Outgoing) -> None:
        self._backlog.append(item)
        self._work.set()

    @staticmethod
    def _settle(item: Outgoing, result: object) -> None:
        """Tell whoever waits on ``item`` what Redis answered: a refusal
        raises ``BrokerUnavailable`` there (reconnecting would not help)."""
        published = item.published
        if published is None or published.done():
            return
        if isinstance(result, RedisError):
            published.set_exception(
                BrokerUnavailable(f"redis refused the message: {result}")
            )
        else:
            published.set_result(None)
