"""Group histories in Redis (docs/PROTOCOL-EXTENSIONS.md, section 4).

Each group with a history has a stream of its last ``size`` messages and a
hash with its epoch and count (names in
:mod:`websocket_multiplex.fanout.redis.wire`). A publish is one Lua script:
it counts the message, appends it to the stream as entry
``<n>-0``, and publishes it with its position, as one step. So members see
offsets in order, a reader of the stream sees exactly the messages
published before it read, and a member that was away can tell what is
missing from what was never there: the offsets are 1, 2, 3, ...

Both keys expire ``age`` after the group's last publish (by then every
entry is too old to replay anyway); the next publish begins a new epoch.
A Redis restart that loses them does the same. A new epoch is never
confused with an old one: its name is drawn at random by the publisher.
"""

from __future__ import annotations

from redis.asyncio import Redis
from redis.asyncio.client import Pipeline
from redis.commands.core import AsyncScript

from ...streams import Position
from ..history import new_epoch
from ..messages import Delivery, Replay
from .wire import Names, decode

__all__ = ["StreamHistory"]

# KEYS: the history hash, the stream, the pub/sub channel.
# ARGV: the message's JSON, an epoch for a new history, size, age in ms.
_PUBLISH = """
local epoch = redis.call('HGET', KEYS[1], 'e')
if not epoch then
  epoch = ARGV[2]
  redis.call('DEL', KEYS[2])
  redis.call('HSET', KEYS[1], 'e', epoch, 'n', 0)
end
local n = redis.call('HINCRBY', KEYS[1], 'n', 1)
local now = redis.call('TIME')
local ms = now[1] * 1000 + math.floor(now[2] / 1000)
redis.call('XADD', KEYS[2], 'MAXLEN', ARGV[3], n .. '-0', 't', ms, 'd', ARGV[1])
redis.call('PEXPIRE', KEYS[1], ARGV[4])
redis.call('PEXPIRE', KEYS[2], ARGV[4])
redis.call('PUBLISH', KEYS[3],
  '{"e":"' .. epoch .. '","o":"' .. n .. '",' .. string.sub(ARGV[1], 2))
return n
"""


class StreamHistory:
    """The last ``size`` messages of every group, none older than ``age``
    seconds, in Redis."""

    def __init__(self, names: Names, *, size: int, age: float) -> None:
        if size < 1 or age <= 0:
            raise ValueError("history_size must be 1 or more and history_age positive")
        self._names = names
        self.size = size
        self.age = age
        self._age_ms = max(1, int(age * 1000))
        self._script: AsyncScript | None = None

    def attach(self, client: Redis) -> None:
        """Use ``client``'s connection to load the publishing script."""
        self._script = client.register_script(_PUBLISH)

    async def publish(self, pipe: Pipeline, group: str, payload: str) -> None:
        """Add the publish of ``payload`` (a message in the format of
        :func:`websocket_multiplex.fanout.redis.wire.encode`) to ``pipe``
        (the pipeline loads the script if Redis lacks it)."""
        assert self._script is not None, "attach() first"
        names = self._names
        await self._script(
            keys=[names.history(group), names.stream(group), names.channel(group)],
            args=[payload, new_epoch(), self.size, self._age_ms],
            client=pipe,
        )

    async def since(self, client: Redis, group: str, since: Position) -> Replay:
        """What ``group``'s history holds after ``since``."""
        return await self._read(client, group, since, restarted=False)

    async def recover(
        self, client: Redis, group: str, since: Position | None
    ) -> Replay:
        """What a process that last had ``since`` of ``group`` missed: as
        :meth:`since`, but if the group's history began again meanwhile
        (a new epoch: Redis lost it), the whole new history, which this
        process cannot have seen any of. ``since=None``: the group had no
        history when this process subscribed it."""
        return await self._read(client, group, since, restarted=True)

    async def head(self, client: Redis, group: str) -> Position | None:
        """The position of ``group``'s latest message, if it has a history."""
        epoch, count = await client.hmget(self._names.history(group), "e", "n")
        if not isinstance(epoch, bytes) or not isinstance(count, bytes):
            return None
        return Position(epoch.decode(), count.decode())

    async def _read(
        self, client: Redis, group: str, since: Position | None, *, restarted: bool
    ) -> Replay:
        names = self._names
        if since is None:
            since, after = Position("-", "0"), -1  # matches no epoch
        else:
            try:
                after = int(since.offset)
            except ValueError:  # not one of ours (a memory broker's, or junk)
                after = -1
        # A recovery reads the whole stream: it may be of another epoch.
        start = "-" if restarted or after < 0 else f"({after}-0"
        async with client.pipeline(transaction=True) as pipe:
            pipe.hmget(names.history(group), "e", "n")
            pipe.time()
            pipe.xrange(names.stream(group), start, "+", count=self.size)
            (name, count), (seconds, micros), entries = await pipe.execute()
        if name is None:
            return Replay((), complete=False)
        epoch = name.decode()
        if epoch != since.epoch or after < 0:
            if not restarted:
                return Replay((), complete=False)
            after = 0  # all of the new history is new
        elif after > int(count):
            return Replay((), complete=False)  # a position never given
        oldest = seconds * 1000 + micros // 1000 - self._age_ms
        kept: list[Delivery] = []
        for entry_id, fields in entries:
            offset = int(entry_id.decode().partition("-")[0])
            delivery = decode(group, fields[b"d"])
            if offset <= after or int(fields[b"t"]) < oldest or delivery is None:
                continue  # had it, or too old to replay (then missed)
            position = Position(epoch, str(offset))
            kept.append(Delivery(group, delivery.message, delivery.exclude, position))
        first = int(kept[0].position.offset) if kept and kept[0].position else None
        if first is None:
            first = int(count) + 1  # nothing kept: complete if nothing came
        return Replay(tuple(kept), complete=first == after + 1)
