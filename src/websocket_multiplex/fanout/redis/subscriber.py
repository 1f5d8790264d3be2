"""The subscriber session: one pub/sub connection, from connect to loss,
then the next one.

A session connects, subscribes every group this process wants, lets its
owner restore the rest (presence), and is *up* until the connection is
lost or a command fails (:meth:`Subscriber.fail`); then the
:class:`Subscriber` waits a ``reconnect`` delay, logs, and starts the next
session. It is the :class:`~.link.Link` that the publisher and presence
follow, and it delivers what the connection receives.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Iterable
from typing import Protocol

from redis.asyncio import ConnectionPool
from redis.asyncio.connection import AbstractConnection

from ...backoff import Backoff
from ...streams import Position
from ..broker import Deliver, Delivery, Replay
from ..history import unseen
from .link import LOST, describe, logger, subscriber_pool
from .wire import Names, decode, redact

__all__ = [
    "DEFAULT_RECONNECT",
    "STABLE_SESSION",
    "Confirmations",
    "ReconnectDelays",
    "Retries",
    "SessionOwner",
    "Subscriber",
]

STABLE_SESSION = 10.0
"""Seconds a session must last for the next outage to restart the backoff
from its first delay: a Redis that accepts and drops connections at once
gets ever longer delays."""


class ReconnectDelays(Protocol):
    """How long to wait before reconnection attempt ``attempt`` (from 0),
    e.g. :class:`websocket_multiplex.Backoff`."""

    def delay(self, attempt: int) -> float: ...


DEFAULT_RECONNECT: ReconnectDelays = Backoff(initial=0.1, maximum=5.0)
"""Between 0 and 0.1 s before the first retry, doubling up to 5 s."""


class SessionOwner(Protocol):
    """What each session asks of the broker around it."""

    @property
    def buffered(self) -> int:
        """Messages waiting for Redis (the log line says how many)."""
        ...

    async def restore(self) -> None:
        """A new session subscribed its groups: check the command connection
        and write the rest of this process's state (presence) again. A lost
        connection raises (:data:`~.link.LOST`) and ends the session."""
        ...

    async def refresh(self) -> None:
        """Every keep-alive tick while up: refresh presence; raises alike."""
        ...

    def session_ended(self) -> None:
        """The session went down: release whoever waits on Redis."""
        ...

    async def recover(self, group: str, since: Position | None) -> Replay:
        """What this process missed of ``group`` since it last had
        ``since`` (see :meth:`.StreamHistory.recover`); raises
        alike."""
        ...

    async def head(self, group: str) -> Position | None:
        """Where ``group``'s history stands (``None``: it has none, or
        groups have no history here); raises alike."""
        ...

    def presence_changed(self, group: str, payload: bytes) -> None:
        """A change of a watched group's members came (see :mod:`.changes`)."""
        ...


class Retries:
    """Which reconnection attempt comes next, and since when Redis is down.

    Attempts count up across sessions that end at once, and start over
    after a session that lasted :data:`STABLE_SESSION`. Times are the event
    loop's clock, passed in.
    """

    def __init__(self) -> None:
        self.attempt = 0
        self.down_since: float | None = None
        self.up_since: float | None = None

    def went_up(self, now: float) -> float | None:
        """A session went up: how long Redis was down, if it was."""
        self.up_since = now
        down_since, self.down_since = self.down_since, None
        return None if down_since is None else now - down_since

    def next(self, now: float) -> tuple[int, bool]:
        """A session ended: the attempt number to wait for, and whether this
        is the first failure of an outage (worth a warning)."""
        if self.up_since is not None and now - self.up_since > STABLE_SESSION:
            self.attempt = 0
        self.up_since = None
        attempt, self.attempt = self.attempt, self.attempt + 1
        first = self.down_since is None
        if first:
            self.down_since = now
        return attempt, first


