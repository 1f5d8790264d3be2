"""The asyncio layer: channels, connections and the server registry."""

from .channel import Channel
from .connection import Connection
from .server import ChannelHandler, Handler, MultiplexServer, Service
from .transport import Transport

__all__ = [
    "Channel",
    "ChannelHandler",
    "Connection",
    "Handler",
    "MultiplexServer",
    "Service",
    "Transport",
]
