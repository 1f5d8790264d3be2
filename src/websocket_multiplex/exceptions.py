"""Every exception the library raises, in one tree.

::

    MultiplexError
     ├── ChannelClosed            the channel is closed; ``reason`` says why
     ├── ConnectionClosed         a plain SockJS connection is closed
     ├── ChannelGap               a reconnection cut a client channel's stream
     │                            (in :mod:`websocket_multiplex.asyncio.client`)
     ├── LocalProtocolError       you used the API in a way it cannot honour
     │    └── ServiceNotFound     no service is registered under that name
     └── RemoteProtocolError      the peer sent something the protocol forbids
          ├── InvalidFrame        one carrier message is not a multiplex frame
          └── BrokenFraming       one SockJS message is not what SockJS allows

Remote errors never escape the server: an invalid frame is counted and
ignored, as PROTOCOL.md requires. Local errors point at a bug in the calling
code, so their messages say what to do instead.
"""

from __future__ import annotations

from .events import CloseReason

__all__ = [
    "BrokenFraming",
    "ChannelClosed",
    "ConnectionClosed",
    "InvalidFrame",
    "LocalProtocolError",
    "MultiplexError",
    "RemoteProtocolError",
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


class LocalProtocolError(MultiplexError):
    """The calling code asked for something the protocol cannot do."""


class ServiceNotFound(LocalProtocolError, LookupError):
    """No service is registered under the requested name."""


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
