"""What the Redis broker writes: the names in Redis, the message format, and
the URL in its log lines. Pure functions: no connection, no ``redis`` import.

With the default prefix ``websocket-multiplex:``, group ``lobby`` is the
pub/sub channel ``websocket-multiplex:group:lobby``, whose messages are
the JSON object ``{"m": <message>, "x": <excluded member id or null>}``,
and the presence sorted set ``websocket-multiplex:presence:lobby``, whose
changes go out on the pub/sub channel ``websocket-multiplex:watch:lobby``
(see :mod:`.changes`).

With a history (docs/PROTOCOL-EXTENSIONS.md, section 4) the group also has
the stream ``websocket-multiplex:stream:lobby``, whose entry ``<n>-0``
holds the ``n``-th message as fields ``d`` (the JSON object above) and
``t`` (when, in ms of the Redis clock), and the hash
``websocket-multiplex:history:lobby`` with the epoch ``e`` and the count
``n``; a published message then also has ``"e"`` and ``"o"`` (its offset,
``n``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

from ...streams import Position
from ..broker import Delivery

__all__ = ["Names", "decode", "encode", "redact"]


@dataclass(frozen=True, slots=True)
class Names:
    """The Redis names of a group, under one ``prefix`` (``channel_prefix``)."""

    prefix: str

    def channel(self, group: str) -> str:
        """The pub/sub channel that carries ``group``'s messages."""
        return f"{self.prefix}group:{group}"

    def key(self, group: str) -> str:
        """The sorted set of ``group``'s members (see
        :mod:`~websocket_multiplex.fanout.redis.presence`)."""
        return f"{self.prefix}presence:{group}"

    def stream(self, group: str) -> str:
        """The stream of ``group``'s last messages (see
        :mod:`websocket_multiplex.fanout.redis.history`)."""
        return f"{self.prefix}stream:{group}"

    def history(self, group: str) -> str:
        """The hash with the epoch and count of ``group``'s stream."""
        return f"{self.prefix}history:{group}"

    def changes(self, group: str) -> str:
        """The pub/sub channel that carries changes of ``group``'s members."""
        return f"{self.prefix}watch:{group}"

    def watched(self, channel: bytes) -> str | None:
        """The group whose member changes ``channel`` carries, if it is such
        a channel (:meth:`changes`)."""
        name, start = channel.decode(), self.changes("")
        return name[len(start) :] if name.startswith(start) else None

    def group(self, channel: bytes) -> str:
        """The group whose messages ``channel`` carries (one we subscribed:
        its name starts with :meth:`channel` of the empty group)."""
        return channel.decode()[len(self.channel("")) :]


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
    if not isinstance(message, str):
        return None
    if exclude is not None and not isinstance(exclude, str):
        return None
    epoch, offset = fields.get("e"), fields.get("o")
    if isinstance(epoch, str) and isinstance(offset, str):
        return Delivery(group, message, exclude, Position.parse(epoch, offset))
    return Delivery(group, message, exclude)


def redact(url: str) -> str:
    """``url`` fit for a log line: the password, if any, replaced by ``***``."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    user, host = parts.username or "", parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{user}:***@{host}"))
