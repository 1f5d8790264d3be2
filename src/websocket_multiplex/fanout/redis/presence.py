"""Presence across processes: who is in which group, with expiry.

Each group has a sorted set in Redis (:meth:`~.wire.Names.key`): member id
-> the Unix time at which the entry expires. Each process pushes the expiry
of its own members forward every ``presence_ttl / 3`` seconds
(:meth:`Presence.refresh`), so the members of a process that died without
cleaning up disappear ``presence_ttl`` seconds later, and the key itself
expires once no process refreshes it any more. Entries are compared with
this process's clock, so process clocks must agree to well within
``presence_ttl``.

Locally, :class:`Presence` keeps who is here and who left while Redis was
unreachable, so that a new session writes the first again and removes the
others.

Every write announces the changes it makes (:mod:`.changes`), and each
refresh also sweeps the groups this process watches, so that the members of
a dead process are announced as expired even where no live process has a
member. The key lives twice ``presence_ttl``, so that a sweep finds
expired entries before the key goes. :class:`Presence` hands what the
changes channels bring to its listener, and tells it after each new
session that changes may have been missed.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable

from redis.asyncio import Redis
from redis.asyncio.client import Pipeline
from redis.exceptions import RedisError

from ..broker import BrokerUnavailable
from ..presence import PresenceListener
from .changes import JOIN, LEAVE, REFRESH, decode_change
from .link import LOST, Link, describe, execute, logger
from .wire import Names

__all__ = ["Presence"]


class Presence:
    """This process's members, here and in Redis.

    :meth:`attach` the command client on start; the subscriber session then
    calls :meth:`refresh` when it begins and on every keep-alive tick.
    """

    def __init__(
        self, names: Names, link: Link, *, ttl: float, timeout: float, where: str
    ) -> None:
        self._names = names
        self._link = link
        self._ttl = ttl
        self._timeout = timeout
        self._where = where  # the Redis URL, redacted for messages
        self._client: Redis | None = None
        self._present: dict[str, set[str]] = {}
        # Left while their removal could not be written: removed on refresh.
        self._departed: dict[str, set[str]] = {}
        # One writer at a time: a refresh must not write back a member that
        # a concurrent removal has just deleted.
        self._lock = asyncio.Lock()
        # The key outlives its entries: a sweep must find them expired,
        # to announce them, before the key goes.
        self._key_ttl = int(ttl * 2000)  # milliseconds
        self._watched: set[str] = set()  # swept too, and their changes reported
        self._listener: PresenceListener | None = None

    @property
    def local(self) -> bool:
        """Whether any member is here, in any group."""
        return bool(self._present)

    def attach(self, client: Redis) -> None:
        """Write through ``client`` from now on (the broker started)."""
        self._client = client

    # -- presence events ----------------------------------------------------------

    def listen(self, listener: PresenceListener) -> None:
        self._listener = listener

    def watch(self, group: str) -> None:
        """Sweep ``group`` on every refresh, and report its changes."""
        self._watched.add(group)

    def unwatch(self, group: str) -> None:
        self._watched.discard(group)

    def received(self, group: str, payload: bytes) -> None:
        """A change of a watched ``group`` came over its changes channel."""
        change = decode_change(group, payload)
        if change is None:
            logger.warning(
                "ignoring a foreign presence change of %r: %r", group, payload[:80]
            )
        elif self._listener is not None and group in self._watched:
            self._listener.changed(change)

    def resynced(self) -> None:
        """A new session began: whatever changed while none was up went
        unheard, so every watcher of every watched group fetches again."""
        if self._listener is not None:
            for group in tuple(self._watched):
                self._listener.lost(group)

    # -- members ------------------------------------------------------------------

    async def set(self, group: str, member: str, present: bool) -> None:
        """Record locally, then in Redis if connected; a process that is not
        connected writes everything when it reconnects."""
        self._record(group, member, present)
        if not self._link.connected:
            return
        session = self._link.session
        try:
            async with self._lock:
                await self._write(group, member, present)
        except LOST as exc:
            self._link.fail(exc, session)

    async def members(self, group: str) -> list[str]:
        """The members of ``group`` in every process whose entries have not
        expired. Raises :class:`BrokerUnavailable` while Redis is unreachable."""
        if self._client is None or not self._link.up:
            raise BrokerUnavailable(
                f"redis unreachable at {self._where}: "
                f"the members of {group!r} across processes are unknown"
            )
        session = self._link.session
        try:
            found = await self._client.zrangebyscore(
                self._names.key(group), f"({time.time()}", "+inf"
            )
        except LOST as exc:
            self._link.fail(exc, session)
            raise BrokerUnavailable(
                f"redis unreachable at {self._where}: {exc}"
            ) from exc
        except RedisError as exc:
            raise BrokerUnavailable(f"redis refused ZRANGEBYSCORE: {exc}") from exc
        return sorted(_text(member) for member in found)

    async def refresh(self) -> None:
        """Push every local member's expiry forward, remove those that left
        while Redis was unreachable, and drop entries that expired. A lost
        connection raises (one of :data:`~.link.LOST`): the caller, the
        subscriber session, ends the session."""
        async with self._lock:
            await self._write_all()

    async def forget(self) -> None:
        """On close: remove this process's members now rather than at expiry."""
        assert self._client is not None
        try:
            async with (
                asyncio.timeout(self._timeout),
                self._lock,
                self._client.pipeline(transaction=False) as pipe,
            ):
                for group, members in self._present.items():
                    self._leave(pipe, group, members)
                await execute(pipe, "presence")
        except LOST as exc:
            logger.info("could not remove presence on close: %s", describe(exc))

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

    def _keys(self, group: str) -> tuple[str, str]:
        return self._names.key(group), self._names.changes(group)

    def _leave(self, pipe: Pipeline, group: str, members: Iterable[str]) -> None:
        pipe.eval(LEAVE, 2, *self._keys(group), *members)

    async def _write(self, group: str, member: str, present: bool) -> None:
        assert self._client is not None
        async with self._client.pipeline(transaction=False) as pipe:
            if present:
                expiry = time.time() + self._ttl
                pipe.eval(JOIN, 2, *self._keys(group), expiry, self._key_ttl, member)
            else:
                self._leave(pipe, group, [member])
            await execute(pipe, "presence")
        if not present:
            self._written(group, [member])

    async def _write_all(self) -> None:
        assert self._client is not None
        now = time.time()
        departed = {group: list(gone) for group, gone in self._departed.items()}
        timing = (now, now + self._ttl, self._key_ttl)
        async with self._client.pipeline(transaction=False) as pipe:
            for group in self._present.keys() | self._watched:
                members = self._present.get(group, ())
                pipe.eval(REFRESH, 2, *self._keys(group), *timing, *members)
            for group, gone in departed.items():
                self._leave(pipe, group, gone)
            await execute(pipe, "presence")
        for group, gone in departed.items():
            self._written(group, gone)

    def _written(self, group: str, departed: Iterable[str]) -> None:
        """Those who left ``group`` are gone from Redis too."""
        members = self._departed.get(group)
        if members is not None:
            members.difference_update(departed)
            if not members:
                del self._departed[group]


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
