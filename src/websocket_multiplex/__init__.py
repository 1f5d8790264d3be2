"""Many virtual channels over one SockJS or WebSocket connection.

Wire-compatible with the JavaScript ``websocket-multiplex`` 0.1.0. Start
with :class:`MultiplexServer`; mount it with an adapter from
:mod:`websocket_multiplex.adapters` (they import aiohttp or your ASGI server
only when you use them), over the package's own SockJS server
(:mod:`websocket_multiplex.sockjs`), which also serves plain SockJS
handlers (:class:`SockJSConnection`). To talk to a server from Python, use
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
    Inlet,
    MultiplexClient,
    MultiplexServer,
    PresenceWatch,
    Recipient,
    Request,
    ServerStats,
    Service,
    SockJSConnection,
    SockJSHandler,
    Subscription,
    Transport,
)
from .events import (
    CloseReason,
    LeaveReason,
    MemberJoined,
    MemberLeft,
    PresenceEvent,
    PresenceSnapshot,
)
from .exceptions import (
    AlreadyAnswered,
    BrokenFraming,
    BrokerUnavailable,
    ChannelClosed,
    ChannelGap,
    ConcurrentReceive,
    ConnectionClosed,
    DisconnectCause,
    Disconnection,
    GroupGap,
    InvalidFrame,
    LocalProtocolError,
    MultiplexError,
    RemoteProtocolError,
    RequestFailed,
    RequestsNotSupported,
    RequestTimeout,
    ServiceNotFound,
)
from .limits import Limits
from .request import Headers, RequestInfo
from .wire import escape, unescape

__version__ = "0.1.0"

__all__ = [
    "AlreadyAnswered",
    "Authorizer",
    "Backoff",
    "BrokenFraming",
    "BrokerUnavailable",
    "Channel",
    "ChannelClosed",
    "ChannelGap",
    "ChannelHandler",
    "ClientChannel",
    "ClientState",
    "CloseReason",
    "ConcurrentReceive",
    "Connection",
    "ConnectionClosed",
    "DisconnectCause",
    "Disconnection",
    "GroupGap",
    "Handler",
    "Headers",
    "Inlet",
    "InvalidFrame",
    "LeaveReason",
    "Limits",
    "LocalProtocolError",
    "MemberJoined",
    "MemberLeft",
    "MultiplexClient",
    "MultiplexError",
    "MultiplexServer",
    "PresenceEvent",
    "PresenceSnapshot",
    "PresenceWatch",
    "Recipient",
    "RemoteProtocolError",
    "Request",
    "RequestFailed",
    "RequestInfo",
    "RequestTimeout",
    "RequestsNotSupported",
    "ServerStats",
    "Service",
    "ServiceNotFound",
    "SockJSConnection",
    "SockJSHandler",
    "Subscription",
    "Transport",
    "escape",
    "unescape",
]
