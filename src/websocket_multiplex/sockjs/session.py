"""One SockJS session over the HTTP transports, as a state machine.

Over HTTP a session outlives its requests: a *receiving* request (xhr,
xhr_streaming, eventsource, htmlfile, jsonp) holds it while the server
writes frames to it, sending requests (xhr_send, jsonp_send) bring the
client's messages, and between two polls no request holds it at all. The
rules, from sockjs-protocol and sockjs-node 0.3.24's behaviour:

* the first receiving request gets ``o`` and the session is open;
* one receiving request at a time: another one gets
  ``c[2010,"Another connection still open"]`` and the holder keeps it;
* a polling request carries one frame, a streaming one frames until
  ``response_limit`` characters went out, then ends (the client opens the
  next);
* one frame carries at most ``batch_limit`` characters of messages (at
  least one message), so that a poll answer stays small enough to get
  through a bad network, whatever piled up since the last poll;
* ``h`` goes out when nothing else did for ``heartbeat_delay``;
* a session that no request holds for ``disconnect_delay`` expires;
* a holder whose client went away ends the session:
  ``c[1002,"Connection interrupted"]`` to any later request;
* a session the application closed gives its last messages, then
  ``c[code,"reason"]`` to every request, until it expires.

:class:`Session` takes inputs (a request arrives or leaves, messages to
send, the time) and returns what to write; it never touches a socket or a
clock, so every rule is a unit test.
"""

from __future__ import annotations

import enum
import sys
from collections.abc import Callable, Sequence
from typing import Final

from ..exceptions import LocalProtocolError
from .frames import HEARTBEAT, OPEN, close_frame, messages_frame

__all__ = ["Attached", "Expiry", "Receiver", "Session", "SessionState"]

ANOTHER_CONNECTION: Final = close_frame(2010, "Another connection still open")
INTERRUPTED: Final = close_frame(1002, "Connection interrupted")


class SessionState(enum.Enum):
    """Where a session is; printed in its ``repr``."""

    NEW = "new"
    """Made for a request, not opened yet."""
    OPEN = "open"
    CLOSING = "closing"
    """The application closed it: the close frame is served until expiry."""
    CLOSED = "closed"
    """Over (interrupted or expired); kept only to answer late requests."""


class Attached(enum.Enum):
    """What became of a receiving request given to :meth:`Session.attach`."""

    OPENED = "opened"
    """It holds the session (until it is done), which it just opened: tell
    the application."""
    HOLDING = "holding"
    """It holds the session, until it is done."""
    REFUSED = "refused"
    """Another request holds it: this one carries ``2010`` and ends."""
    ENDED = "ended"
    """The session is closing or closed: this one carries what is left
    and the close frame, then ends."""


class Expiry(enum.Enum):
    """What :meth:`Session.tick` found."""

    LIVE = "live"
    """Nothing ended."""
    GONE = "gone"
    """The session expired: forget it. Its application knows it ended (it
    closed the session, or was told when the holder's client left)."""
    TIMED_OUT = "timed out"
    """The session expired while open (its client stopped coming): forget
    it, and tell its application the connection is lost."""


class Receiver:
    """One receiving request, as the session sees it: how its transport
    wraps a frame, and when it must end.

    ``wrap`` turns a frame into the text the transport writes (say
    :func:`~websocket_multiplex.sockjs.frames.xhr_chunk`); a ``polling``
    request ends after one frame, a streaming one once it wrote
    ``response_limit`` characters, or a close frame. ``ends_unseen``: its
    client cannot tell the response's end from a cut (an EventSource
    reconnects after both), so it polls again on the session either way,
    and what a cut lost is lost without a trace.
    """

    __slots__ = (
        "carried",
        "done",
        "ends_unseen",
        "marked",
        "polling",
        "response_limit",
        "wrap",
        "written",
    )

    def __init__(
        self,
        wrap: Callable[[str], str],
        *,
        polling: bool,
        response_limit: int,
        ends_unseen: bool = False,
    ) -> None:
        self.wrap = wrap
        self.polling = polling
        self.response_limit = response_limit
        self.ends_unseen = ends_unseen
        self.marked = False
        """Its first messages went out behind the session's mark."""
        self.written = 0
        self.carried = 0
        """How many of the frames given to the last :meth:`carry` it took."""
        self.done = False
        """Nothing more goes to this request: end its response."""

    def __repr__(self) -> str:
        kind = "polling" if self.polling else "streaming"
        return f"<Receiver {kind} written={self.written} done={self.done}>"

    def carry(self, frames: Sequence[str]) -> str:
        """Wrap what this request may still carry of ``frames``; the rest is
        the caller's to keep. Returns the text to write."""
        chunks = []
        self.carried = 0
        for frame in frames:
            if self.done:
                break
            self.carried += 1
            chunk = self.wrap(frame)
            chunks.append(chunk)
            self.written += len(chunk)
            if self.polling or frame[0] == "c" or self.written >= self.response_limit:
                self.done = True
        return "".join(chunks)


