"""Fan-out across server processes through Redis (``pip install
websocket-multiplex[redis]``); importing this package imports ``redis``.

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
:class:`RedisBroker` composes one part per job, each in its own module:

``subscriber``
    the session of the pub/sub connection: connecting, reconnecting with
    backoff, subscribing every group again, delivering what arrives, and
    deciding whether Redis is up (the :class:`~.link.Link` of the others);
``publisher``
    publishes in order, and the backlog bounded by ``outage_buffer``;
``presence``
    this process's members in Redis, refreshed, expiring, restored;
``wire``
    the names in Redis and the message format (pure functions);
``link``
    what the parts share: how connections are made, what counts as lost;
``broker``
    :class:`RedisBroker`, the facade that starts and closes them.
"""

from .broker import RedisBroker
from .subscriber import ReconnectDelays

__all__ = ["ReconnectDelays", "RedisBroker"]
