"""Resumable sessions, client side (docs/PROTOCOL-EXTENSIONS.md, section 3).

A :class:`~websocket_multiplex.asyncio.client.MultiplexClient` made with
``resume=True`` opens its first carrier with ``hey,r1,<token>`` and keeps
every frame it sends from then on, until it knows: a server of ours answers
with the session's token (the session is on), the original one sends
anything else or nothing (the session is off: the base protocol, as if
never offered). While the session is on, or still offered when the
carrier is lost, a new carrier names the token, and each side resends
what the other lacks.
"""

from __future__ import annotations

import asyncio
import enum
import secrets

from ..resume import Book, Hello, parse_ack

__all__ = ["ClientSession", "Offer"]


class Offer(enum.Enum):
    """Where the client's offer of a resumable session stands."""

    OFFERED = "offered: frames are kept until the server answers"
    ON = "on: a lost carrier is resumed"
    OFF = "off: the server speaks the base protocol"


class ClientSession:
    """What a client keeps to resume its connection: the token, the
    :class:`~websocket_multiplex.resume.Book`, and whether the server
    takes part. ``limit`` bounds the characters kept unacknowledged:
    above it, senders wait for acks (:meth:`room`); an offer still
    unanswered past it is given up (the server is not ours)."""

    __slots__ = (
        "_acked",
        "_limit",
        "_settled",
        "book",
        "epoch",
        "offer",
        "offer_sent",
        "token",
        "written",
    )

    def __init__(self, limit: int = 4 << 20) -> None:
        self._limit = limit
        self._acked: asyncio.Event | None = None
        self._settled: asyncio.Event | None = None  # made when awaited
        self.offer = Offer.OFFERED
        self.offer_sent = False
        """The offer went out on a carrier: the server may hold the session."""
        self.token = _new_token()
        self.book = Book()
        self.written = 0
        """Of the frames kept, how many went to a carrier (the rest were
        sent while there was none)."""
        self.epoch = 0
        """Counts fresh starts of the book: a frame kept in one epoch is
        resent by a resume of that epoch only."""

    @property
    def on(self) -> bool:
        return self.offer is Offer.ON

    @property
    def resuming(self) -> bool:
        """Whether a new carrier resumes (else it offers, or is base)."""
        return self.on or (self.offer is Offer.OFFERED and self.offer_sent)

    def hello(self) -> str:
        """The first frame on a new carrier: the offer, or a resume."""
        if self.resuming:
            return self.book.hello(self.token).format()
        self.offer_sent = True
        return Hello(self.token).format()

    def record(self, frame: str) -> None:
        """The client sends ``frame`` (``sub``, ``msg``, ``uns``): keep it
        while the session may be on."""
        if self.offer is Offer.OFF:
            return
        self.book.sent(frame)
        if self.offer is Offer.OFFERED and self.book.retained_size > self._limit:
            self.give_up()

    def answered(self, text: str) -> bool:
        """The first frame after a fresh offer: whether it was the server's
        hello (then the session is on); else the server is not ours."""
        answer = Hello.parse(text)
        if answer is None or answer.received != 0:
            self.give_up()
            return False
        self.adopt(answer.token)
        return True

    def unwritten(self) -> list[str]:
        """The messages kept that never went to any carrier. A session the
        server lost sends them again once the channels are subscribed
        again, as a base reconnection sends what waited for it."""
        book = self.book
        frames = book.since(max(self.written, book.acked))
        return [frame for frame in frames if frame.startswith("msg,")]

    def adopt(self, token: str) -> None:
        """The server holds the offered session as ``token``, and has none
        of its frames yet (its welcome, or its answer to a resume of an
        offer it never saw): everything kept is still to be resent."""
        self.token = token
        self.offer = Offer.ON
        self._wake_settled()

    async def settled(self) -> None:
        """Wait until the server answered the offer, either way (a closing
        client gives it up: that ends the wait too)."""
        while self.offer is Offer.OFFERED:
            if self._settled is None:
                self._settled = asyncio.Event()
            await self._settled.wait()

    def _wake_settled(self) -> None:
        if self._settled is not None and self.offer is not Offer.OFFERED:
            self._settled.set()
            self._settled = None

    def restart(self, token: str) -> None:
        """The server could not resume and began a new session, ``token``."""
        self._start(Offer.ON, token)

    def forget(self) -> None:
        """Resuming failed: offer a fresh session on the next carrier."""
        self._start(Offer.OFFERED, _new_token())

    def give_up(self) -> None:
        """The server does not take part: keep nothing more."""
        self._start(Offer.OFF, "")

    def acknowledged(self, text: str) -> bool:
        """An ``ack`` from the server; whether it made sense."""
        count = parse_ack(text)
        if count is None or not self.book.acknowledged(count):
            return False
        self._wake()
        return True

    def resend_after(self, count: int) -> list[str] | None:
        """The server's resume answer says it has ``count`` of our frames:
        what to send again (see :meth:`Book.resend_after`)."""
        resend = self.book.resend_after(count)
        if resend is not None:
            self._wake()
        return resend

    def _wake(self) -> None:
        if self.book.retained_size <= self._limit and self._acked is not None:
            self._acked.set()
            self._acked = None

    async def room(self) -> None:
        """Wait while more than ``limit`` characters are unacknowledged."""
        while self.offer is Offer.ON and self.book.retained_size > self._limit:
            if self._acked is None:
                self._acked = asyncio.Event()
            await self._acked.wait()

    def _start(self, offer: Offer, token: str) -> None:
        self.offer = offer
        self.offer_sent = offer is not Offer.OFFERED
        self.token = token
        self.book = Book()
        self.written = 0
        self.epoch += 1
        self._wake_settled()
        if self._acked is not None:  # release waiting senders: nothing is kept
            self._acked.set()
            self._acked = None


def _new_token() -> str:
    return secrets.token_urlsafe(18)  # 144 bits, of [A-Za-z0-9_-]
