"""The asyncio layer: channels, connections, the server registry, the
carrier seam and the SockJS endpoint."""

from .authorization import Authorizer, Subscription
from .channel import Channel
from .client import (
    Backoff,
    ChannelGap,
    ClientChannel,
    ClientState,
    DisconnectCause,
    Disconnection,
    MultiplexClient,
)
from .connection import Connection
from .presence import PresenceWatch
from .requests import Request
from .server import ChannelHandler, Handler, MultiplexServer, Service
from .sockjs_connection import SockJSConnection, SockJSHandler
from .stats import ServerStats
from .transport import Inlet, Recipient, Transport

__all__ = [
    "Authorizer",
    "Backoff",
    "Channel",
    "ChannelGap",
    "ChannelHandler",
    "ClientChannel",
    "ClientState",
    "Connection",
    "DisconnectCause",
    "Disconnection",
    "Handler",
    "Inlet",
    "MultiplexClient",
    "MultiplexServer",
    "PresenceWatch",
    "Recipient",
    "Request",
    "ServerStats",
    "Service",
    "SockJSConnection",
    "SockJSHandler",
    "Subscription",
    "Transport",
]
