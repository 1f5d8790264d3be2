"""Request/reply on a channel, both ways, without any I/O
(docs/PROTOCOL-EXTENSIONS.md, section 5).

Three frame types, sent only on a connection where both sides took part in
the extensions (a resumable session)::

    req,<topic>,<id>,<data>          ask the peer; <id> chosen by the asker
    rep,<topic>,<id>,<data>          the answer
    rer,<topic>,<id>,<code> <text>   no answer: why

Ids are up to :data:`MAX_ID_DIGITS` digits, compared as text. Each side
numbers its own requests, so an id names one request of one direction on
one channel, and a reply finds its request by id, whatever the order the
replies come in. :class:`RequestBook` is one side's ledger: what it asked
and still awaits, what it was asked and still owes, and the bound on each
(``Limits.max_outstanding_requests`` per channel and direction).
"""

from __future__ import annotations

from typing import Final

from .codes import RequestCode
from .events import ReplyReceived, RequestDeclined, RequestReceived
from .exceptions import AlreadyAnswered, RequestFailed
from .wire import REP, REQ, RER, Frame

__all__ = [
    "MAX_ID_DIGITS",
    "NO_ANSWERER",
    "TOO_LARGE_REQUEST",
    "TOO_MANY_REQUESTS",
    "RequestBook",
    "format_notice",
    "parse_id",
    "split_notice",
]

MAX_ID_DIGITS: Final = 16
"""A request id is 1 to 16 ASCII digits."""
TOO_MANY_REQUESTS: Final = f"{RequestCode.TOO_MANY:d} too many requests"
NO_ANSWERER: Final = f"{RequestCode.NO_ANSWERER:d} nothing answers requests here"
TOO_LARGE_REQUEST: Final = f"{RequestCode.TOO_LARGE:d} request too large"


def parse_id(payload: str) -> tuple[str, str] | None:
    """Split ``<id>,<rest>`` (the payload of ``req``/``rep``/``rer``) into
    the id and the rest; ``None`` if the id is not 1 to 16 digits. A
    missing rest is ``""``, as a missing ``msg`` payload is."""
    request_id, _, rest = payload.partition(",")
    if (
        0 < len(request_id) <= MAX_ID_DIGITS
        and request_id.isascii()
        and (request_id.isdigit())
    ):
        return request_id, rest
    return None


def format_notice(code: int, text: str) -> str:
    """The ``<code> <text>`` of an ``rer``; the code is three digits."""
    if isinstance(code, bool) or not isinstance(code, int) or not 100 <= code <= 999:
        raise ValueError(f"a request's error code has three digits, not {code!r}")
    return f"{code:d} {text}"


def split_notice(notice: str) -> tuple[int, str]:
    """``"501 nothing answers"`` -> ``(501, "nothing answers")``; a notice
    without a code reads as 500, the answerer's fault."""
    code, _, text = notice.partition(" ")
    if len(code) == 3 and code.isascii() and code.isdigit():
        return int(code), text
    return RequestCode.FAILED, notice


