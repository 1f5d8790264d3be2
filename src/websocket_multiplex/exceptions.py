"""Every exception the library raises, in one tree.

::

    MultiplexError
     ├── ChannelClosed            the channel is closed; ``reason`` says why
     ├── ChannelGap               a reconnection cut a client channel's stream
     │                            (in :mod:`websocket_multiplex.asyncio.client`)
     ├── LocalProtocolError       you used the API in a way it cannot honour
     │    └── ServiceNotFound     no service is registered under that name
     └── RemoteProtocolError      the peer sent something the protocol forbids
          └── InvalidFrame        one carrier message is not a multiplex frame

Remote errors never escape the server: an invalid frame is counted and
ignored, as PROTOCOL.md requires. Local errors point at a bug in the calling
code, so their messages say what to do instead.
"""

from __future__ import annotations

from .events import CloseReason

__all__ = [
    "ChannelClosed",
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


class LocalProtocolError(MultiplexError):
    """The calling code asked for something the protocol cannot do."""


class ServiceNotFound(LocalProtocolError, LookupError):
    """No service is registered under the requested name."""


class RemoteProtocolError(MultiplexError):
    """The peer broke the protocol; the connection itself stays usable."""


class InvalidFrame(RemoteProtocolError, ValueError):
    """A carrier message that is not ``type,topic[,payload]``."""
