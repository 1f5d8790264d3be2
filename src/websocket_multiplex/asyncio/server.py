"""The registry of services and the entry point adapters call."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable
from typing import TypeVar

from ..codes import CloseCode
from ..events import CloseReason
from ..exceptions import LocalProtocolError
from ..fanout.broker import Broker, InMemoryBroker, process_id
from ..limits import DEFAULT_LIMITS, Limits
from .authorization import Authorizer
from .channel import Channel
from .connection import Connection
from .groups import Groups
from .presence import PresenceHub, PresenceWatch
from .resumption import Sessions
from .services import ChannelHandler, Handler, Service, Services
from .stats import ServerStats
from .throttle import LogThrottle
from .transport import Transport

__all__ = ["ChannelHandler", "Handler", "MultiplexServer", "Service"]

H = TypeVar("H", bound="Handler | type[ChannelHandler]")


class MultiplexServer:
    """Named services, each offered to every client connection.

    ::

        mux = MultiplexServer()

        @mux.channel("ann")
        async def ann(channel):
            await channel.send("Ann says hi!")
            async for data in channel:
                await channel.send(f"Ann nods: {data}")

    Then mount it with an adapter, e.g.
    :func:`websocket_multiplex.adapters.aiohttp.add_sockjs_endpoint`.

    ``broker`` carries group messages between server processes (default:
    :class:`~websocket_multiplex.fanout.InMemoryBroker`, one process; see
    :meth:`publish`). ``authorize(subscription)`` decides for every service whether a
    client may open a channel (see :meth:`register`); ``limits`` bounds
    what one client can make the server hold or do
    (:class:`~websocket_multiplex.Limits`, docs/LIMITS.md);
    ``handler_timeout`` (seconds) is how long handlers may run after their
    connection closed before they are cancelled; ``close_timeout``
    (seconds) is how long a server-side close waits for queued frames to
    reach a client before closing the carrier anyway. With ``resume``
    (the default), a client of ours that loses its connection carries on
    where it stopped if it comes back within ``Limits.resume_grace``
    seconds (docs/PROTOCOL-EXTENSIONS.md, section 3); the original
    clients never ask for it.
    """

    def __init__(
        self,
        *,
        limits: Limits = DEFAULT_LIMITS,
        authorize: Authorizer | None = None,
        broker: Broker | None = None,
        handler_timeout: float = 5.0,
        close_timeout: float = 10.0,
        resume: bool = True,
    ) -> None:
        self.limits = limits
        self.authorize = _checked_authorizer(authorize)
        self.groups = Groups(broker if broker is not None else InMemoryBroker())
        """Group membership and fan-out (for connections and their channels)."""
        self.presence_hub = PresenceHub(self.groups, limits)
        """Presence watchers (for connections: see :meth:`presence`)."""
        self.process_id = process_id()
        self.log_throttle = LogThrottle()
        """Rate-limits the log lines a client can cause at will, per server:
        two servers (two applications, two tests) do not silence each other."""
        self.handler_timeout = handler_timeout
        self.close_timeout = close_timeout
        self.registry = Services()
        """The registered services (for connections: see :meth:`register`)."""
        self.sessions = Sessions(limits, self.log_throttle) if resume else None
        """The resumable sessions, by token (``None`` without ``resume``)."""
        self._connections: set[Connection] = set()
        self._totals = ServerStats()
        self._closing = False

    @property
    def broker(self) -> Broker:
        """What carries group messages between server processes."""
        return self.groups.broker

    # -- services --------------------------------------------------------------

    def channel(
        self, name: str, *, authorize: Authorizer | None = None
    ) -> Callable[[H], H]:
        """Decorator: register an async function or a ChannelHandler class::

            @mux.channel("chat")
            async def chat(channel): ...

        ``authorize`` decides this service's subscriptions, after the
        server-wide hook (see :meth:`register`).
        """
        if not isinstance(name, str):
            raise LocalProtocolError(
                "channel() takes the service's name: write "
                '@mux.channel("chat") with the parentheses, or call '
                "mux.register(name, handler)"
            )

        def register(handler: H) -> H:
            self.register(name, handler, authorize=authorize)
            return handler

        return register

    def register(
        self,
        name: str,
        handler: Handler | type[ChannelHandler],
        *,
        authorize: Authorizer | None = None,
    ) -> Service:
        """Offer the service ``name``; each subscription runs ``handler``.

        ``authorize(subscription)`` (plain or async) runs first, after the
        server-wide one; unless it returns ``True`` the client is refused
        with ``err,<topic>,403 refused`` then ``uns`` and no handler runs.
        """
        return self.registry.register(name, handler, _checked_authorizer(authorize))

    def unregister(self, name: str) -> None:
        """Stop offering ``name`` to new subscriptions; open channels go on."""
        self.registry.unregister(name)

    @property
    def services(self) -> list[str]:
        return self.registry.names

    # -- groups ------------------------------------------------------------------

    async def publish(
        self, group: str, message: str, *, exclude: Channel | None = None
    ) -> None:
        """Send ``message`` to every channel in ``group``, on every process.

        Never waits for slow members: each gets the message queued, and one
        that cannot keep up is dropped as a slow client (docs/LIMITS.md).
        ``exclude`` (usually the sender) does not receive it. Raises
        :class:`~websocket_multiplex.BrokerUnavailable` if the broker
        cannot take it.
        """
        await self.groups.publish(group, message, exclude=exclude)

    async def members(self, group: str) -> list[str]:
        """The member ids of ``group`` across every live server process."""
        return await self.groups.members(group)

    def presence(self, group: str) -> PresenceWatch:
        """Watch who joins and leaves ``group``, on every process::

            async with server.presence("lobby") as watch:
                async for event in watch:
                    ...

        The first event is a :class:`~websocket_multiplex.PresenceSnapshot`
        of the members, then each :class:`~websocket_multiplex.MemberJoined`
        and :class:`~websocket_multiplex.MemberLeft` once, in order; a
        watcher that falls ``Limits.presence_queue`` changes behind, or
        whose broker lost its connection, reads a snapshot with ``gap=True``
        and goes on from there (docs/PROTOCOL-EXTENSIONS.md, section 6).
        Raises :class:`~websocket_multiplex.LocalProtocolError` if the
        broker reports no presence changes
        (:class:`~websocket_multiplex.fanout.PresenceBroker`).
        """
        return self.presence_hub.watch(group)

    # -- connections -------------------------------------------------------------

    @property
    def connections(self) -> set[Connection]:
        """The connections currently open, for inspection and shutdown."""
        return set(self._connections)

    @property
    def closing(self) -> bool:
        """``close()`` has begun: new connections are refused."""
        return self._closing

    def accept(self, transport: Transport) -> Connection:
        """Start multiplexing over a new carrier connection.

        The connection is the carrier's :class:`~websocket_multiplex.Recipient`:
        the adapter feeds it through an :class:`~websocket_multiplex.Inlet`.
        """
        connection = Connection(self, transport)
        self._connections.add(connection)
        self._totals.connections_accepted += 1
        if self._closing:
            connection.abort(
                CloseCode.GOING_AWAY, "server shutdown", CloseReason.SHUTDOWN
            )
        return connection

    def retire(self, connection: Connection) -> None:
        """``connection`` closed: forget it, keep its totals (it calls this)."""
        if connection in self._connections:
            self._connections.remove(connection)
            self._totals.add(connection.counters, connection.stats)

    def stats(self) -> ServerStats:
        """Open connections and channels now, and totals since the start."""
        stats = ServerStats()
        stats.add(self._totals)
        channels: Counter[str] = Counter()
        for connection in self._connections:
            stats.add(connection.counters, connection.stats)
            channels.update(channel.name for channel in connection.channels)
        stats.connections = len(self._connections)
        stats.channels = dict(channels)
        return stats

    async def close(
        self, code: int = CloseCode.GOING_AWAY, reason: str = "server shutdown"
    ) -> None:
        """Graceful shutdown: refuse new connections, ``uns`` every channel,
        give handlers ``handler_timeout`` to finish, close every carrier."""
        self._closing = True
        connections = list(self._connections)
        if connections:
            await asyncio.gather(
                *(c.close(code, reason) for c in connections), return_exceptions=True
            )
        self.presence_hub.close()
        await self.groups.close()


def _checked_authorizer(authorize: Authorizer | None) -> Authorizer | None:
    """``authorize`` if it can be called: refused at once rather than at
    the first subscription, as a traceback and a 403."""
    if authorize is not None and not callable(authorize):
        raise TypeError(
            "authorize must be a function taking a Subscription and returning "
            f"True to accept it (plain or async), not {type(authorize).__name__} "
            f"{authorize!r}"
        )
    return authorize
