"""One connection's outgoing frames: in order, batched, bounded.

What may be written and when a client is too slow is decided by
:class:`~websocket_multiplex.flow.Output`; this carries it out. Frames
join one queue, which a writer task hands to the carrier in batches
(SockJS packs a batch into one ``a[...]`` frame): a sender never waits on
the carrier itself, only on the queue's bound. When nothing is queued or
being written and the carrier says it would take a message at once
(:class:`~websocket_multiplex.asyncio.transport.WritesNow`), the first
frame of an event-loop turn goes out in its sender's own turn instead,
with no task switch: a ping-pong's round trip; the rest of the turn's
frames are batched as before.
"""

from __future__ import annotations

import asyncio
import logging
import types
from collections.abc import Awaitable, Callable, Coroutine, Generator
from time import monotonic
from typing import Any, cast

from ..flow import Output, Verdict
from ..limits import Limits
from .inbox import wake_all
from .stats import ConnectionStats
from .throttle import LogThrottle
from .transport import Transport, WritesNow

__all__ = ["Outbox"]

logger = logging.getLogger("websocket_multiplex")


class Outbox:
    """The frames queued for one client, and the one writer that sends them.

    ``on_slow()`` is called once the client is too slow to keep (the owner
    drops it, close 4008, and returns what to await for that, if anything);
    ``on_lost()`` once the carrier failed to take a
    write. Every character queued is counted in ``stats.chars_sent``.
    """

    __slots__ = (
        "_can_write_now",
        "_finishing_write",
        "_frames",
        "_idle_waiters",
        "_log",
        "_loop",
        "_on_lost",
        "_on_slow",
        "_output",
        "_ready",
        "_stats",
        "_stopped",
        "_this_turn",
        "_transport",
        "_writable",
        "_writer",
        "owner",
    )

    def __init__(
        self,
        transport: Transport,
        limits: Limits,
        on_slow: Callable[[], Awaitable[None] | None],
        on_lost: Callable[[], None],
        log: LogThrottle,
        owner: object,
        stats: ConnectionStats,
    ) -> None:
        self._transport = transport
        self._output = Output(limits)
        self._on_slow = on_slow
        self._on_lost = on_lost
        self._log = log
        self.owner = owner  # for log lines
        self._stats = stats
        # A list, not a deque (760 bytes empty), and the futures made only
        # when someone waits: a server holds many idle connections.
        self._frames: list[str] = []
        self._ready: asyncio.Future[None] | None = None  # the writer waits
        self._writable: asyncio.Event | None = None  # senders wait
        self._idle_waiters: list[asyncio.Future[None]] = []  # flush() callers
        self._can_write_now = (
            transport.can_write_now if isinstance(transport, WritesNow) else None
        )
        self._this_turn = False  # a frame went out at once in this turn
        self._stopped = False
        self._finishing_write: asyncio.Task[None] | None = None
        self._loop = asyncio.get_running_loop()
        self._writer = self._loop.create_task(self._write_loop())

    @property
    def size(self) -> int:
        """Characters queued, not yet handed to the carrier."""
        return self._output.size

    def reroute(self, transport: Transport) -> None:
        """Send through ``transport`` from now on (a resumable session's)."""
        self._transport = transport
        self._can_write_now = (
            transport.can_write_now if isinstance(transport, WritesNow) else None
        )

    # -- putting frames in -----------------------------------------------------

    def send(self, frame: str, alone: bool = True) -> Awaitable[None] | None:
        """Queue ``frame`` for a sender that can wait: what to await, if
        anything (room, while the queue is above ``write_limit``).
        ``alone``: no other message of the connection waits to be answered,
        so nothing would join the frame in a batch: it may go at once."""
        self._stats.chars_sent += len(frame)
        if alone and self._can_write_now is not None and self._at_once(frame):
            return None
        verdict = self._queue(frame, waits=True)
        if verdict is None:  # room: every message of a busy connection
            return None
        if verdict is Verdict.FULL:
            return self._wait_writable()
        if verdict is Verdict.SLOW:
            return self._on_slow()
        return None

    def put(self, frame: str) -> None:
        """Queue ``frame`` without waiting (fan-out, refusals, goodbyes, a
        task-free service): a client that cannot keep up is dropped instead."""
        self._stats.chars_sent += len(frame)
        if self._can_write_now is not None and self._at_once(frame):
            return
        if self._queue(frame, waits=False) is Verdict.SLOW:
            self._on_slow()

    def _at_once(self, frame: str) -> bool:
        """Write ``frame`` in this turn if nothing is queued or being
        written, no other frame went out this way in this turn, and the
        carrier would take it at once; whether it did."""
        can_write_now, output = self._can_write_now, self._output
        if (
            can_write_now is None
            or self._this_turn
            or not output.idle
            or self._stopped
            or not can_write_now()
        ):
            return False
        self._this_turn = True
        self._loop.call_soon(self._next_turn)
        output.writing = True
        try:
            rest = _started(self._transport.send(frame))
        except Exception as exc:
            output.writing = False
            self._failed(exc)
            return True
        if rest is None:  # the socket took it: the common case
            output.writing = False
        else:  # it must wait after all: the rest goes on in a task
            self._finishing_write = self._loop.create_task(self._finish_write(rest))
        return True

    def _next_turn(self) -> None:
        self._this_turn = False

    async def _finish_write(self, rest: Awaitable[None]) -> None:
        try:
            await rest
        except Exception as exc:
            self._failed(exc)
        finally:
            self._finishing_write = None
            self._output.writing = False
            ready = self._ready
            if self._frames and ready is not None:  # what came meanwhile
                self._ready = None
                ready.set_result(None)
            elif not self._frames and self._idle_waiters:
                self._wake_idle_waiters()

    def _queue(self, frame: str, waits: bool) -> Verdict | None:
        """Queue ``frame``: ``None`` while below ``write_limit``, else what
        the core says of it."""
        if self._stopped:  # the carrier is gone: nothing goes out
            return None
        self._frames.append(frame)
        output, ready = self._output, self._ready
        if ready is not None and not output.writing:  # else the writer hands it on
            self._ready = None  # woken once: the next frames need not look
            ready.set_result(None)
        if output.add(len(frame)):
            return None
        return output.over(monotonic(), waits)

    async def _wait_writable(self) -> None:
        """Wait until the writer drained the queue, or say the client is
        too slow once it stayed above ``write_limit`` too long."""
        if self._writable is None:
            self._writable = asyncio.Event()
        writable, output = self._writable, self._output
        deadline = output.deadline()
        delay = 0.0 if deadline is None else max(0.0, deadline - monotonic())
        try:
            async with asyncio.timeout(delay):
                await writable.wait()
        except TimeoutError:
            # A hair past the deadline by the loop's clock: the core decides.
            if output.too_slow(monotonic() + 1e-3):
                dropped = self._on_slow()
                if dropped is not None:
                    await dropped

    # -- the writer ------------------------------------------------------------

    async def flush(self) -> None:
        """Wait until every queued frame went to the carrier (or it failed)."""
        if (
            self._stopped
            or self._writer.done()
            or (self._output.idle and not self._frames)
        ):
            return
        idle = self._loop.create_future()
        self._idle_waiters.append(idle)
        await asyncio.wait([idle, self._writer], return_when=asyncio.FIRST_COMPLETED)

    def stop(self) -> None:
        """The carrier is gone: send nothing more."""
        self._stopped = True
        self._writer.cancel()
        if self._finishing_write is not None:
            self._finishing_write.cancel()

    def _taken(self) -> None:
        self._output.taken()
        if self._writable is not None:
            self._writable.set()
            self._writable = None

    def _wake_idle_waiters(self) -> None:
        waiters, self._idle_waiters = self._idle_waiters, []
        wake_all(waiters)

    def _failed(self, exc: Exception) -> None:
        if isinstance(exc, ConnectionError | RuntimeError):
            # The carrier is gone even if its adapter has not said so yet.
            logger.debug("%r: write failed: %s", self.owner, exc)
        else:  # a bug in a carrier; input may cause it every time
            self._log.exception(
                logger,
                "transport failed",
                "%r: the transport failed to send",
                self.owner,
            )
        self._on_lost()

    async def _write_loop(self) -> None:
        output = self._output
        try:
            while True:
                if not self._frames or output.writing:  # one writer at a time
                    if self._idle_waiters and not output.writing:
                        self._wake_idle_waiters()
                    self._ready = ready = self._loop.create_future()
                    try:
                        await ready
                    finally:
                        self._ready = None
                    continue
                # Everything queued since the last write goes in one batch;
                # the carrier's own flow control holds the writer back.
                frames, self._frames = self._frames, []
                self._taken()
                output.writing = True
                try:
                    await self._transport.send_many(frames)
                finally:
                    output.writing = False
                del frames  # an idle connection must not hold its last batch
        except Exception as exc:
            self._failed(exc)
        finally:
            self._frames.clear()
            self._taken()
            self._wake_idle_waiters()


def _started(write: Coroutine[Any, Any, None]) -> Awaitable[None] | None:
    """Run ``write`` up to its first suspension, in the caller's turn:
    ``None`` if it finished, else an awaitable of the rest."""
    try:
        suspended_on = write.send(None)
    except StopIteration:
        return None
    # A generator made a coroutine by types.coroutine can be awaited.
    return cast(Awaitable[None], _resumed(write, suspended_on))


@types.coroutine
def _resumed(
    write: Coroutine[Any, Any, None], suspended_on: Any
) -> Generator[Any, Any, None]:
    """Go on with ``write`` from where it suspended: ``yield from``, written
    out, because ``write`` already took its first step."""
    while True:
        try:
            sent = yield suspended_on
        except BaseException as exc:  # cancelled, or thrown in: pass it on
            try:
                suspended_on = write.throw(exc)
            except StopIteration:
                return
        else:
            try:
                suspended_on = write.send(sent)
            except StopIteration:
                return