class RequestBook:
    """One side's requests, by channel topic: asked (awaiting a reply) and
    owed (to answer). Made by a protocol core once the connection takes
    part in the extensions; forgets a topic's entries when it closes."""

    __slots__ = ("_asked", "_last_id", "_max", "_owed")

    def __init__(self, max_outstanding: int, last_id: int = 0) -> None:
        self._max = max_outstanding
        self._asked: dict[str, set[str]] = {}
        self._owed: dict[str, set[str]] = {}
        self._last_id = last_id

    @property
    def last_id(self) -> int:
        """The id of this side's latest request. A book that replaces
        another (a new session) goes on from it, so that a late word
        about an old request can never name a new one."""
        return self._last_id

    def __repr__(self) -> str:
        asked = sum(map(len, self._asked.values()))
        owed = sum(map(len, self._owed.values()))
        return f"<RequestBook asked={asked} owed={owed}>"

    def outstanding(self, topic: str) -> int:
        """Requests this side made on ``topic`` and still awaits."""
        return len(self._asked.get(topic, ()))

    def owed(self, topic: str) -> int:
        """Requests the peer made on ``topic`` that this side has not answered."""
        return len(self._owed.get(topic, ()))

    # -- asking ----------------------------------------------------------------

    def ask(self, topic: str, name: str, data: str) -> tuple[str, str]:
        """A new request on the open channel ``topic``: its id and ``req``
        frame. Raises :class:`RequestFailed` (429) past the bound: nothing
        is sent then."""
        asked = self._asked.setdefault(topic, set())
        if len(asked) >= self._max:
            raise RequestFailed(
                name,
                RequestCode.TOO_MANY,
                f"{len(asked)} requests outstanding on this channel, the most "
                "allowed (max_outstanding_requests): await some first",
            )
        self._last_id += 1
        request_id = str(self._last_id)
        asked.add(request_id)
        return request_id, f"{REQ},{topic},{request_id},{data}"

    def abandon(self, topic: str, request_id: str) -> None:
        """Stop awaiting ``request_id`` (it timed out): a late reply is
        then unknown, and ignored."""
        asked = self._asked.get(topic)
        if asked is not None:
            asked.discard(request_id)

    # -- answering -------------------------------------------------------------

    def reply(self, topic: str, request_id: str, data: str) -> str:
        """The ``rep`` frame answering ``request_id``."""
        self._settle(topic, request_id)
        return f"{REP},{topic},{request_id},{data}"

    def fail(self, topic: str, request_id: str, notice: str) -> str:
        """The ``rer`` frame answering ``request_id`` with ``notice``
        (``"<code> <text>"``, see :func:`format_notice`)."""
        self._settle(topic, request_id)
        return self.decline(topic, request_id, notice)

    @staticmethod
    def decline(topic: str, request_id: str, notice: str) -> str:
        """The ``rer`` frame for a request that was never owed
        (:class:`~websocket_multiplex.events.RequestDeclined`)."""
        return f"{RER},{topic},{request_id},{notice}"

    def _settle(self, topic: str, request_id: str) -> None:
        owed = self._owed.get(topic)
        if owed is None or request_id not in owed:
            raise AlreadyAnswered(
                f"request {request_id} on {topic!r} was answered already, or "
                "its channel closed: answer each request once"
            )
        owed.remove(request_id)

    # -- frames from the peer --------------------------------------------------

    def receive(
        self, frame: Frame
    ) -> RequestReceived | ReplyReceived | RequestDeclined | None:
        """A ``req``, ``rep`` or ``rer`` frame on an open channel: the event,
        or ``None`` for one to ignore (a malformed id, a repeated request,
        a reply to nothing this side awaits)."""
        parsed = parse_id(frame.payload)
        if parsed is None:
            return None
        request_id, rest = parsed
        topic = frame.topic
        if frame.type == REQ:
            return self._requested(topic, request_id, rest)
        asked = self._asked.get(topic)
        if asked is None or request_id not in asked:
            return None  # timed out here, or never asked
        asked.remove(request_id)
        if frame.type == REP:
            return ReplyReceived(topic, request_id, rest)
        return ReplyReceived(topic, request_id, "", rest)

    def _requested(
        self, topic: str, request_id: str, data: str
    ) -> RequestReceived | RequestDeclined | None:
        owed = self._owed.setdefault(topic, set())
        if request_id in owed:
            return None  # the peer reused an id it awaits: ignore the copy
        if len(owed) >= self._max:
            return RequestDeclined(topic, request_id, TOO_MANY_REQUESTS)
        owed.add(request_id)
        return RequestReceived(topic, request_id, data)

    def too_large(self, frame: Frame) -> RequestDeclined | None:
        """An oversized ``req``: declined (413) if its id can be read."""
        parsed = parse_id(frame.payload[: MAX_ID_DIGITS + 1])
        if frame.type != REQ or parsed is None:
            return None
        return RequestDeclined(frame.topic, parsed[0], TOO_LARGE_REQUEST)

    def closed(self, topic: str) -> None:
        """The channel of ``topic`` closed: nothing is awaited or owed on it."""
        self._asked.pop(topic, None)
        self._owed.pop(topic, None)

    def clear(self) -> None:
        """Every channel closed, or the peer is new (a session not resumed)."""
        self._asked.clear()
        self._owed.clear()
