"""The asyncio layer: channels, connections and the server registry."""

from .channel import Channel
from .client import Backoff, ClientChannel, ClientState, MultiplexClient
from .connection import Connection
from .server import ChannelHandler, Handler, MultiplexServer, Service
from .transport import Transport

__all__ = [
    "Backoff",
    "Channel",
    "ChannelHandler",
    "ClientChannel",
    "ClientState",
    "Connection",
    "Handler",
    "MultiplexClient",
    "MultiplexServer",
    "Service",
    "Transport",
]