class Confirmations:
    """SUBSCRIBE confirmations awaited, per channel, in order."""

    def __init__(self) -> None:
        self._waiting: dict[bytes, deque[asyncio.Future[None]]] = {}

    def expect(self, channels: list[str]) -> list[asyncio.Future[None]]:
        """One future per channel, resolved by its :meth:`confirm`."""
        loop = asyncio.get_running_loop()
        futures = []
        for channel in channels:
            future = loop.create_future()
            self._waiting.setdefault(channel.encode(), deque()).append(future)
            futures.append(future)
        return futures

    def confirm(self, channel: bytes) -> None:
        """Redis confirmed one SUBSCRIBE of ``channel``."""
        waiting = self._waiting.get(channel)
        if waiting:
            future = waiting.popleft()
            if not waiting:
                del self._waiting[channel]
            if not future.done():
                future.set_result(None)

    def release_all(self) -> None:
        """The connection is gone: nobody waits any longer."""
        for waiting in self._waiting.values():
            for future in waiting:
                if not future.done():
                    future.set_result(None)
        self._waiting.clear()


class Subscriber:
    """The sessions of the subscriber connection, and the groups they carry.

    :meth:`start`, then run :meth:`run` and :meth:`keep_alive` as tasks;
    cancel them, then :meth:`close`. Groups may be subscribed before start:
    each session subscribes every current group.
    """

    def __init__(
        self, url: str, names: Names, *, reconnect: ReconnectDelays, timeout: float
    ) -> None:
        self._url = url
        self._names = names
        self._reconnect = reconnect
        self._timeout = timeout
        self._where = redact(url)  # for log lines
        self._groups: set[str] = set()
        self._watched: set[str] = set()  # groups whose presence changes we want
        self._changes_prefix = names.changes("").encode()
        self._confirmations = Confirmations()
        self._retries = Retries()
        self._tried = asyncio.Event()  # the first session ended or went up
        self._pool: ConnectionPool | None = None
        self._deliver: Deliver | None = None
        self._owner: SessionOwner | None = None
        # The session: one connection, from connect to loss.
        self._session = 0
        self._connection: AbstractConnection | None = None
        self._reader: asyncio.Task[None] | None = None
        self._failure: BaseException | None = None
        self._up = asyncio.Event()
        self._pong_pending = False
        # The last position delivered per group, and while a new session
        # recovers what this process missed, the live messages held.
        # A group whose history was empty at its subscription has None.
        self._last: dict[str, Position | None] = {}
        self._held: dict[str, list[Delivery]] | None = None

    def __repr__(self) -> str:
        state = "up" if self.up else "connecting" if self.connected else "down"
        return f"<Subscriber {self._where} session {self._session} {state}>"

    # -- the Link ------------------------------------------------------------------

    @property
    def up(self) -> bool:
        return self._up.is_set()

    @property
    def connected(self) -> bool:
        return self._connection is not None

    @property
    def session(self) -> int:
        return self._session

    async def wait_up(self) -> None:
        await self._up.wait()

    def fail(self, exc: BaseException, session: int) -> None:
        """A command of ``session`` failed: end that session (once)."""
        if session != self._session or self._reader is None:
            return
        if self._failure is None:
            self._failure = exc
        self._mark_down()
        self._reader.cancel()

    # -- groups --------------------------------------------------------------------

    @property
    def groups(self) -> frozenset[str]:
        """The groups this process wants, subscribed in every session."""
        return frozenset(self._groups)

    async def subscribe(self, group: str) -> None:
        """Subscribe ``group``; returns once Redis confirmed it (or once the
        connection is lost: the next session subscribes it again)."""
        if group not in self._groups:
            self._groups.add(group)
            if await self._add(self._names.channel(group)):
                session = self._session
                try:
                    await self._note_head(group)
                except LOST as exc:
                    self.fail(exc, session)

    async def _note_head(self, group: str) -> None:
        """Where a group just subscribed stands: what a later recovery goes
        on from, unless a message came first."""
        assert self._owner is not None
        head = await self._owner.head(group)
        if group in self._groups and group not in self._last:
            self._last[group] = head

    async def unsubscribe(self, group: str) -> None:
        if group in self._groups:
            self._groups.discard(group)
            self._last.pop(group, None)
            await self._remove(self._names.channel(group))

    async def watch(self, group: str) -> None:
        """Subscribe ``group``'s presence changes; returns once Redis
        confirmed it, as :meth:`subscribe` does."""
        if group not in self._watched:
            self._watched.add(group)
            await self._add(self._names.changes(group))

    async def unwatch(self, group: str) -> None:
        if group in self._watched:
            self._watched.discard(group)
            await self._remove(self._names.changes(group))

    def _channels(self) -> list[str]:
        """Every pub/sub channel this process wants, for a new session."""
        names = self._names
        return [names.channel(group) for group in self._groups] + [
            names.changes(group) for group in self._watched
        ]

    async def _add(self, channel: str) -> bool:
        """Subscribe ``channel`` now, if connected; whether Redis confirmed it."""
        connection, session = self._connection, self._session
        if connection is None or not connection.is_connected:
            return False  # the next session subscribes it
        try:
            await self._subscribe_on(connection, [channel])
        except LOST as exc:
            self.fail(exc, session)
            return False
        return True

    async def _remove(self, channel: str) -> None:
        connection, session = self._connection, self._session
        if connection is None or not connection.is_connected:
            return
        try:
            await connection.send_command("UNSUBSCRIBE", channel)
        except LOST as exc:
            self.fail(exc, session)

    # -- running -------------------------------------------------------------------

    def start(self, deliver: Deliver, owner: SessionOwner) -> None:
        """Make the connection pool; sessions will deliver what they receive
        to ``deliver`` and ask ``owner`` to restore the rest."""
        self._deliver, self._owner = deliver, owner
        self._pool = subscriber_pool(self._url, self._timeout)

    async def first_attempt(self) -> None:
        """Return once the first session went up or failed (or on close)."""
        await self._tried.wait()

    async def run(self) -> None:
        """Run sessions forever; between them, wait ``reconnect`` delays."""
        while True:
            reason = await self._run_session()
            self._tried.set()
            attempt, first = self._retries.next(asyncio.get_running_loop().time())
            delay = self._reconnect.delay(attempt)
            self._log_retry(reason, delay, first=first)
            await asyncio.sleep(delay)

    async def keep_alive(self, interval: float) -> None:
        """Every ``interval``: check that the connection still answers (a
        PONG since the last tick), and have the owner refresh presence."""
        while True:
            await asyncio.sleep(interval)
            connection, session = self._connection, self._session
            if not self.up or connection is None or self._owner is None:
                continue
            try:
                if self._pong_pending:
                    raise TimeoutError("the subscriber connection stopped answering")
                self._pong_pending = True
                await connection.send_command("PING")
                await self._owner.refresh()
            except LOST as exc:
                self.fail(exc, session)

    async def close(self) -> None:
        """The tasks are cancelled: release whoever waits for the first
        attempt, and close the pool's connections."""
        self._tried.set()
        if self._pool is not None:
            await self._pool.disconnect()

    # -- one session ---------------------------------------------------------------

    async def _run_session(self) -> BaseException:
        """Connect, restore subscriptions and presence, go up, and read until
        the connection is lost; returns why it ended."""
        assert self._pool is not None and self._owner is not None
        self._session += 1
        self._failure = None
        self._pong_pending = False
        connection = self._pool.make_connection()  # type: ignore[no-untyped-call]
        reader: asyncio.Task[None] | None = None
        try:
            await connection.connect()
            self._connection = connection
            reader = self._reader = asyncio.create_task(self._read(connection))
            if channels := self._channels():
                await self._subscribe_on(connection, channels)
                await self._recover()
            await self._owner.restore()
            if self._failure is None and not reader.done():
                self._mark_up()
                await asyncio.wait({reader})
            return self._why(reader)
        except Exception as exc:  # LOST, a refusal or a bug: start over
            return exc
        finally:
            self._connection = self._reader = None
            self._mark_down()
            if reader is not None:
                reader.cancel()
                await asyncio.wait({reader})
                if not reader.cancelled():
                    reader.exception()  # retrieved: the returned reason says it
            await connection.disconnect(nowait=True)

    async def _recover(self) -> None:
        """Deliver what each group published while this process was away
        from Redis, read from its history: each message once, in order,
        before the live ones held meanwhile (with a history; docs/
        PROTOCOL-EXTENSIONS.md, section 4). A history that no longer holds
        everything is a warning: those messages are lost for this process."""
        assert self._owner is not None
        positions = [(g, p) for g, p in self._last.items() if g in self._groups]
        self._held = {group: [] for group, _ in positions}
        try:
            for group, since in positions:
                replay = await self._owner.recover(group, since)
                if not replay.complete:
                    logger.warning(
                        "group %r: messages published while redis was unreachable "
                        "are no longer in its history: lost for this process",
                        group,
                    )
                self._deliver_all(
                    unseen(since, (*replay.deliveries, *self._held.pop(group)))
                )
        finally:
            # After a failure, what is still held is in the history too: the
            # next session recovers it from the last position delivered.
            self._held = None
        for group in self._groups - self._last.keys():  # subscribed while down
            await self._note_head(group)

    def _deliver_all(self, deliveries: Iterable[Delivery]) -> None:
        for delivery in deliveries:
            self._advance(delivery)
            self._deliver_one(delivery)

    def _advance(self, delivery: Delivery) -> None:
        """Note the position of ``delivery``; never backwards."""
        position, last = delivery.position, self._last.get(delivery.group)
        if position is not None and (last is None or position.after(last)):
            self._last[delivery.group] = position

    async def _subscribe_on(
        self, connection: AbstractConnection, channels: list[str]
    ) -> None:
        """Send one SUBSCRIBE; wait (bounded) until Redis confirmed each
        channel, or until the reader stopped (which releases every wait)."""
        confirmed = self._confirmations.expect(channels)
        await connection.send_command("SUBSCRIBE", *channels)
        async with asyncio.timeout(self._timeout):
            await asyncio.gather(*confirmed)

    async def _read(self, connection: AbstractConnection) -> None:
        """Deliver what the subscriber connection receives, in order."""
        try:
            while True:
                self._handle(await connection.read_response(push_request=True))
        finally:
            self._confirmations.release_all()

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
            self._confirmations.confirm(reply[1])
        elif kind == b"pong":
            self._pong_pending = False

    def _receive(self, channel: bytes, payload: bytes) -> None:
        # Presence changes come on channels of their own; a process that
        # watches nothing spends one check per message on them.
        if self._watched and channel.startswith(self._changes_prefix):
            watched = self._names.watched(channel)
            if watched in self._watched and self._owner is not None:
                self._owner.presence_changed(watched, payload)
            return
        group = self._names.group(channel)
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
        if delivery.position is not None:
            held = self._held
            if held is not None and group in held:
                held[group].append(delivery)
                return
            self._advance(delivery)
        self._deliver_one(delivery)

    def _deliver_one(self, delivery: Delivery) -> None:
        assert self._deliver is not None
        try:
            self._deliver(delivery)
        except Exception:
            # One failing delivery must not end the subscription of every group.
            logger.exception("delivering a message of group %r failed", delivery.group)

    def _why(self, reader: asyncio.Task[None]) -> BaseException:
        failure = None if reader.cancelled() else reader.exception()
        return failure or self._failure or ConnectionError("connection lost")

    def _mark_up(self) -> None:
        assert self._owner is not None
        self._up.set()
        self._tried.set()
        outage = self._retries.went_up(asyncio.get_running_loop().time())
        if outage is not None:
            # As loud as the loss, so that whoever saw one sees the other.
            logger.warning(
                "redis reachable again at %s after %.1f s: %d groups subscribed "
                "again, %d buffered messages to publish",
                self._where,
                outage,
                len(self._groups),
                self._owner.buffered,
            )

    def _log_retry(self, reason: BaseException, delay: float, *, first: bool) -> None:
        """The first failure of an outage is a warning, the next ones info."""
        unexpected = None if isinstance(reason, LOST) else reason
        if first:
            logger.warning(
                "redis unreachable at %s, retrying in %.2f s (%s)",
                self._where,
                delay,
                describe(reason),
                exc_info=unexpected,
            )
        else:
            logger.info(
                "redis still unreachable at %s, retrying in %.2f s (%s)",
                self._where,
                delay,
                describe(reason),
                exc_info=unexpected,
            )

    def _mark_down(self) -> None:
        """Stop publishing; the owner releases whoever waits on Redis."""
        self._up.clear()
        if self._owner is not None:
            self._owner.session_ended()
