"""The asyncio layer: channels, connections and the server registry."""

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
from .server import ChannelHandler, Handler, MultiplexServer, Service
from .stats import ServerStats
from .transport import Transport

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
    "MultiplexClient",
    "MultiplexServer",
    "ServerStats",
    "Service",
    "Subscription",
    "Transport",
]
