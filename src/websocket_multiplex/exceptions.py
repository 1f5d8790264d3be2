"""Every exception the library raises, in one tree.

::

    MultiplexError
     ├── ChannelClosed            the channel is closed; ``reason`` says why
     ├── ConnectionClosed         a plain SockJS connection is closed
     ├── ChannelGap               a reconnection cut a client channel's stream
     │    └── GroupGap            a group's history no longer held what it missed
     ├── BrokerUnavailable        the fan-out broker cannot take a publish now
     ├── RequestFailed            a request got no reply; ``code`` says why
     │    └── RequestTimeout      no reply within the timeout (a TimeoutError)
     ├── LocalProtocolError       you used the API in a way it cannot honour
     │    ├── ServiceNotFound     no service is registered under that name
     │    ├── ConcurrentReceive   a second task waits on one channel's receive
     │    ├── RequestsNotSupported  the peer speaks only the base protocol
     │    └── AlreadyAnswered     a request was replied to (or failed) twice
     └── RemoteProtocolError      the peer sent something the protocol forbids
          ├── InvalidFrame        one carrier message is not a multiplex frame
          └── BrokenFraming       one SockJS message is not what SockJS allows

Remote errors never escape the server: an invalid frame is counted and
ignored, as docs/PROTOCOL.md requires. Local errors point at a bug in the calling
code, so their messages say what to do instead.

:class:`Disconnection` (with :class:`DisconnectCause`) is the value that
tells how a client's connection ended: :class:`ChannelGap` carries it, and
so does ``MultiplexClient.disconnection``.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from .events import CloseReason

__all__ = [
    "AlreadyAnswered",
    "BrokenFraming",
    "BrokerUnavailable",
    "ChannelClosed",
    "ChannelGap",
    "ConcurrentReceive",
    "ConnectionClosed",
    "DisconnectCause",
    "Disconnection",
    "GroupGap",
    "InvalidFrame",
    "LocalProtocolError",
    "MultiplexError",
    "RemoteProtocolError",
    "RequestFailed",
    "RequestTimeout",
    "RequestsNotSupported",
    "ServiceNotFound",
]


class MultiplexError(Exception):
    """Base class of every error raised by websocket-multiplex."""


class ChannelClosed(MultiplexError):
    """Raised by ``send`` and ``receive`` once a channel is closed.

    ``reason`` tells who closed it; iterating over a channel ends quietly
    instead of raising this.
    """

    def __init__(self, name: str, reason: CloseReason) -> None:
        super().__init__(f"channel {name!r} is closed: {reason.value}")
        self.name = name
        self.reason = reason


class ConnectionClosed(MultiplexError):
    """Raised by a plain SockJS connection's ``send`` and ``receive`` once it
    is closed
    (:class:`~websocket_multiplex.asyncio.sockjs_connection.SockJSConnection`).

    ``code`` and ``reason`` are those it was closed with by the
    application; a connection the client left has ``code`` 1006 (no close
    frame was received), as in the WebSocket API. ``async for`` over the
    connection ends quietly instead of raising this.
    """

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(f"the SockJS connection is closed: {code} {reason}".rstrip())
        self.code = code
        self.reason = reason


class DisconnectCause(enum.Enum):
    """Who or what ended a connection: see :class:`Disconnection`."""

    APPLICATION = "application"
    """``client.close()``."""
    SERVER = "server"
    """The server closed it: a WebSocket close frame or SockJS ``c[...]``."""
    LOST = "lost"
    """No close from the server: a reset, a missed pong, a broken frame."""
    GAVE_UP = "gave up"
    """Reconnection ran out of attempts (``Backoff.max_attempts``)."""


@dataclass(frozen=True)
class Disconnection:
    """How a connection ended, as data: ``client.disconnection``.

    ``code`` and ``reason`` are what the server closed with (``SERVER``
    only); ``attempts`` counts the failed reconnection attempts
    (``GAVE_UP``); ``error`` is the exception that ended a ``LOST``
    connection or the last failed attempt, if there was one. ``str()`` of
    it is the text ``on_state`` receives.
    """

    cause: DisconnectCause
    code: int | None = None
    reason: str = ""
    attempts: int = 0
    error: BaseException | None = None

    def __str__(self) -> str:
        if self.cause is DisconnectCause.APPLICATION:
            return "closed by the application"
        if self.cause is DisconnectCause.SERVER:
            return f"closed by the server: {self.code} {self.reason}".rstrip()
        if self.cause is DisconnectCause.GAVE_UP:
            plural = "" if self.attempts == 1 else "s"
            return f"gave up after {self.attempts} reconnection attempt{plural}"
        if self.error is not None:
            return f"the connection was lost: {self.error!r}"
        return "the connection was lost"


class ChannelGap(MultiplexError):
    """Raised by a client channel's ``receive`` where a reconnection cut its
    stream.

    Only for channels opened with ``report_gaps=True``. Every message
    received before it came over the old connection, every one after it
    over the new one; messages sent by either side while the connection
    was down (including sends that had not reached the server) may be
    lost, as the protocol has no replay. The channel is open and
    subscribed again: receive on. ``reconnections`` is how many
    reconnections this one point stands for (more than 1 when the
    connection dropped again before any new message arrived), and
    ``disconnection`` how the last lost connection ended.
    """

    def __init__(
        self, name: str, disconnection: Disconnection, reconnections: int
    ) -> None:
        super().__init__(
            f"channel {name!r}: messages may have been lost here ({disconnection})"
        )
        self.name = name
        self.disconnection = disconnection
        self.reconnections = reconnections


class GroupGap(ChannelGap):
    """Raised by a client channel's ``receive`` where messages of ``group``
    are missing for good.

    Only with ``report_gaps=True``. After a session the server could not
    resume, a server of ours replays each group's messages the channel
    missed from the group's history (docs/PROTOCOL-EXTENSIONS.md, section
    4); this says the history no longer held all of them (trimmed by its
    size or age, or lost with a broker restart). What follows is what it
    still held, then the live messages. Other groups are not affected.
    """

    def __init__(
        self, name: str, group: str, disconnection: Disconnection, reconnections: int
    ) -> None:
        super().__init__(name, disconnection, reconnections)
        self.args = (
            f"channel {name!r}: messages of group {group!r} were lost here "
            "(no longer in its history)",
        )
        self.group = group


class BrokerUnavailable(MultiplexError):
    """The broker cannot take a publish now (e.g. Redis is down and the
    outage buffer is full). The message was not published."""


class RequestFailed(MultiplexError):
    """Raised by ``channel.request()`` when the request got no reply.

    ``code`` is a :class:`~websocket_multiplex.codes.RequestCode` (or the
    code the answering application chose in ``request.fail()``) and
    ``text`` the answerer's words: 400 refused by the answerer, 429 too
    many requests outstanding (raised at once, before anything is sent,
    when it is this side's bound), 500 the answerer's handler failed,
    501 nothing on that channel answers requests, 502 the connection was
    replaced without resuming its session (the request may or may not
    have been answered: retry it only if it is safe to repeat). A
    request on a channel that closes raises
    :class:`ChannelClosed` instead.
    """

    def __init__(self, name: str, code: int, text: str) -> None:
        super().__init__(f"request on channel {name!r} failed: {code} {text}")
        self.name = name
        self.code = code
        self.text = text


class RequestTimeout(RequestFailed, TimeoutError):
    """No reply came within the request's ``timeout`` (code 504).

    The answerer may still be working on it; a late reply is ignored.
    """

    def __init__(self, name: str, timeout: float) -> None:
        super().__init__(name, 504, f"no reply within {timeout:g} s")
        self.timeout = timeout


class LocalProtocolError(MultiplexError):
    """The calling code asked for something the protocol cannot do."""


class ServiceNotFound(LocalProtocolError, LookupError):
    """No service is registered under the requested name."""


class ConcurrentReceive(LocalProtocolError):
    """A second task called ``receive`` on a channel while one already waits.

    A channel's messages go to one reader, in order: with two waiting, which
    one gets the next message would be a race, and each would see only part
    of the stream. Read the channel from one task and hand the messages to
    the others yourself (an :class:`asyncio.Queue` each, say). ``name`` is
    the channel's service name.
    """

    def __init__(self, name: str) -> None:
        super().__init__(
            f"channel {name!r} is already being received from: "
            "read it from one task only and share the messages yourself"
        )
        self.name = name


class RequestsNotSupported(LocalProtocolError):
    """``channel.request()`` on a connection where the peer does not take
    part in the extensions (docs/PROTOCOL-EXTENSIONS.md, section 5): the
    original server or browser client, or a client made with
    ``resume=False``. Nothing was sent. Use messages on the channel
    instead, or connect with our client and server and resumable sessions
    on (the default)."""


class AlreadyAnswered(LocalProtocolError):
    """A request was answered already: each gets one ``reply`` or ``fail``."""


class RemoteProtocolError(MultiplexError):
    """The peer broke the protocol; the connection itself stays usable."""


class InvalidFrame(RemoteProtocolError, ValueError):
    """A carrier message that is not ``type,topic[,payload]``."""


class BrokenFraming(RemoteProtocolError, ValueError):
    """A SockJS message that is not JSON, or not the JSON SockJS allows.

    Its text is what the server answers (sockjs-node's wording, e.g.
    ``Broken JSON encoding.``): an HTTP transport replies 500 with it, a
    WebSocket closes. ``frames`` is how many messages it held, when it was
    refused for holding too many (else 0).
    """

    def __init__(self, text: str, frames: int = 0) -> None:
        super().__init__(text)
        self.frames = frames
