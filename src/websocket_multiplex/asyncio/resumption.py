"""Resumable sessions, server side (docs/PROTOCOL-EXTENSIONS.md, section 3).

A client of ours opens its first carrier with ``hey,r1``; the server then
gives the connection a :class:`Session`: a token, a
:class:`~websocket_multiplex.resume.Book` of the frames each side sent,
and a :class:`SessionCarrier`, which the connection's outbox writes to
instead of the carrier itself. When the carrier drops, the connection
stays: its channels and handlers go on, what they send is kept, and a new
carrier whose first frame names the token takes over where the old one
stopped. After ``Limits.resume_grace`` seconds without one, or once more
than ``Limits.resume_buffer`` characters wait for the client, the
connection ends, every channel with :attr:`CloseReason.NOT_RESUMED`.

:class:`Sessions` is the server's table of them, by token, with the named
bounds on how many may wait detached (``Limits.max_detached_sessions``)
and on what they keep in all (``Limits.detached_buffer``).
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Callable
from typing import Protocol

from ..events import CloseReason
from ..limits import Limits
from ..resume import ACK_ALONE, CONTROL, GOODBYE, Book, Hello, format_ack, parse_ack
from .throttle import LogThrottle
from .transport import Transport, WritesNow

__all__ = ["ACK_DELAY", "Session", "SessionCarrier", "SessionOwner", "Sessions"]

logger = logging.getLogger("websocket_multiplex")

CATCH_UP_BATCH = 32 << 10
"""Characters per message of what a resumed session resends."""

ACK_DELAY = 0.05
"""Seconds after a frame arrives within which it is acknowledged, when
fewer than ``ACK_EVERY`` came and nothing goes out; while frames go out,
the ack rides with them, alone after twice that at most
(:meth:`~websocket_multiplex.resume.Book.timer_fired`)."""


class SessionOwner(Protocol):
    """What a :class:`Session` asks of its connection (a
    :class:`~websocket_multiplex.Connection` implements it)."""

    def carried(self, carrier: Transport, text: str) -> None:
        """A frame of the session came over ``carrier``."""
        ...

    def carrier_lost(self, carrier: Transport) -> bool:
        """``carrier`` ended; whether the session holds on."""
        ...

    def superseded(self) -> None:
        """The session went on over another carrier than the connection's
        own: frames that still come over that one are stale."""
        ...

    def send_control(self, frame: str) -> None:
        """Queue an ack, in order with what is queued."""
        ...

    def expire(self, reason: CloseReason) -> None:
        """The session cannot go on: end the connection."""
        ...

    def said_goodbye(self) -> None:
        """The client closed on purpose: end the connection, and close the
        carrier, which tells the client that its goodbye arrived."""
        ...


class SessionCarrier:
    """What a resumable connection sends through: a
    :class:`~websocket_multiplex.asyncio.transport.Transport` that numbers
    and keeps every frame (:class:`~websocket_multiplex.resume.Book`) and
    hands it to whichever carrier is attached now, if any.

    Its writes never fail: a carrier that breaks mid-write leaves its
    frames kept, for the next one. While attached, a writer whose client
    has not acknowledged ``limit`` characters waits for acks (the session's
    own flow control, which the outbox's slow-client rule then bounds in
    time); while detached, each write calls ``on_kept`` (the session
    checks its bounds: ``limit`` and the server's ``detached_buffer``).
    """

    __slots__ = (
        "_acked",
        "_book",
        "_carrier_can_write_now",
        "_catching_up",
        "_covered",
        "_limit",
        "_on_kept",
        "attached",
        "request",
    )

    def __init__(
        self,
        carrier: Transport,
        book: Book,
        limit: int,
        on_kept: Callable[[int], None],
    ) -> None:
        self.request = carrier.request
        self.attached: Transport | None = None
        """The carrier frames go to now, or ``None`` while detached."""
        self._carrier_can_write_now: Callable[[], bool] | None = None
        self._attached(carrier)
        self._book = book
        self._limit = limit
        self._on_kept = on_kept
        self._catching_up: asyncio.Task[None] | None = None
        self._covered = 0
        """The frames up to this number went, or go, in a catch-up: a
        writer that waited for it must not send them again."""
        self._acked: asyncio.Event | None = None  # made when a writer waits

    def attach(self, carrier: Transport, first: list[str]) -> Transport | None:
        """Go on over ``carrier``, sending ``first`` (the hello answer and
        the resent frames) before anything else; returns the carrier it
        replaces, if one was still attached."""
        replaced = self.attached
        self._attached(carrier)
        self._covered = self._book.sent_count
        if self._catching_up is not None:  # for a carrier gone already
            self._catching_up.cancel()
        self._catching_up = asyncio.get_running_loop().create_task(
            self._catch_up(carrier, first)
        )
        self._wake_writer()  # the resume acknowledged what the client has
        return replaced

    def detach(self, carrier: Transport) -> bool:
        """``carrier`` is gone; whether it was the attached one."""
        if self.attached is not carrier:
            return False
        self._attached(None)
        self._wake_writer()
        return True

    def _attached(self, carrier: Transport | None) -> None:
        self.attached = carrier
        self._carrier_can_write_now = (
            carrier.can_write_now if isinstance(carrier, WritesNow) else None
        )

    def acknowledged(self, count: int) -> bool:
        """The client has the first ``count`` frames; whether that made sense."""
        if not self._book.acknowledged(count):
            return False
        if self._book.retained_size <= self._limit:
            self._wake_writer()
        return True

    # -- Transport ---------------------------------------------------------------

    def can_write_now(self) -> bool:
        """Whether a frame sent now goes out in its sender's turn."""
        if self.attached is None:
            return True  # it is only kept
        if self._catching_up is not None or self._book.retained_size > self._limit:
            return False
        can_write_now = self._carrier_can_write_now
        return can_write_now is not None and can_write_now()

    async def send(self, text: str) -> None:
        book = self._book
        numbered = not text.startswith(CONTROL)
        if numbered:
            book.sent(text)
        number = book.sent_count
        carrier = await self._ready()
        if carrier is None:
            return
        if numbered and number <= self._covered:
            return  # a resume while it waited: its catch-up carried it
        try:
            ack = book.due()
            if ack is not None:  # acks ride along with what goes out anyway
                await carrier.send_many([text, ack])
            else:
                await carrier.send(text)
        except ConnectionError:
            return  # kept for the next carrier; this one's end is on its way
        await self._room()

    async def send_many(self, texts: list[str]) -> None:
        book = self._book
        numbered = [text for text in texts if not text.startswith(CONTROL)]
        book.sent_many(numbered)
        first = book.sent_count - len(numbered) + 1
        carrier = await self._ready()
        if carrier is None:
            return
        if first <= self._covered:  # a resume while it waited: see send()
            texts = _without_first(texts, self._covered - first + 1)
        ack = book.due()
        if ack is not None:
            texts = [*texts, ack]
        if not texts:
            return
        try:
            await carrier.send_many(texts)
        except ConnectionError:
            return
        await self._room()

    async def close(self, code: int, reason: str) -> None:
        carrier = self.attached
        if carrier is not None:
            await carrier.close(code, reason)

    # -- internals ---------------------------------------------------------------

    async def _ready(self) -> Transport | None:
        """The carrier to write to once what must go first went; ``None``
        while detached (then the frames are only kept, within the bound)."""
        while (catching_up := self._catching_up) is not None:
            # A resume during a catch-up replaces it: wait for the last one.
            await asyncio.wait([catching_up])
        carrier = self.attached
        if carrier is None:
            self._on_kept(self._book.retained_size)
        return carrier

    async def _catch_up(self, carrier: Transport, first: list[str]) -> None:
        try:
            for batch in _batches(first):
                await carrier.send_many(batch)
        except ConnectionError:
            pass  # its end is on its way: the next carrier catches up
        finally:
            if self._catching_up is asyncio.current_task():
                self._catching_up = None

    async def _room(self) -> None:
        """Wait while the client holds back more than ``limit`` unacknowledged."""
        while self.attached is not None and self._book.retained_size > self._limit:
            if self._acked is None:
                self._acked = asyncio.Event()
            await self._acked.wait()

    def _wake_writer(self) -> None:
        acked, self._acked = self._acked, None
        if acked is not None:
            acked.set()


def _without_first(texts: list[str], count: int) -> list[str]:
    """``texts`` without its first ``count`` numbered frames (acks stay)."""
    kept = []
    for text in texts:
        if count and not text.startswith(CONTROL):
            count -= 1
        else:
            kept.append(text)
    return kept


def _batches(frames: list[str]) -> list[list[str]]:
    """``frames`` cut in batches of at most :data:`CATCH_UP_BATCH`
    characters (a lone larger frame is a batch of its own), the first
    frame alone: a SockJS carrier sends a batch as one message, which a
    flaky network would cut whole again and again."""
    batches: list[list[str]] = [frames[:1]]
    size = CATCH_UP_BATCH
    for frame in frames[1:]:
        if size + len(frame) > CATCH_UP_BATCH:
            batches.append([])
            size = 0
        batches[-1].append(frame)
        size += len(frame)
    return batches


class Session:
    """One resumable connection's session: its token, book, carrier and
    grace timer. Its connection (``owner``) feeds it the frames that arrive
    (:meth:`incoming`) and says when a carrier ends (:meth:`carrier_lost`)."""

    __slots__ = (
        "_ack_timer",
        "_expiry",
        "_table",
        "book",
        "carrier",
        "owner",
        "resumptions",
        "token",
    )

    def __init__(
        self,
        table: Sessions,
        carrier: Transport,
        owner: SessionOwner,
        token: str,
    ) -> None:
        self._table = table
        self.owner = owner
        self.token = token
        self.book = Book()
        self.carrier = SessionCarrier(
            carrier, self.book, table.limits.resume_buffer, self._kept
        )
        self._ack_timer: asyncio.TimerHandle | None = None
        self._expiry: asyncio.TimerHandle | None = None
        self.resumptions = 0

    def __repr__(self) -> str:
        return f"<Session {self.token[:6]!r}...>"

    @property
    def ended(self) -> bool:
        return self._table.get(self.token) is not self

    def welcome(self) -> str:
        """The answer to the hello that opened the session."""
        return Hello(self.token, 0).format()

    def incoming(self, text: str) -> str | None:
        """A frame from the client: the frame to handle, or ``None`` if it
        was the session's own (an ack, a stray hello)."""
        if text.startswith(CONTROL):
            count = parse_ack(text)
            if count is not None and not self.carrier.acknowledged(count):
                logger.debug("%r: ignoring an impossible ack %d", self, count)
            elif text == GOODBYE:  # the client closed: its carrier's end is final
                self.end()
                self.owner.said_goodbye()
            return None
        book = self.book  # what Book.arrived() does, inline: every frame
        book.received_count += 1
        if book.received_count - book.told >= ACK_ALONE:
            # Nothing went out to carry the ack: alone.
            self.owner.send_control(format_ack(book.received_count))
            book.told = book.received_count
        elif self._ack_timer is None:
            self._arm_ack()
        return text

    def _arm_ack(self) -> None:
        self.book.timer_armed()
        self._ack_timer = asyncio.get_running_loop().call_later(
            ACK_DELAY, self._flush_ack
        )

    def _flush_ack(self) -> None:
        """The ack timer (the policy: :meth:`Book.timer_fired`)."""
        self._ack_timer = None
        if self.carrier.attached is None:
            return  # a resume's hello acknowledges
        ack = self.book.timer_fired()
        if ack is not None:
            self.owner.send_control(ack)
        elif self.book.overdue:
            self._arm_ack()

    def resume(self, carrier: Transport, received: int) -> bool:
        """Carry on over ``carrier``, whose client has ``received`` of our
        frames; ``False`` if it cannot (those frames are forgotten, or were
        never sent: the client is confused or lying)."""
        resend = self.book.resend_after(received)
        if resend is None:
            return False
        self._table.attached(self)
        if self._expiry is not None:
            self._expiry.cancel()
            self._expiry = None
        answer = self.book.hello(self.token).format()
        replaced = self.carrier.attach(carrier, [answer, *resend])
        if replaced is not None:  # the old carrier is not dead yet: it is now
            asyncio.get_running_loop().create_task(_close(replaced))
        if not self.resumptions:  # the connection's own carrier, never again
            self.owner.superseded()
        self.resumptions += 1
        return True

    def carrier_lost(self, carrier: Transport) -> bool:
        """``carrier`` ended; whether the session holds on (the connection
        then stays, detached, for ``resume_grace`` seconds)."""
        if self.ended:
            return False
        if self.carrier.detach(carrier):
            self._expiry = asyncio.get_running_loop().call_later(
                self._table.limits.resume_grace,
                self.owner.expire,
                CloseReason.NOT_RESUMED,
            )
            self._table.detached(self)
        return True

    def end(self) -> None:
        """The connection is over: forget the session."""
        for timer in (self._expiry, self._ack_timer):
            if timer is not None:
                timer.cancel()
        self._expiry = self._ack_timer = None
        self._table.forget(self)

    def _kept(self, retained: int) -> None:
        """Frames were kept while detached: ``retained`` characters now."""
        if retained <= self._table.limits.resume_buffer:
            self._table.grew(self, retained)
            return
        self._table.log.info(
            logger,
            "resume_buffer",
            "%r: more than resume_buffer waits for the client",
            self,
        )
        self.owner.expire(CloseReason.NOT_RESUMED)


async def _close(carrier: Transport) -> None:
    try:
        await carrier.close(1000, "resumed elsewhere")
    except Exception:  # it may be half gone already
        logger.debug("closing a replaced carrier failed", exc_info=True)


class Sessions:
    """A server's resumable sessions, by token.

    Those waiting for their client are bounded in number
    (``Limits.max_detached_sessions``: past it, the one that waited longest
    ends) and in the characters they keep in all
    (``Limits.detached_buffer``: past it, the one that keeps most ends, so
    that a few clients that never acknowledge cannot push out everybody
    else's). A client that opens and drops connections cannot make the
    server keep them all, nor all they were sent. An ending session's
    handlers may send to others, which may end more: each only while the
    bound is exceeded.
    """

    __slots__ = ("_by_token", "_detached", "_detached_size", "limits", "log")

    def __init__(self, limits: Limits, log: LogThrottle | None = None) -> None:
        self.limits = limits
        self.log = log if log is not None else LogThrottle()
        """For the lines a client can cause at will."""
        self._by_token: dict[str, Session] = {}
        # Detached sessions, oldest first, and the characters each keeps.
        self._detached: dict[Session, int] = {}
        self._detached_size = 0

    def __len__(self) -> int:
        return len(self._by_token)

    @property
    def detached_count(self) -> int:
        return len(self._detached)

    @property
    def detached_size(self) -> int:
        """Characters kept, in all, for the sessions waiting for their client."""
        return self._detached_size

    def open(
        self,
        carrier: Transport,
        owner: SessionOwner,
        proposed: str | None = None,
    ) -> Session:
        """A new session for ``owner``, whose carrier is ``carrier``; its
        token is the one the client ``proposed`` unless that one is taken
        (then the client learns another from the welcome)."""
        token = proposed
        if token is None or token in self._by_token:
            token = secrets.token_urlsafe(18)  # 144 bits, of [A-Za-z0-9_-]
        session = Session(self, carrier, owner, token)
        self._by_token[session.token] = session
        return session

    def get(self, token: str) -> Session | None:
        return self._by_token.get(token)

    def attached(self, session: Session) -> None:
        self._detached_size -= self._detached.pop(session, 0)

    def detached(self, session: Session) -> None:
        self._detached[session] = 0
        self.grew(session, session.book.retained_size)

    def grew(self, session: Session, retained: int) -> None:
        """``session``, detached, keeps ``retained`` characters now."""
        if session not in self._detached:
            return
        self._detached_size += retained - self._detached[session]
        self._detached[session] = retained
        limits, detached = self.limits, self._detached
        while detached:
            if len(detached) > limits.max_detached_sessions:
                shed = next(iter(detached))  # the oldest
            elif self._detached_size > limits.detached_buffer:
                shed = max(detached, key=detached.__getitem__)  # the largest
                self.log.info(
                    logger,
                    "detached_buffer",
                    "%r: sessions waiting for their client keep more than "
                    "detached_buffer: the one that keeps most ends",
                    shed,
                )
            else:
                return
            self.attached(shed)  # no longer counted
            shed.owner.expire(CloseReason.NOT_RESUMED)

    def forget(self, session: Session) -> None:
        self.attached(session)
        if self._by_token.get(session.token) is session:
            del self._by_token[session.token]
