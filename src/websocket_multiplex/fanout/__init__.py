"""Fan-out: groups of channels, across processes through a broker.

:class:`Broker` is the seam; :class:`InMemoryBroker` (the default) serves
one process; :class:`~websocket_multiplex.fanout.redis.RedisBroker` (which
imports ``redis``) serves many. Brokers that also implement
:class:`PresenceBroker` report members joining and leaving.
"""

from .broker import Broker, BrokerUnavailable, Delivery, InMemoryBroker
from .presence import PresenceBroker, PresenceListener

__all__ = [
    "Broker",
    "BrokerUnavailable",
    "Delivery",
    "InMemoryBroker",
    "PresenceBroker",
    "PresenceListener",
]


def __getattr__(name: str) -> object:
    # RedisBroker imports redis: only on first use, never on import.
    if name == "RedisBroker":
        from .redis import RedisBroker

        return RedisBroker
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
