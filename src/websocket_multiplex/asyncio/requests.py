"""Request/reply on one channel, asyncio side, the same for a server
channel and a client channel (docs/PROTOCOL-EXTENSIONS.md, section 5).

The core (:class:`~websocket_multiplex.reqrep.RequestBook`) decides ids,
bounds and which replies are known; here, a :class:`Calls` per channel
(made on first use) holds the futures of the requests it awaits and the
requests from the peer waiting to be read, and a :class:`Request` is one of
those, to answer once.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Final, Protocol, Self

from ..codes import RequestCode
from ..events import CloseReason
from ..exceptions import AlreadyAnswered, ChannelClosed, RequestFailed, RequestTimeout
from ..flow import Held
from ..reqrep import format_notice, split_notice
from .inbox import ReceivingChannel

__all__ = [
    "DEFAULT_TIMEOUT",
    "NO_ANSWERER_TEXT",
    "AnswerKind",
    "Calls",
    "Request",
    "RequestOwner",
]

DEFAULT_TIMEOUT: Final = 10.0
"""Seconds ``channel.request()`` waits for a reply unless told otherwise
(Phoenix's default): a request never waits forever by accident."""


class RequestOwner(Protocol):
    """What a :class:`Request` asks of its channel's owner (a connection or
    a client): send the answer."""

    def answer(
        self, request: Request, frame_of: AnswerKind, wait: bool
    ) -> Awaitable[None] | None:
        """Send the answer to ``request``; what to await when ``wait``."""
        ...


class AnswerKind:
    """A reply (``notice is None``) or an error reply, not yet a frame."""

    __slots__ = ("data", "notice")

    def __init__(self, data: str, notice: str | None = None) -> None:
        self.data = data
        self.notice = notice


class Request:
    """A request from the peer on a channel: ``data``, answered once with
    :meth:`reply` or :meth:`fail` (or their ``_nowait`` forms, for plain
    code such as a task-free :class:`ChannelHandler`'s ``on_request``)."""

    __slots__ = ("_answered", "_owner", "channel", "data", "id", "origin")

    def __init__(
        self,
        owner: RequestOwner,
        channel: ReceivingChannel,
        request_id: str,
        data: str,
        origin: object = None,
    ) -> None:
        self._owner = owner
        self.origin = origin
        """What its owner tells it by (a client: the session it came in)."""
        self.channel = channel
        """The channel it came on."""
        self.id = request_id
        """The peer's id for it, unique among the peer's requests in flight
        on this channel."""
        self.data = data
        self._answered = False

    def __repr__(self) -> str:
        state = "answered" if self._answered else "open"
        return f"<Request {self.id} on {self.channel.name!r} {state}>"

    @property
    def answered(self) -> bool:
        return self._answered

    async def reply(self, data: str) -> None:
        """Answer with ``data``; waits while the output is full, as ``send``.
        On a closed channel it does nothing: the request failed on the
        requester's side with the close."""
        pending = self._answer(_text(data), None, wait=True)
        if pending is not None:
            await pending

    async def fail(self, text: str, code: int = RequestCode.REFUSED) -> None:
        """Answer with an error: the requester's ``request()`` raises
        :class:`~websocket_multiplex.RequestFailed` with ``code`` (three
        digits; 400 unless given) and ``text``."""
        pending = self._answer("", format_notice(code, _text(text)), wait=True)
        if pending is not None:
            await pending

    def reply_nowait(self, data: str) -> None:
        """:meth:`reply` without waiting (a client that cannot keep up is
        dropped instead, as with ``send_nowait``)."""
        self._answer(_text(data), None, wait=False)

    def fail_nowait(self, text: str, code: int = RequestCode.REFUSED) -> None:
        """:meth:`fail` without waiting."""
        self._answer("", format_notice(code, _text(text)), wait=False)

    def _answer(
        self, data: str, notice: str | None, wait: bool
    ) -> Awaitable[None] | None:
        if self._answered:
            raise AlreadyAnswered(f"{self!r} was answered already: answer once")
        self._answered = True
        return self._owner.answer(self, AnswerKind(data, notice), wait)


NO_ANSWERER_TEXT: Final = "this channel answers no requests"


def _refuse(request: Request) -> None:
    request.fail_nowait(NO_ANSWERER_TEXT, RequestCode.NO_ANSWERER)


def _text(data: object) -> str:
    if not isinstance(data, str):
        raise TypeError(f"channels carry text: encode {type(data).__name__} first")
    return data


class Calls:
    """One channel's requests: those it awaits, and the peer's waiting to
    be read (counted in the channel's inbox share, ``held``).

    ``async for request in calls`` reads the peer's requests until the
    channel closes; requests not read by then are dropped (the peer's
    requests fail with the close)."""

    __slots__ = (
        "_awaiting",
        "_closed",
        "_held",
        "_name",
        "_queue",
        "_refusing",
        "_waiter",
    )

    def __init__(self, name: str, held: Held) -> None:
        self._name = name
        self._held = held
        self._awaiting: dict[str, asyncio.Future[str]] = {}
        self._queue: list[Request] = []
        self._waiter: asyncio.Future[None] | None = None
        self._closed: CloseReason | None = None
        self._refusing = False

    # -- requests this side made -----------------------------------------------

    def expect(self, request_id: str) -> asyncio.Future[str]:
        """A future for the reply to ``request_id``."""
        future = asyncio.get_running_loop().create_future()
        self._awaiting[request_id] = future
        return future

    async def wait(
        self, request_id: str, future: asyncio.Future[str], timeout: float | None
    ) -> str:
        """The reply, or :class:`RequestTimeout` after ``timeout`` s."""
        try:
            if timeout is None:
                return await future
            async with asyncio.timeout(timeout):
                return await future
        except TimeoutError:
            raise RequestTimeout(self._name, timeout or 0.0) from None
        finally:
            self._awaiting.pop(request_id, None)

    def replied(self, request_id: str, payload: str, notice: str | None) -> None:
        """The peer answered ``request_id`` (a reply the core knew)."""
        future = self._awaiting.pop(request_id, None)
        if future is None or future.done():
            return
        if notice is None:
            future.set_result(payload)
        else:
            code, text = split_notice(notice)
            future.set_exception(RequestFailed(self._name, code, text))

    def fail_all(self, error: BaseException) -> None:
        """Every awaited request fails with ``error`` (a channel closed, a
        session lost)."""
        awaiting, self._awaiting = self._awaiting, {}
        for future in awaiting.values():
            if not future.done():
                future.set_exception(error)

    # -- requests from the peer ------------------------------------------------

    def refuse(self) -> None:
        """Answer every request 501 from now on, those waiting too."""
        self._refusing = True
        for request in self.take_all():
            _refuse(request)

    def put(self, request: Request) -> None:
        """A request arrived (its size counted in ``held`` already)."""
        if self._refusing:
            self._held.took(len(request.data))
            _refuse(request)
            return
        self._queue.append(request)
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> Request:
        while not self._queue:
            if self._closed is not None:
                raise StopAsyncIteration
            if self._waiter is not None:
                raise RuntimeError(
                    f"channel {self._name!r}'s requests are already being read: "
                    "read them from one task"
                )
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        request = self._queue.pop(0)
        self._held.took(len(request.data))
        return request

    def take_all(self) -> list[Request]:
        """The requests waiting to be read, taken out of the count."""
        queue, self._queue = self._queue, []
        for request in queue:
            self._held.took(len(request.data))
        return queue

    def close(self, reason: CloseReason) -> None:
        """The channel closed: the requests it awaits raise
        :class:`ChannelClosed`, the unread ones are dropped, the reader
        stops."""
        self._closed = reason
        self.fail_all(ChannelClosed(self._name, reason))
        self.take_all()
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)
