"""The asyncio layer: channels, connections and the server registry."""

from .authorization import Authorizer, Subscription
from .channel import Channel
from .client import Backoff, ClientChannel, ClientState, MultiplexClient
from .connection import Connection
from .server import ChannelHandler, Handler, MultiplexServer, Service
from .stats import ServerStats
from .transport import Transport

__all__ = [
    "Authorizer",
    "Backoff",
    "Channel",
    "ChannelHandler",
    "ClientChannel",
    "ClientState",
    "Connection",
    "Handler",
    "MultiplexClient",
    "MultiplexServer",
    "ServerStats",
    "Service",
    "Subscription",
    "Transport",
]