class Session:
    """The state of one SockJS session over the HTTP transports.

    Give it each receiving request with :meth:`attach` and take it back
    with :meth:`detach`; queue the application's messages with
    :meth:`send`; ask :meth:`output` what the holding request must write
    now; call :meth:`tick` at :meth:`deadline`. Times are seconds on any
    monotonic clock.
    """

    def __init__(
        self,
        *,
        heartbeat_delay: float,
        disconnect_delay: float,
        now: float,
        batch_limit: int = 32 * 1024,
    ) -> None:
        self.heartbeat_delay = heartbeat_delay
        self.batch_limit = batch_limit
        self.disconnect_delay = disconnect_delay
        self.state = SessionState.NEW
        self.receiver: Receiver | None = None
        """The receiving request that holds the session, if any."""
        self.queued_size = 0
        """Characters of the messages waiting for a receiving request."""
        self.close_delivered = False
        """A request carried the close frame the application asked for."""
        self._queue: list[str] = []
        self._sends = 0  # sending requests under way
        self._close_frame = INTERRUPTED
        self._lossless = False
        self._mark: Callable[[int], str] | None = None
        self._carried_messages = 0  # messages that went out, marks aside
        self._beat_due = False
        self._heartbeat_at: float | None = None
        self._expires_at: float | None = now + disconnect_delay

    def __repr__(self) -> str:
        held = "held" if self.receiver is not None else "not held"
        return f"<Session {self.state.value}, {held}, {self.queued_size} queued>"

    @property
    def accepts_messages(self) -> bool:
        """Whether messages from the client are for the application."""
        return self.state is SessionState.OPEN

    def end_rather_than_lose(self, mark: Callable[[int], str] | None = None) -> None:
        """The application recovers from the session's end (a resumable
        session of ours resumes on a new one), not from messages lost
        without it. A receiving request whose client cannot tell its end
        from a cut (:attr:`Receiver.ends_unseen`) is then not ended by
        ``response_limit``: it ends only by a cut, which the server sees
        and which ends the session, instead of a cut just before a planned
        end that the client would take for the end and poll on past.

        ``mark(n)``, if given, is a message put before the first messages
        of every response but the session's first, or sent instead of its
        first heartbeat: ``n`` messages went out before it. A client that
        counted fewer lost an answer the server cannot know was lost (a
        browser sends a request again, on its own, when the kept-alive
        connection it used closed before the answer began), and ends the
        session before it counts anything past the hole."""
        self._lossless = True
        self._mark = mark
        if self.receiver is not None:
            self._unlimited(self.receiver)

    def _unlimited(self, receiver: Receiver) -> None:
        if receiver.ends_unseen and not receiver.done:
            receiver.response_limit = sys.maxsize

    # -- receiving requests ---------------------------------------------------

    def attach(self, receiver: Receiver, now: float) -> tuple[Attached, str]:
        """A receiving request for this session arrived. Returns what became
        of it and the text it writes at once."""
        if self.receiver is not None:
            return Attached.REFUSED, receiver.carry([ANOTHER_CONNECTION])
        if self.state in (SessionState.CLOSING, SessionState.CLOSED):
            self._expires_at = now + self.disconnect_delay  # counted again
            frames = [messages_frame(self._take())] if self._queue else []
            if not self._queue:  # the close frame only once all went out
                frames.append(self._close_frame)
            text = self._carry(receiver, frames, now)
            receiver.done = True  # the next request carries what is left
            return Attached.ENDED, text
        self.receiver = receiver
        if self._lossless:
            self._unlimited(receiver)
        self._expires_at = None
        self._heartbeat_at = now + self.heartbeat_delay
        if self.state is SessionState.NEW:
            self.state = SessionState.OPEN
            return Attached.OPENED, self._carry(receiver, [OPEN], now)
        return Attached.HOLDING, self.output(now)

    def detach(self, receiver: Receiver, now: float, *, aborted: bool) -> bool:
        """A receiving request ended: done (``aborted=False``) or because its
        client went away before it was done. Returns whether that ended an
        open session (tell the application: the connection is lost).

        A request that is done has let the session go already, as soon as
        it carried its last frame: the next request need not wait for this
        one's response to end."""
        if receiver is not self.receiver:
            return False  # done, refused, or ended at attach
        self._let_go(now)
        if aborted and self.state is SessionState.OPEN:
            self._end()
            return True
        return False

    def output(self, now: float) -> str:
        """What the holding request must write now ("" for nothing)."""
        receiver = self.receiver
        if receiver is None or receiver.done:
            return ""
        frames = []
        if self._queue:
            taken = self._take()
            before = self._carried_messages
            self._carried_messages = before + len(taken)
            if not receiver.marked:
                receiver.marked = True
                if self._mark is not None and before:
                    taken = [self._mark(before), *taken]
            frames.append(messages_frame(taken))
        if self.state is SessionState.CLOSING and not self._queue:
            frames.append(self._close_frame)  # once every message went out
        elif self._beat_due and not frames:
            mark = self._mark
            if mark is not None and not receiver.marked and self._carried_messages:
                # The mark instead: an answer lost just before a quiet
                # spell shows within a heartbeat, not at the next message.
                receiver.marked = True
                frames.append(messages_frame([mark(self._carried_messages)]))
            else:
                frames.append(HEARTBEAT)
        self._beat_due = False
        if not frames:
            return ""
        self._heartbeat_at = now + self.heartbeat_delay
        return self._carry(receiver, frames, now)

    def sending(self) -> None:
        """A sending request (``xhr_send``) is handing over messages: the
        session does not expire until :meth:`sent` (a paced send may take
        longer than ``disconnect_delay``)."""
        self._sends += 1

    def sent(self, now: float) -> None:
        """A sending request is done: without a receiving request, the
        countdown starts again from now."""
        self._sends -= 1
        if self.receiver is None and self._expires_at is not None:
            self._expires_at = max(self._expires_at, now + self.disconnect_delay)

    # -- the application's side -------------------------------------------------

    def send(self, messages: Sequence[str]) -> None:
        """Queue messages for the client; raises :class:`LocalProtocolError`
        unless the session is open."""
        if self.state is not SessionState.OPEN:
            raise LocalProtocolError(f"the SockJS session is {self.state.value}")
        self._queue.extend(messages)
        self.queued_size += sum(map(len, messages))

    def close(self, code: int, reason: str) -> bool:
        """Close from the application's side: what is queued still goes out,
        then ``c[code,"reason"]``. Returns whether it was open."""
        if self.state is not SessionState.OPEN:
            return False
        self.state = SessionState.CLOSING
        self._close_frame = close_frame(code, reason)
        return True

    # -- time -------------------------------------------------------------------

    def deadline(self) -> float | None:
        """When :meth:`tick` must be called next; ``None``: not until
        something else happens."""
        if self.receiver is not None:
            return self._heartbeat_at
        if self._sends:
            return None
        return self._expires_at

    def tick(self, now: float) -> Expiry:
        """Let time pass; says whether the session expired, and what to do.
        A heartbeat that falls due is in the next :meth:`output`."""
        if self.receiver is not None:
            if self._heartbeat_at is not None and now >= self._heartbeat_at:
                self._beat_due = True
                self._heartbeat_at = now + self.heartbeat_delay
            return Expiry.LIVE
        if self._sends or self._expires_at is None or now < self._expires_at:
            return Expiry.LIVE
        self._expires_at = None
        was_open = self.state in (SessionState.NEW, SessionState.OPEN)
        self._end()
        return Expiry.TIMED_OUT if was_open else Expiry.GONE

    def _carry(self, receiver: Receiver, frames: list[str], now: float) -> str:
        text = receiver.carry(frames)
        if (
            self.state is SessionState.CLOSING
            and receiver.carried == len(frames)
            and frames[-1] is self._close_frame
        ):
            self.close_delivered = True  # the close frame comes last
        if receiver.done and receiver is self.receiver:
            self._let_go(now)
        return text

    def _let_go(self, now: float) -> None:
        """No request holds the session now: its countdown starts."""
        self.receiver = None
        self._heartbeat_at = None
        self._beat_due = False
        self._expires_at = now + self.disconnect_delay

    def end(self) -> None:
        """Over, whatever its state (the endpoint is closing): late requests
        get the close frame, sends raise."""
        if self.state is not SessionState.CLOSED:
            self._end()

    def _end(self) -> None:
        if self.state is not SessionState.CLOSING:
            self._close_frame = INTERRUPTED
        self.state = SessionState.CLOSED
        self._queue.clear()
        self.queued_size = 0

    def _take(self) -> list[str]:
        """The queued messages one frame carries: all of them, or as many as
        make ``batch_limit`` characters (at least one)."""
        queue, limit = self._queue, self.batch_limit
        if self.queued_size <= limit:
            self._queue, self.queued_size = [], 0
            return queue
        size = count = 0
        for text in queue:
            if count and size + len(text) > limit:
                break  # the next frame takes it
            size += len(text)
            count += 1
        taken = queue[:count]
        del queue[:count]
        self.queued_size -= size
        return taken
