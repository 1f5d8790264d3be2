"""What the parts of the Redis broker share: its two connections, what
counts as losing one, and the :class:`Link` through which the publisher and
presence follow the subscriber session.

The subscriber session decides whether Redis is *up*. A session begins when
the pub/sub connection connects and ends when it is lost, or when a command
on the other connection (a publish, a presence write) finds that one lost
and calls :meth:`Link.fail`. So everything goes down and comes back
together, and one loop (:class:`~.subscriber.Subscriber`) reconnects.
"""

from __future__ import annotations

import logging
from typing import Protocol

from redis.asyncio import ConnectionPool, Redis
from redis.asyncio.client import Pipeline
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

__all__ = [
    "LOST",
    "Link",
    "command_client",
    "describe",
    "execute",
    "logger",
    "subscriber_pool",
]

logger = logging.getLogger("websocket_multiplex.fanout.redis")
"""One logger for every part: operators filter on the broker, not its rooms."""

LOST = (RedisConnectionError, RedisTimeoutError, OSError, TimeoutError)
"""A connection failed: end the session; the broker reconnects, subscribes
again and flushes what it buffered meanwhile. (A command that Redis refuses,
e.g. for want of an ACL permission, is logged instead: reconnecting would
not help.)"""


class Link(Protocol):
    """What the publisher and presence need of the subscriber session (a
    :class:`~.subscriber.Subscriber` implements it)."""

    @property
    def up(self) -> bool:
        """Connected, subscribed and restored: commands may go to Redis."""
        ...

    @property
    def connected(self) -> bool:
        """A session holds a connection, up or still restoring."""
        ...

    @property
    def session(self) -> int:
        """The current session's number: pass it to :meth:`fail`."""
        ...

    async def wait_up(self) -> None:
        """Return once Redis is up (at once if it is)."""
        ...

    def fail(self, exc: BaseException, session: int) -> None:
        """A command of ``session`` lost its connection (``exc`` is one of
        :data:`LOST`): end that session, unless a newer one has begun."""
        ...


# No retries inside redis-py: a failure ends the session, and the broker's
# own loop reconnects, resubscribes and logs.


def command_client(url: str, timeout: float) -> Redis:
    """The client for publishes and presence: ``timeout`` bounds connecting
    and each command (one that takes longer counts as a lost connection)."""
    return Redis.from_url(
        url,
        retry=Retry(NoBackoff(), 0),
        socket_connect_timeout=timeout,
        socket_timeout=timeout,
    )


def subscriber_pool(url: str, timeout: float) -> ConnectionPool:
    """Where subscriber connections come from. They wait for messages for as
    long as it takes: the keep-alive PINGs them to notice a silent peer."""
    return ConnectionPool.from_url(
        url,
        retry=Retry(NoBackoff(), 0),
        socket_connect_timeout=timeout,
        socket_timeout=None,
    )


async def execute(pipe: Pipeline, what: str) -> list[object]:
    """Run ``pipe``; log the commands Redis refused (their results are the
    errors) instead of raising: only a lost connection raises."""
    results: list[object] = await pipe.execute(raise_on_error=False)
    refused = [result for result in results if isinstance(result, RedisError)]
    if refused:
        logger.error(
            "redis refused %d of %d %s commands: %s",
            len(refused),
            len(results),
            what,
            refused[0],
        )
    return results


def describe(exc: BaseException) -> str:
    """``exc`` for a log line: its message, or its type if it has none."""
    return str(exc) or type(exc).__name__
