"""How fast a client may make the server work: token buckets, sans I/O.

A :class:`TokenBucket` holds what a rate allows; :class:`FramePace` applies
``Limits.frame_rate`` to the frames one connection's carrier hands over,
and says when the carrier must pause: to let other connections have the
event loop (every :data:`FRAMES_PER_TURN` frames), or until the rate
allows more. The asyncio layer only counts frames and carries the pauses
out.
"""

from __future__ import annotations

from typing import Final

from .limits import Limits

__all__ = ["FRAMES_PER_TURN", "FramePace", "TokenBucket"]

FRAMES_PER_TURN: Final = 256
"""Frames one connection may have handled before it lets the event loop
run others: a few hundred microseconds, so a message packed with frames
never stalls the other clients."""


class TokenBucket:
    """``rate`` tokens a second, at most ``burst`` saved up; starts full."""

    __slots__ = ("_refilled_at", "burst", "rate", "tokens")

    def __init__(self, rate: float, burst: float) -> None:
        self.rate = rate
        self.burst = burst
        self.tokens = float(burst)
        self._refilled_at: float | None = None

    def refill(self, now: float) -> None:
        """Add what the rate earned since the last refill."""
        if self._refilled_at is not None:
            earned = (now - self._refilled_at) * self.rate
            self.tokens = min(self.burst, self.tokens + earned)
        self._refilled_at = now

    def take(self, now: float) -> bool:
        """Take one token if there is one."""
        self.refill(now)
        if self.tokens < 1:
            return False
        self.tokens -= 1
        return True


class FramePace:
    """The pace of one connection's incoming frames (``Limits.frame_rate``).

    The carrier asks for a :meth:`budget`, hands over that many frames
    without asking again (it counts them down itself: one subtraction a
    frame), then asks :meth:`pause` how long to wait before the next
    budget (``0.0``: just let the event loop run once). A batch is never
    split: it may overdraw the budget, and the next pause repays the
    overdraft.
    """

    __slots__ = ("_bucket",)

    def __init__(self, limits: Limits) -> None:
        self._bucket = TokenBucket(limits.frame_rate, limits.max_message_frames)

    def budget(self) -> int:
        """Frames that may be handed over before the next :meth:`pause`: no
        more than one turn's worth, nor than the rate has saved up."""
        return max(1, min(FRAMES_PER_TURN, int(self._bucket.tokens)))

    def pause(self, used: int, now: float) -> float:
        """``used`` frames went since the last budget: seconds to wait
        before the next one."""
        bucket = self._bucket
        bucket.tokens -= used
        bucket.refill(now)
        if bucket.tokens >= 0:
            return 0.0
        return -bucket.tokens / bucket.rate
