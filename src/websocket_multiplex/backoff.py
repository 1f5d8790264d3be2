"""How long to wait before reconnecting: one policy for every reconnecting part.

The client (:class:`~websocket_multiplex.MultiplexClient`) and the Redis
broker (:class:`~websocket_multiplex.fanout.redis.RedisBroker`) both retry
a lost connection with these delays; they differ only in their defaults
and in whether they ever give up. A pure module: it only computes a number
(no clock, no sleeping), so whoever reconnects does the waiting.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

__all__ = ["Backoff"]


@dataclass(frozen=True)
class Backoff:
    """Reconnection delays: exponential, capped, with full jitter.

    Attempt ``n`` (from 0) waits a random time between 0 and
    ``min(maximum, initial * factor ** n)`` seconds, so that clients cut
    off together do not all come back at the same instant. After
    ``max_attempts`` failed attempts in a row (``None``: never) the client
    gives up and closes; the Redis broker never gives up and ignores it.
    """

    initial: float = 0.5
    maximum: float = 30.0
    factor: float = 2.0
    max_attempts: int | None = None

    def delay(self, attempt: int) -> float:
        """How long to wait before attempt ``attempt`` (0 for the first)."""
        # The exponent stops at 64: past the cap anyway, and no OverflowError.
        ceiling = min(self.maximum, self.initial * self.factor ** min(attempt, 64))
        return random.uniform(0, ceiling)
