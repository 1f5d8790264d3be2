"""The seam between the multiplexer and a carrier (SockJS, WebSocket, ...).

An adapter wraps one client connection in an object that satisfies
:class:`Transport`, hands it to :meth:`MultiplexServer.accept
<websocket_multiplex.MultiplexServer.accept>`, then feeds every text message
it receives to :meth:`Connection.receive
<websocket_multiplex.Connection.receive>` and awaits
:meth:`Connection.connection_lost
<websocket_multiplex.Connection.connection_lost>` when the carrier ends.
That is the whole contract; :mod:`websocket_multiplex.testing` checks it.

A transport may also offer ``async def send_many(texts: list[str])``: the
connection then hands it everything its services queued since the last
write at once, so that it can pack them into one write (SockJS's
``a[...]`` frames, say) instead of paying a write per frame.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from ..request import RequestInfo

__all__ = ["Transport"]


@runtime_checkable
class Transport(Protocol):
    """One message-oriented text connection to a client."""

    @property
    def request(self) -> RequestInfo:
        """The request that opened the connection, captured at connect time."""
        ...

    async def send(self, text: str) -> None:
        """Send one carrier message; raise ``ConnectionError`` once closed."""
        ...

    async def close(self, code: int, reason: str) -> None:
        """Close the carrier; the adapter then reports ``connection_lost``."""
        ...
