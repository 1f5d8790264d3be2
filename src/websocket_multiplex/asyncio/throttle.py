"""Rate limits for log lines that any client can trigger at will."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

__all__ = ["LogThrottle"]


class LogThrottle:
    """At most one line per key per ``interval`` seconds; the rest are counted.

    A hostile client can cause refusals, limit hits or handler failures as
    fast as it can send; logging each would let it flood the logs (and the
    disk). The next line of a key logged after its interval says how many
    were suppressed in between.

    Keys name a kind of event ("refused", "handler failed: chat"), never a
    client: one key per client would let many clients log as much as ever,
    and grow the table with every address.
    """

    def __init__(
        self, interval: float = 10.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.interval = interval
        self._clock = clock
        self._last: dict[str, float] = {}
        self.suppressed: dict[str, int] = {}
        """Lines suppressed per key since its last logged one."""

    def info(
        self, logger: logging.Logger, key: str, message: str, *args: object
    ) -> None:
        self.log(logger, logging.INFO, key, message, *args)

    def warning(
        self, logger: logging.Logger, key: str, message: str, *args: object
    ) -> None:
        self.log(logger, logging.WARNING, key, message, *args)

    def exception(
        self, logger: logging.Logger, key: str, message: str, *args: object
    ) -> None:
        """Like ``logger.exception``: call it from an ``except`` block; the
        traceback goes with the first line of each interval only."""
        self.log(logger, logging.ERROR, key, message, *args, exc_info=True)

    def log(
        self,
        logger: logging.Logger,
        level: int,
        key: str,
        message: str,
        *args: object,
        exc_info: bool = False,
    ) -> None:
        now = self._clock()
        last = self._last.get(key)
        if last is not None and now - last < self.interval:
            self.suppressed[key] = self.suppressed.get(key, 0) + 1
            return
        self._last[key] = now
        skipped = self.suppressed.pop(key, 0)
        if skipped:
            message += f" ({skipped} similar lines suppressed)"
        logger.log(level, message, *args, exc_info=exc_info)
