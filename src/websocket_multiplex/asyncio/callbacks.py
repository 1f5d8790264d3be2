"""Task-free services: a :class:`ChannelHandler` whose callbacks are plain
methods, called on the event loop as frames arrive, with no task per channel.

One :class:`TaskFreeServices` per connection runs them. A message lands in
its channel's inbox (bounded by the connection's ledger, as for a task
handler) and its ``on_message`` is called at once, before the next frame
is read. A callback slower than :data:`SLOW_CALLBACK` makes its channel
take turns from then on: its messages wait in its inbox and are handed to
it one per event-loop iteration, so other services' messages, called at
once, wait for at most one of its callbacks, as they would with tasks. It
is called at once again when it has caught up with a fast callback. Every
callback goes through one error path: a failure, or a callback that
returns something (an ``async def`` forgotten), closes only its channel
(``err,T,500 service failed``) and logs once per interval.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Callable
from time import perf_counter
from typing import Final

from ..events import CloseReason
from ..exceptions import ChannelClosed
from .channel import Channel, TaskFreeHandler
from .requests import Request
from .services import ChannelHandler
from .throttle import LogThrottle

__all__ = ["SLOW_CALLBACK", "TaskFreeServices"]

logger = logging.getLogger("websocket_multiplex")

SLOW_CALLBACK: Final = 0.002
"""Seconds an ``on_message`` may take before its channel takes turns."""


class TaskFreeServices:
    """The task-free channels of one connection and their round.

    ``fail(channel)`` closes a channel whose callback failed (the owner
    counts it and sends ``err`` + ``uns``).
    """

    __slots__ = (
        "_fail",
        "_log",
        "_ready",
        "_scheduled",
        "_slow",
    )

    def __init__(self, fail: Callable[[Channel], None], log: LogThrottle) -> None:
        self._fail = fail
        self._log = log
        # Made when a callback is first slow: a server holds many idle
        # connections (an empty deque takes 760 bytes, a set 216).
        self._slow: set[Channel] | None = None  # take turns
        self._ready: list[Channel] = []  # slow ones with messages, in turn
        self._scheduled = False

    def start(self, cls: type[ChannelHandler], channel: Channel) -> None:
        """Serve ``channel`` with a new ``cls``: ``on_open`` now, then the
        messages that waited in its inbox (during authorization)."""
        if channel.closed:
            return
        try:
            handler = cls(channel)
        except Exception:
            self._failed(channel, f"{cls.__name__}()")
            return
        channel.callbacks = handler
        if self._call(channel, handler.on_open):
            self.message(channel)
            for request in channel.take_requests():
                self.request(channel, request)

    def request(self, channel: Channel, request: Request) -> None:
        """A request on ``channel``: its ``on_request`` now, whatever turn
        its messages wait for (a request is answered on its own)."""
        handler = channel.callbacks
        if handler is not None:
            self._call(channel, handler.on_request, request)

    def message(self, channel: Channel) -> None:
        """Messages are in the inbox of ``channel``: call it now, or in turn."""
        if channel.callbacks is None or channel in self._ready:
            return  # not started yet (authorizing), or closed; or in turn
        while channel.unread:
            slow = self._slow
            if slow is not None and channel in slow:
                self._take_turns(channel)
                return
            handler = channel.callbacks
            if handler is None or not self._timed(channel, handler):
                return

    def closed(self, channel: Channel, reason: CloseReason) -> None:
        """``channel`` closed: its ``on_close``, exactly once."""
        handler, channel.callbacks = channel.callbacks, None
        if self._slow is not None:
            self._slow.discard(channel)
        if handler is not None:
            self._call(channel, handler.on_close, reason)

    def _timed(self, channel: Channel, handler: TaskFreeHandler) -> bool:
        """Call ``on_message`` with the next message; a slow one makes its
        channel take turns, a fast one lets it be called at once again."""
        started = perf_counter()
        ok = self._call(channel, handler.on_message, channel.take())
        slow = self._slow
        if perf_counter() - started > SLOW_CALLBACK:
            if ok and channel.callbacks is not None:
                if slow is None:
                    slow = self._slow = set()
                slow.add(channel)
        elif slow is not None:
            slow.discard(channel)
        return ok

    def _take_turns(self, channel: Channel) -> None:
        self._ready.append(channel)
        if not self._scheduled:
            self._scheduled = True
            asyncio.get_running_loop().call_soon(self._turn)

    def _turn(self) -> None:
        """One callback, of the channel whose turn it is; the next turn in
        the next iteration of the loop, after what it read meanwhile."""
        self._scheduled = False
        ready = self._ready
        while ready:
            channel = ready.pop(0)  # a short list: the slow channels only
            handler = channel.callbacks
            if handler is None or not channel.unread:
                continue
            ok = self._timed(channel, handler)
            if ok and channel.unread and channel.callbacks is not None:
                ready.append(channel)  # its next turn, after the others'
            break
        if ready and not self._scheduled:
            self._scheduled = True
            asyncio.get_running_loop().call_soon(self._turn)

    def _call(
        self, channel: Channel, callback: Callable[..., object], *args: object
    ) -> bool:
        """Run one callback; ``False`` if it ended its channel."""
        try:
            result = callback(*args)
        except ChannelClosed:
            if channel.closed:  # its own channel closed under it: an end
                return False
            self._failed(channel, callback.__qualname__)
            return False
        except Exception:
            self._failed(channel, callback.__qualname__)
            return False
        if result is None:
            return True
        if inspect.iscoroutine(result):
            result.close()  # never awaited: say so once, below
        self._log.log(
            logger,
            logging.ERROR,
            f"callback returned: {callback.__qualname__}",
            "%s returned %r: a task-free ChannelHandler's callbacks return "
            "None; declare them async def to await things",
            callback.__qualname__,
            result,
        )
        self._failed(channel, None)
        return False

    def _failed(self, channel: Channel, what: str | None) -> None:
        """The one error path: log (a traceback per callback per interval,
        from an ``except`` block), then close the channel."""
        if what is not None:
            self._log.exception(
                logger,
                f"callback failed: {what}",
                "%s failed on channel %r of %r",
                what,
                channel.name,
                channel.connection,
            )
        self._fail(channel)  # on_close follows, from the close
