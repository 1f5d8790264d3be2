"""Rate limits for log lines that any client can trigger at will."""

from __future__ import annotations

import logging
import time

__all__ = ["LogThrottle", "log_throttle"]


class LogThrottle:
    """At most one line per key per ``interval`` seconds; the rest are counted.

    A hostile client can cause refusals or limit hits as fast as it can send;
    logging each would let it flood the logs (and the disk).
    """

    def __init__(self, interval: float = 10.0) -> None:
        self.interval = interval
        self._last: dict[str, float] = {}
        self.suppressed: dict[str, int] = {}

    def info(
        self, logger: logging.Logger, key: str, message: str, *args: object
    ) -> None:
        self.log(logger, logging.INFO, key, message, *args)

    def warning(
        self, logger: logging.Logger, key: str, message: str, *args: object
    ) -> None:
        self.log(logger, logging.WARNING, key, message, *args)

    def log(
        self, logger: logging.Logger, level: int, key: str, message: str, *args: object
    ) -> None:
        now = time.monotonic()
        last = self._last.get(key)
        if last is not None and now - last < self.interval:
            self.suppressed[key] = self.suppressed.get(key, 0) + 1
            return
        self._last[key] = now
        skipped = self.suppressed.pop(key, 0)
        if skipped:
            message += f" ({skipped} similar lines suppressed)"
        logger.log(level, message, *args)


log_throttle = LogThrottle()
