"""Fan-out across server processes through Redis (``pip install
websocket-multiplex[redis]``); importing this module imports ``redis``.

What lives in Redis, with the default ``channel_prefix``:

``websocket-multiplex:group:<group>``
    The pub/sub channel of a group. A message is the JSON object
    ``{"m": <message>, "x": <excluded member id or null>}``.
``websocket-multiplex:presence:<group>``
    A sorted set: member id -> the Unix time at which the entry expires.
    Each process pushes the expiry of its own members forward every
    ``presence_ttl / 3`` seconds, so the members of a process that died
    without cleaning up disappear ``presence_ttl`` seconds later. The key
    itself expires when no process refreshes it any more.

Each process holds one subscriber connection (subscribed once to each group
that has a local member) and one client for publishes and presence.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import random
import time
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol
from urllib.parse import urlsplit, urlunsplit

from redis.asyncio import ConnectionPool, Redis
from redis.asyncio.client import Pipeline
from redis.asyncio.connection import AbstractConnection
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from ..exceptions import LocalProtocolError
from .broker import BrokerUnavailable, Deliver, Delivery

__all__ = ["ReconnectDelays", "RedisBroker"]

logger = logging.getLogger("websocket_multiplex.fanout.redis")

LOST = (RedisConnectionError, RedisTimeoutError, OSError, TimeoutError)
"""A connection failed: end the session; the broker reconnects, subscribes
again and flushes what it buffered meanwhile. (A command that Redis refuses,
e.g. for want of an ACL permission, is logged instead: reconnecting would
not help.)"""

STABLE_SESSION = 10.0
"""Seconds a session must last for the next outage to restart the backoff
from its first delay: a Redis that accepts and drops connections at once
gets ever longer delays."""

PUBLISH_BATCH = 500
"""At most this many buffered messages go to Redis in one pipeline."""


class ReconnectDelays(Protocol):
    """How long to wait before reconnection attempt ``attempt`` (from 0),
    e.g. :class:`websocket_multiplex.Backoff`."""

    def delay(self, attempt: int) -> float: ...


@dataclass(frozen=True, slots=True)
class _Backoff:
    # The same policy as websocket_multiplex.Backoff, which lives in a layer
    # above this one: exponential, capped, full jitter.
    initial: float = 0.1
    maximum: float = 5.0
    factor: float = 2.0

    def delay(self, attempt: int) -> float:
        ceiling = min(self.maximum, self.initial * self.factor ** min(attempt, 64))
        return random.uniform(0, ceiling)


DEFAULT_RECONNECT: ReconnectDelays = _Backoff()
"""Between 0 and 0.1 s before the first retry, doubling up to 5 s."""


@dataclass(eq=False, slots=True)
class _Outgoing:
    channel: str
    payload: str
    published: asyncio.Future[None] | None = None
    """Resolved once Redis took it, or once it is buffered for an outage."""


def encode(delivery: Delivery) -> str:
    """The wire format of one published message (ASCII-only JSON, so any
    string round-trips, lone surrogates included)."""
    return json.dumps({"m": delivery.message, "x": delivery.exclude})


def decode(group: str, payload: bytes) -> Delivery | None:
    """The :class:`Delivery` in ``payload``, or ``None`` if it is not ours."""
    try:
        fields = json.loads(payload)
    except ValueError:
        return None
    if not isinstance(fields, dict):
        return None
    message, exclude = fields.get("m"), fields.get("x")
    if isinstance(message, str) and (exclude is None or isinstance(exclude, str)):
        return Delivery(group, message, exclude)
    return None


def redact(url: str) -> str:
    """``url`` fit for a log line: the password, if any, replaced by ``***``."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    user, host = parts.username or "", parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{user}:***@{host}"))


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
    messages, and sent in order once Redis is back; messages published by
    other processes during the outage are lost for this one (Redis pub/sub
    keeps nothing). When the buffer is full, :meth:`publish` raises
    ``BrokerUnavailable`` and the message is *not* published. The policy is
    to fail loudly rather than drop silently: the caller knows which
    message was refused and can tell its client, retry or drop it; memory
    stays bounded. The messages of a pipeline cut by the outage are sent
    again, so a message published just as Redis fails may arrive twice.

    **Presence** lives in a sorted set per group (see the module
    docstring). Entries expire ``presence_ttl`` seconds after the last
    refresh, so process clocks must agree to well within ``presence_ttl``.

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
        self._deliver: Deliver | None = None
        self._closed = False
        self._client: Redis | None = None
        self._pool: ConnectionPool | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._started: asyncio.Future[None] | None = None
        # The session: one subscriber connection, from connect to loss.
        self._session = 0
        self._subscriber: AbstractConnection | None = None
        self._reader: asyncio.Task[None] | None = None
        self._failure: BaseException | None = None
        self._up = False
        self._up_event = asyncio.Event()
        self._down_since: float | None = None
        self._attempt = 0
        self._up_since: float | None = None
        self._pong_pending = False
        # What this process wants, restored on every new session.
        self._groups: set[str] = set()
        self._acks: dict[bytes, deque[asyncio.Future[None]]] = {}
        self._present: dict[str, set[str]] = {}
        self._departed: dict[str, set[str]] = {}
        self._presence_lock = asyncio.Lock()
        self._backlog: deque[_Outgoing] = deque()
        self._work = asyncio.Event()

    def __repr__(self) -> str:
        state = "up" if self._up else "closed" if self._closed else "down"
        return f"<RedisBroker {redact(self.url)} {state}>"

    # -- the Broker protocol -----------------------------------------------------

    async def start(self, deliver: Deliver) -> None:
        """Connect and start the background tasks; returns after the first
        connection attempt, whether or not Redis answered."""
        if self._deliver is not None or self._closed:
            raise LocalProtocolError("a RedisBroker serves one server, once")
        self._deliver = deliver
        # No retries inside redis-py: a failure ends the session, and the
        # broker's own loop reconnects, resubscribes and logs.
        self._client = Redis.from_url(
            self.url,
            retry=Retry(NoBackoff(), 0),
            socket_connect_timeout=self.timeout,
            socket_timeout=self.timeout,
        )
        # The subscriber waits for messages for as long as it takes (the
        # presence refresh PINGs it to notice a silent peer).
        self._pool = ConnectionPool.from_url(
            self.url,
            retry=Retry(NoBackoff(), 0),
            socket_connect_timeout=self.timeout,
            socket_timeout=None,
        )
        self._started = asyncio.get_running_loop().create_future()
        self._tasks = [
            asyncio.create_task(self._supervise(), name="redis-broker-subscriber"),
            asyncio.create_task(self._write(), name="redis-broker-publisher"),
            asyncio.create_task(self._refresh(), name="redis-broker-presence"),
        ]
        await asyncio.shield(self._started)

    async def subscribe(self, group: str) -> None:
        """Subscribe ``group``; returns once Redis confirmed it (or once the
        connection is lost: the next session subscribes it again)."""
        if group in self._groups:
            return
        self._groups.add(group)
        connection, session = self._subscriber, self._session
        if connection is None or not connection.is_connected:
            return
        try:
            await self._subscribe_on(connection, [group])
        except LOST as exc:
            self._fail(exc, session)

    async def unsubscribe(self, group: str) -> None:
        if group not in self._groups:
            return
        self._groups.discard(group)
        connection, session = self._subscriber, self._session
        if connection is None or not connection.is_connected:
            return
        try:
            await connection.send_command("UNSUBSCRIBE", self._channel(group))
        except LOST as exc:
            self._fail(exc, session)

    async def publish(self, delivery: Delivery) -> None:
        """Hand ``delivery`` to Redis; returns once Redis took it or, while
        Redis is unreachable, once it is buffered. Raises
        :class:`BrokerUnavailable` if the broker is not running or the
        outage buffer is full."""
        if self._deliver is None or self._closed:
            raise BrokerUnavailable("the Redis broker is not running")
        item = _Outgoing(self._channel(delivery.group), encode(delivery))
        if not self._up:
            if len(self._backlog) >= self.outage_buffer:
                raise BrokerUnavailable(
                    f"redis unreachable at {redact(self.url)} and "
                    f"{len(self._backlog)} messages already wait for it "
                    f"(outage_buffer): message to {delivery.group!r} not published"
                )
            self._enqueue(item)
            return
        item.published = asyncio.get_running_loop().create_future()
        self._enqueue(item)
        await item.published

    async def set_presence(self, group: str, member: str, present: bool) -> None:
        """Record locally, then in Redis if connected; a process that is not
        connected writes everything when it reconnects."""
        self._record(group, member, present)
        if self._subscriber is None:
            return
        session = self._session
        try:
            async with self._presence_lock:
                await self._write_presence(group, member, present)
        except LOST as exc:
            self._fail(exc, session)

    async def members(self, group: str) -> list[str]:
        """The members of ``group`` in every process whose entries have not
        expired. Raises :class:`BrokerUnavailable` while Redis is unreachable."""
        if self._client is None or not self._up:
            raise BrokerUnavailable(
                f"redis unreachable at {redact(self.url)}: "
                f"the members of {group!r} across processes are unknown"
            )
        session = self._session
        try:
            found = await self._client.zrangebyscore(
                self._key(group), f"({time.time()}", "+inf"
            )
        except LOST as exc:
            self._fail(exc, session)
            raise BrokerUnavailable(
                f"redis unreachable at {redact(self.url)}: {exc}"
            ) from exc
        except RedisError as exc:
            raise BrokerUnavailable(f"redis refused ZRANGEBYSCORE: {exc}") from exc
        return sorted(_text(member) for member in found)

    async def close(self) -> None:
        """Stop the background tasks and close both connections. Messages
        still buffered for an outage are dropped, with a warning."""
        if self._closed:
            return
        if self._up and self._present:
            await self._forget_presence()
        self._closed = True
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self._started is not None and not self._started.done():
            self._started.set_result(None)
        if self._backlog:
            logger.warning(
                "closing with %d messages never published (redis unreachable at %s)",
                len(self._backlog),
                redact(self.url),
            )
        for item in self._backlog:
            if item.published is not None and not item.published.done():
                item.published.set_exception(BrokerUnavailable("the broker closed"))
        self._backlog.clear()
        if self._client is not None:
            await self._client.aclose()
        if self._pool is not None:
            await self._pool.disconnect()

    # -- names in Redis ----------------------------------------------------------

    def _channel(self, group: str) -> str:
        return f"{self.channel_prefix}group:{group}"

    def _key(self, group: str) -> str:
        return f"{self.channel_prefix}presence:{group}"

    # -- the subscriber session --------------------------------------------------

    async def _supervise(self) -> None:
        """Run sessions forever; between them, wait ``reconnect`` delays."""
        while True:
            reason = await self._run_session()
            if self._started is not None and not self._started.done():
                self._started.set_result(None)
            loop_time = asyncio.get_running_loop().time()
            if (
                self._up_since is not None
                and loop_time - self._up_since > STABLE_SESSION
            ):
                self._attempt = 0
            self._up_since = None
            delay = self.reconnect.delay(self._attempt)
            self._attempt += 1
            unexpected = None if isinstance(reason, LOST) else reason
            if self._down_since is None:
                self._down_since = loop_time
                logger.warning(
                    "redis unreachable at %s, retrying in %.2f s (%s)",
                    redact(self.url),
                    delay,
                    _describe(reason),
                    exc_info=unexpected,
                )
            else:
                logger.info(
                    "redis still unreachable at %s, retrying in %.2f s (%s)",
                    redact(self.url),
                    delay,
                    _describe(reason),
                    exc_info=unexpected,
                )
            await asyncio.sleep(delay)

    async def _run_session(self) -> BaseException:
        """Connect, restore subscriptions and presence, go up, and read until
        the connection is lost; returns why it ended."""
        assert self._pool is not None and self._client is not None
        self._session += 1
        self._failure = None
        self._pong_pending = False
        connection = self._pool.make_connection()  # type: ignore[no-untyped-call]
        reader: asyncio.Task[None] | None = None
        try:
            await connection.connect()
            self._subscriber = connection
            reader = self._reader = asyncio.create_task(self._read(connection))
            if self._groups:
                await self._subscribe_on(connection, list(self._groups))
            await self._client.ping()
            async with self._presence_lock:
                await self._write_all_presence()
            if self._failure is None and not reader.done():
                self._mark_up()
                await asyncio.wait({reader})
            return self._why(reader)
        except Exception as exc:  # LOST, a refusal or a bug: start over
            return exc
        finally:
            self._subscriber = self._reader = None
            self._mark_down()
            if reader is not None:
                reader.cancel()
                await asyncio.wait({reader})
                if not reader.cancelled():
                    reader.exception()  # retrieved: the returned reason says it
            await connection.disconnect(nowait=True)

    async def _subscribe_on(
        self, connection: AbstractConnection, groups: list[str]
    ) -> None:
        """Send one SUBSCRIBE; wait (bounded) until Redis confirmed each
        group, or until the reader stopped (which releases every wait)."""
        channels = [self._channel(group) for group in groups]
        loop = asyncio.get_running_loop()
        confirmed = []
        for channel in channels:
            future = loop.create_future()
            self._acks.setdefault(channel.encode(), deque()).append(future)
            confirmed.append(future)
        await connection.send_command("SUBSCRIBE", *channels)
        async with asyncio.timeout(self.timeout):
            await asyncio.gather(*confirmed)

    async def _read(self, connection: AbstractConnection) -> None:
        """Deliver what the subscriber connection receives, in order."""
        try:
            while True:
                self._handle(await connection.read_response(push_request=True))
        finally:
            for waiting in self._acks.values():
                for future in waiting:
                    if not future.done():
                        future.set_result(None)
            self._acks.clear()

    def _handle(self, reply: object) -> None:
        if reply == b"PONG":  # PING outside subscribed mode (no groups)
            self._pong_pending = False
            return
        if not isinstance(reply, list) or not reply:
            return
        kind = reply[0]
        if kind == b"message":
            self._receive(reply[1], reply[2])
        elif kind == b"subscribe":
            waiting = self._acks.get(reply[1])
            if waiting:
                future = waiting.popleft()
                if not waiting:
                    del self._acks[reply[1]]
                if not future.done():
                    future.set_result(None)
        elif kind == b"pong":
            self._pong_pending = False

    def _receive(self, channel: bytes, payload: bytes) -> None:
        group = channel.decode()[len(self._channel("")) :]
        if group not in self._groups or self._deliver is None:
            return  # unsubscribed while this one was on its way
        delivery = decode(group, payload)
        if delivery is None:
            logger.warning(
                "ignoring a message on %s that is not {m, x} JSON: %r",
                channel.decode(),
                payload[:80],
            )
            return
        try:
            self._deliver(delivery)
        except Exception:
            # One failing delivery must not end the subscription of every group.
            logger.exception("delivering a message of group %r failed", group)

    def _why(self, reader: asyncio.Task[None]) -> BaseException:
        failure = None if reader.cancelled() else reader.exception()
        return failure or self._failure or ConnectionError("connection lost")

    def _fail(self, exc: BaseException, session: int) -> None:
        """A command of ``session`` failed: end that session (once)."""
        if session != self._session or self._reader is None:
            return
        if self._failure is None:
            self._failure = exc
        self._mark_down()
        self._reader.cancel()

    def _mark_up(self) -> None:
        self._up = True
        self._up_event.set()
        self._up_since = asyncio.get_running_loop().time()
        if self._started is not None and not self._started.done():
            self._started.set_result(None)
        if self._down_since is not None:
            # As loud as the loss, so that whoever saw one sees the other.
            logger.warning(
                "redis reachable again at %s after %.1f s: %d groups subscribed "
                "again, %d buffered messages to publish",
                redact(self.url),
                asyncio.get_running_loop().time() - self._down_since,
                len(self._groups),
                len(self._backlog),
            )
            self._down_since = None
        if self._backlog:
            self._work.set()

    def _mark_down(self) -> None:
        """Stop publishing; whoever waits on a publish is released: the
        message stays buffered until the next session."""
        self._up = False
        self._up_event.clear()
        for item in self._backlog:
            if item.published is not None and not item.published.done():
                item.published.set_result(None)

    # -- publishing ----------------------------------------------------------------

    def _enqueue(self, item: _Outgoing) -> None:
        self._backlog.append(item)
        self._work.set()

    async def _write(self) -> None:
        """Publish the backlog in order, in pipelines, while Redis is up."""
        assert self._client is not None
        while True:
            await self._work.wait()
            await self._up_event.wait()
            if not self._backlog:
                self._work.clear()
                continue
            session = self._session
            batch = list(itertools.islice(self._backlog, PUBLISH_BATCH))
            try:
                async with self._client.pipeline(transaction=False) as pipe:
                    for item in batch:
                        pipe.publish(item.channel, item.payload)
                    results = await _execute(pipe, "publish")
            except LOST as exc:
                self._fail(exc, session)
                continue
            for result in results:
                published = self._backlog.popleft().published
                if published is None or published.done():
                    continue
                if isinstance(result, RedisError):
                    published.set_exception(
                        BrokerUnavailable(f"redis refused the message: {result}")
                    )
                else:
                    published.set_result(None)

    # -- presence ------------------------------------------------------------------

    def _record(self, group: str, member: str, present: bool) -> None:
        here, gone = self._present, self._departed
        if not present:
            here, gone = gone, here
        here.setdefault(group, set()).add(member)
        members = gone.get(group)
        if members is not None:
            members.discard(member)
            if not members:
                del gone[group]

    async def _write_presence(self, group: str, member: str, present: bool) -> None:
        assert self._client is not None
        key = self._key(group)
        async with self._client.pipeline(transaction=False) as pipe:
            if present:
                pipe.zadd(key, {member: time.time() + self.presence_ttl})
                pipe.pexpire(key, int(self.presence_ttl * 1000))
            else:
                pipe.zrem(key, member)
            await _execute(pipe, "presence")
        if not present:
            self._record_written(group, [member])

    async def _write_all_presence(self) -> None:
        """Push every local member's expiry forward, remove those that left
        while Redis was unreachable, and drop entries that expired."""
        assert self._client is not None
        now = time.time()
        departed = {group: list(gone) for group, gone in self._departed.items()}
        async with self._client.pipeline(transaction=False) as pipe:
            for group, members in self._present.items():
                key = self._key(group)
                pipe.zadd(key, dict.fromkeys(members, now + self.presence_ttl))
                pipe.pexpire(key, int(self.presence_ttl * 1000))
                pipe.zremrangebyscore(key, "-inf", now)
            for group, gone in departed.items():
                pipe.zrem(self._key(group), *gone)
            await _execute(pipe, "presence")
        for group, gone in departed.items():
            self._record_written(group, gone)

    def _record_written(self, group: str, departed: Iterable[str]) -> None:
        """Those who left ``group`` are gone from Redis too."""
        members = self._departed.get(group)
        if members is not None:
            members.difference_update(departed)
            if not members:
                del self._departed[group]

    async def _refresh(self) -> None:
        """Every ``presence_ttl / 3``: refresh presence, and check that the
        subscriber connection still answers (a PONG since the last tick)."""
        while True:
            await asyncio.sleep(self.presence_ttl / 3)
            connection, session = self._subscriber, self._session
            if not self._up or connection is None:
                continue
            try:
                if self._pong_pending:
                    raise TimeoutError("the subscriber connection stopped answering")
                self._pong_pending = True
                await connection.send_command("PING")
                async with self._presence_lock:
                    await self._write_all_presence()
            except LOST as exc:
                self._fail(exc, session)

    async def _forget_presence(self) -> None:
        """On close: remove this process's members now rather than at expiry."""
        assert self._client is not None
        try:
            async with (
                asyncio.timeout(self.timeout),
                self._presence_lock,
                self._client.pipeline(transaction=False) as pipe,
            ):
                for group, members in self._present.items():
                    pipe.zrem(self._key(group), *members)
                await _execute(pipe, "presence")
        except LOST as exc:
            logger.info("could not remove presence on close: %s", _describe(exc))


async def _execute(pipe: Pipeline, what: str) -> list[object]:
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


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _describe(exc: BaseException) -> str:
    return str(exc) or type(exc).__name__
