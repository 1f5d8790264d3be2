"""Presence changes across processes: each one announced once, by Redis.

Every write to a group's sorted set (see
:mod:`~websocket_multiplex.fanout.redis.presence`) is a Lua script that
changes the set and, in the same atomic step, publishes each change it
actually made on the group's changes channel
(:meth:`~.wire.Names.changes`):

``+<member>``
    ``ZADD`` added it (a refresh that only pushes an expiry forward is not
    a change);
``-<member>``
    ``ZREM`` removed it: it left, or its process closed;
``~<member>``
    a sweep removed it after its entry expired: its process stopped
    refreshing (it died).

Every live process sweeps the groups it has members in or watches, on each
refresh; whichever process's script removes an expired entry first is the
only one to announce it, since the next finds it gone. Nothing here runs
per published message: the changes channel is not the messages channel.
"""

from __future__ import annotations

from ...events import LeaveReason, MemberJoined, MemberLeft, PresenceChange

__all__ = ["JOIN", "LEAVE", "REFRESH", "decode_change"]

JOIN = """
local added = redis.call('ZADD', KEYS[1], ARGV[1], ARGV[3])
redis.call('PEXPIRE', KEYS[1], ARGV[2])
if added == 1 then redis.call('PUBLISH', KEYS[2], '+' .. ARGV[3]) end
return added
"""
"""KEYS: the set, the changes channel; ARGV: expiry, key TTL in ms, member."""

LEAVE = """
local removed = 0
for i = 1, #ARGV do
  if redis.call('ZREM', KEYS[1], ARGV[i]) == 1 then
    removed = removed + 1
    redis.call('PUBLISH', KEYS[2], '-' .. ARGV[i])
  end
end
return removed
"""
"""KEYS: the set, the changes channel; ARGV: the members who left."""

REFRESH = """
local expired = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
for _, member in ipairs(expired) do
  redis.call('ZREM', KEYS[1], member)
  redis.call('PUBLISH', KEYS[2], '~' .. member)
end
for i = 4, #ARGV do
  if redis.call('ZADD', KEYS[1], ARGV[2], ARGV[i]) == 1 then
    redis.call('PUBLISH', KEYS[2], '+' .. ARGV[i])
  end
end
if #ARGV > 3 then redis.call('PEXPIRE', KEYS[1], ARGV[3]) end
return #expired
"""
"""Sweep, then push this process's members' expiry forward. KEYS: the set,
the changes channel; ARGV: now, the new expiry, key TTL in ms, then this
process's members of the group (none: a group it only watches)."""

_REASONS = {"-": LeaveReason.LEFT, "~": LeaveReason.EXPIRED}


def decode_change(group: str, payload: bytes) -> PresenceChange | None:
    """The change a payload of ``group``'s changes channel announces, or
    ``None`` if it is not one of ours."""
    text = payload.decode(errors="replace")
    mark, member = text[:1], text[1:]
    if not member:
        return None
    if mark == "+":
        return MemberJoined(group, member)
    reason = _REASONS.get(mark)
    return None if reason is None else MemberLeft(group, member, reason)
