"""Test doubles at the library's own seam, and a conformance check for adapters.

:func:`connect_in_memory` opens a connection to a
:class:`~websocket_multiplex.MultiplexServer` with no network in between:
the server side is a :class:`MemoryTransport`, the client end a
:class:`MemoryClient`, a :class:`~websocket_multiplex.asyncio.client.Carrier`
like the network ones. Drive it with raw frames to test services frame by
frame, or hand it to a client to test them as an application would::

    client = MultiplexClient(lambda: connect_in_memory(server))
    await client.start()

:func:`check_adapter_conformance` runs the protocol contract against any
running adapter through a caller-supplied client connector; the project's
tests run it against every adapter over real sockets.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from .asyncio.channel import Channel
from .asyncio.client import Carrier
from .asyncio.connection import Connection
from .asyncio.server import MultiplexServer
from .request import RequestInfo

__all__ = [
    "ClientCarrier",
    "MemoryClient",
    "MemoryTransport",
    "check_adapter_conformance",
    "conformance_server",
    "connect_in_memory",
]


@dataclass(eq=False)
class MemoryTransport:
    """Server side of an in-memory carrier; what it sends lands in ``to_client``."""

    request: RequestInfo = field(default_factory=RequestInfo)
    to_client: asyncio.Queue[str | None] = field(default_factory=asyncio.Queue)
    closed_with: tuple[int, str] | None = None

    async def send(self, text: str) -> None:
        if self.closed_with is not None:
            raise ConnectionError("memory transport is closed")
        self.to_client.put_nowait(text)

    async def send_many(self, texts: list[str]) -> None:
        for text in texts:
            await self.send(text)

    async def close(self, code: int, reason: str) -> None:
        if self.closed_with is None:
            self.closed_with = (code, reason)
            self.to_client.put_nowait(None)


ClientCarrier = Carrier
"""The client end of any carrier: the client's own
:class:`~websocket_multiplex.asyncio.client.Carrier`, under the name this
module had for it."""


class MemoryClient:
    """Client end of :func:`connect_in_memory`: a :class:`Carrier` in memory.

    ``send`` hands a frame to the server's connection, ``receive`` returns
    what the server sent, and ``None`` once it closed the carrier; then
    ``close_frame`` is the ``(code, reason)`` it closed with, as for a
    WebSocket. ``close`` is the client going away. A frame sent after the
    server closed is dropped, as bytes in flight would be.
    """

    def __init__(self, connection: Connection, transport: MemoryTransport) -> None:
        self.connection = connection
        self.transport = transport

    @property
    def close_frame(self) -> tuple[int, str] | None:
        """The ``(code, reason)`` the server closed with, or ``None``."""
        return self.transport.closed_with

    async def send(self, text: str) -> None:
        self.connection.receive(text)
        await asyncio.sleep(0)  # let handlers see it, as a network hop would

    async def receive(self) -> str | None:
        return await self.transport.to_client.get()

    async def close(self) -> None:
        await self.connection.connection_lost()


async def connect_in_memory(
    server: MultiplexServer, request: RequestInfo | None = None
) -> MemoryClient:
    """Open a connection to ``server`` with no network in between.

    ``request`` is what the server's handlers see of the client (headers,
    query, address). Each call is a new connection, so a
    :class:`~websocket_multiplex.MultiplexClient` given
    ``lambda: connect_in_memory(server)`` reconnects in memory too.
    """
    transport = MemoryTransport(request or RequestInfo())
    return MemoryClient(server.accept(transport), transport)


async def _expect(carrier: Carrier, expected: str, timeout: float) -> None:
    async with asyncio.timeout(timeout):
        got = await carrier.receive()
    if got != expected:
        raise AssertionError(f"expected {expected!r} from the server, got {got!r}")


async def _collect(carrier: Carrier, count: int, timeout: float) -> list[str | None]:
    async with asyncio.timeout(timeout):
        return [await carrier.receive() for _ in range(count)]


def conformance_server() -> MultiplexServer:
    """The services :func:`check_adapter_conformance` expects to talk to."""
    server = MultiplexServer()

    @server.channel("echo")
    async def echo(channel: Channel) -> None:
        async for data in channel:
            await channel.send(data)

    @server.channel("weird name,ü/%😀")
    async def weird(channel: Channel) -> None:
        await channel.send(channel.name)
        async for data in channel:
            await channel.close(f"bye {data}")

    @server.channel("closed-by-server")
    async def closes(channel: Channel) -> None:
        await channel.close("goodbye")

    return server


async def check_adapter_conformance(
    connect: Callable[[], Awaitable[Carrier]], timeout: float = 5.0
) -> None:
    """Check an adapter serving :func:`conformance_server` keeps the contract.

    ``connect`` opens a new client carrier to it. Raises ``AssertionError``
    with what went wrong.
    """
    carrier = await connect()
    try:
        await carrier.send("sub,echo")
        payload = 'a,b,,c "q" \n 😀 </script>'
        await carrier.send(f"msg,echo,{payload}")
        await _expect(carrier, f"msg,echo,{payload}", timeout)
        for junk in ("", "foo", "msg", "sub,toString", "msg,__proto__,x", "bar,echo,x"):
            await carrier.send(junk)
        # A sub nobody answers is refused (docs/PROTOCOL-EXTENSIONS.md).
        assert await _collect(carrier, 2, timeout) == [
            "err,toString,404 no such service",
            "uns,toString",
        ]
        await carrier.send("sub,echo")  # already open: ignored
        await carrier.send("msg,echo,still here")
        await _expect(carrier, "msg,echo,still here", timeout)

        topic = "weird%20name%2C%FC/%25%uD83D%uDE00"
        await carrier.send(f"sub,{topic}")
        await _expect(carrier, f"msg,{topic},weird name,ü/%😀", timeout)
        await carrier.send(f"msg,{topic},x")
        assert await _collect(carrier, 2, timeout) == [
            f"msg,{topic},bye x",
            f"uns,{topic}",
        ]
        await carrier.send("sub,closed-by-server")
        assert await _collect(carrier, 2, timeout) == [
            "msg,closed-by-server,goodbye",
            "uns,closed-by-server",
        ]
        await carrier.send("uns,echo")
        await carrier.send("msg,echo,dropped")
        await carrier.send("sub,echo")
        await carrier.send("msg,echo,again")
        await _expect(carrier, "msg,echo,again", timeout)
    finally:
        await carrier.close()
