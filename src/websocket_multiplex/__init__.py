"""Many virtual channels over one SockJS or WebSocket connection.

Wire-compatible with the JavaScript ``websocket-multiplex`` 0.1.0. Start
with :class:`MultiplexServer`; mount it with an adapter from
:mod:`websocket_multiplex.adapters` (they import aiohttp or your ASGI server
only when you use them). To talk to a server from Python, use
:func:`websocket_multiplex.client.connect`.
"""

from .asyncio import (
    Authorizer,
    Backoff,
    Channel,
    ChannelHandler,
    ClientChannel,
    ClientState,
    Connection,
    Handler,
    MultiplexClient,
    MultiplexServer,
    ServerStats,
    Service,
    Subscription,
    Transport,
)
from .asyncio.client import ChannelGap, DisconnectCause, Disconnection
from .events import CloseReason
from .exceptions import (
    ChannelClosed,
    InvalidFrame,
    LocalProtocolError,
    MultiplexError,
    RemoteProtocolError,
    ServiceNotFound,
)
from .limits import Limits
from .request import Headers, RequestInfo
from .wire import escape, unescape

__version__ = "0.1.0"

__all__ = [
    "Authorizer",
    "Backoff",
    "Channel",
    "ChannelClosed",
    "ChannelGap",
    "ChannelHandler",
    "ClientChannel",
    "ClientState",
    "CloseReason",
    "Connection",
    "DisconnectCause",
    "Disconnection",
    "Handler",
    "Headers",
    "InvalidFrame",
    "Limits",
    "LocalProtocolError",
    "MultiplexClient",
    "MultiplexError",
    "MultiplexServer",
    "RemoteProtocolError",
    "RequestInfo",
    "ServerStats",
    "Service",
    "ServiceNotFound",
    "Subscription",
    "Transport",
    "escape",
    "unescape",
]
