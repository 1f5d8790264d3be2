"""The registry of services and the entry point adapters call."""

from __future__ import annotations

import asyncio
import inspect
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from ..events import CloseReason
from ..exceptions import ChannelClosed, LocalProtocolError, ServiceNotFound
from ..fanout.broker import Broker, Delivery, InMemoryBroker, process_id
from ..limits import DEFAULT_LIMITS, Limits
from ..wire import escape, service_topic
from .authorization import Authorizer
from .channel import Channel
from .connection import Connection
from .stats import ServerStats
from .throttle import LogThrottle
from .transport import Transport

__all__ = ["ChannelHandler", "Handler", "MultiplexServer", "Service"]

Handler = Callable[[Channel], Awaitable[None]]
"""A service: an async function that owns one channel until it returns."""

H = TypeVar("H", bound="Handler | type[ChannelHandler]")


class ChannelHandler:
    """Base class for services written as callbacks instead of a coroutine.

    One instance is made per channel. Override any of :meth:`on_open`,
    :meth:`on_message` and :meth:`on_close`. Messages are handled one at a
    time, in order.

    When all three are plain methods, the service runs without a task: each
    callback is called as its frame arrives, on the event loop, so it must
    not block; it replies with ``self.channel.send_nowait()`` and ends the
    channel with ``self.channel.close_nowait()``. An idle channel then costs
    a few hundred bytes instead of a task's two kilobytes, and a message no
    task switch. When any of them is a coroutine (``async def``), the
    instance runs in a task of its own and each call is awaited in turn, so
    it may ``await self.channel.send(...)`` and wait for other things.
    """

    __slots__ = ("channel",)

    def __init__(self, channel: Channel) -> None:
        self.channel = channel

    def on_open(self) -> Awaitable[None] | None:
        """The client subscribed; ``self.channel`` is ready to send."""
        return None

    def on_message(self, data: str) -> Awaitable[None] | None:
        """The client sent ``data`` on this channel."""
        return None

    def on_close(self, reason: CloseReason) -> Awaitable[None] | None:
        """The channel closed; called exactly once, even after an error."""
        return None

    @classmethod
    def runs_without_task(cls) -> bool:
        """Whether every callback is a plain method (see the class)."""
        return not any(
            inspect.iscoroutinefunction(getattr(cls, name))
            for name in ("on_open", "on_message", "on_close")
        )

    @classmethod
    async def serve(cls, channel: Channel) -> None:
        """Drive one instance over ``channel``: the :data:`Handler` for a class."""
        handler = cls(channel)
        reason = CloseReason.HANDLER_FAILED
        try:
            await _maybe_await(handler.on_open())
            async for data in channel:
                await _maybe_await(handler.on_message(data))
            reason = channel.close_reason or CloseReason.SERVER_CLOSED
        finally:
            if reason is CloseReason.HANDLER_FAILED and not channel.closed:
                channel.connection._close_channel(channel, reason)
            await _maybe_await(handler.on_close(channel.close_reason or reason))


async def _maybe_await(result: Awaitable[None] | None) -> None:
    if result is not None and inspect.isawaitable(result):
        await result


@dataclass(frozen=True, slots=True)
class Service:
    """A registered name, the handler that serves each of its channels, and
    the check a subscription must pass first."""

    name: str
    topic: str
    handler: Handler
    authorize: Authorizer | None = None
    callbacks: type[ChannelHandler] | None = None
    """Set for a task-free :class:`ChannelHandler`: the class to call."""


def _joining(channel: Channel, group: str) -> bool:
    """Whether a join of ``group`` still stands: no leave() or close since."""
    return channel._close_reason is None and group in (channel._groups or ())


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
    reach a client before closing the carrier anyway.
    """

    def __init__(
        self,
        *,
        limits: Limits = DEFAULT_LIMITS,
        authorize: Authorizer | None = None,
        broker: Broker | None = None,
        handler_timeout: float = 5.0,
        close_timeout: float = 10.0,
    ) -> None:
        self.limits = limits
        self.authorize = authorize
        self.broker: Broker = broker if broker is not None else InMemoryBroker()
        self.process_id = process_id()
        self._groups: dict[str, set[Channel]] = {}
        # One broker subscription per group, shared by every local member:
        # a member's join returns once it is in place, not before.
        self._subscriptions: dict[str, asyncio.Future[None]] = {}
        # A join in progress, per channel and group: done once it ends.
        self._joins: dict[tuple[Channel, str], asyncio.Future[None]] = {}
        self.log_throttle = LogThrottle()
        """Rate-limits the log lines a client can cause at will, per server:
        two servers (two applications, two tests) do not silence each other."""
        self._broker_started: asyncio.Future[None] | None = None
        self._membership_tasks: set[asyncio.Task[None]] = set()
        self.handler_timeout = handler_timeout
        self.close_timeout = close_timeout
        self._services: dict[str, Service] = {}
        self._connections: set[Connection] = set()
        self._totals = ServerStats()
        self._closing = False

    # -- services --------------------------------------------------------------

    def channel(
        self, name: str, *, authorize: Authorizer | None = None
    ) -> Callable[[H], H]:
        """Decorator: register an async function or a ChannelHandler class."""

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
        if not isinstance(name, str) or not name:
            raise LocalProtocolError("a service name must be a non-empty string")
        serve: Handler
        callbacks = None
        if isinstance(handler, type) and issubclass(handler, ChannelHandler):
            serve = handler.serve
            if handler.runs_without_task():
                callbacks = handler
        elif inspect.iscoroutinefunction(handler) or inspect.iscoroutinefunction(
            getattr(handler, "__call__", None)  # noqa: B004 - async callables too
        ):
            serve = handler  # type: ignore[assignment]
        else:
            raise LocalProtocolError(
                f"the handler of {name!r} must be an async function taking a "
                "channel, or a ChannelHandler subclass"
            )
        topic = escape(name)
        if topic in self._services:
            raise LocalProtocolError(
                f"a service named {name!r} is already registered; "
                "call unregister() first to replace it"
            )
        service = Service(name, topic, serve, authorize, callbacks)
        self._services[topic] = service
        return service

    def unregister(self, name: str) -> None:
        """Stop offering ``name`` to new subscriptions; open channels go on."""
        try:
            del self._services[escape(name)]
        except KeyError:
            raise ServiceNotFound(f"no service is registered as {name!r}") from None

    @property
    def services(self) -> list[str]:
        return [service.name for service in self._services.values()]

    def _service_for(self, topic: str) -> Service | None:
        """The service of a topic: its own, or that of an instance topic."""
        service = self._services.get(topic)
        if service is None and "#" in topic:
            base = service_topic(topic)
            if base is not None:
                service = self._services.get(base)
        return service

    def _is_registered(self, topic: str) -> bool:
        return self._service_for(topic) is not None

    # -- groups ------------------------------------------------------------------

    async def publish(
        self, group: str, message: str, *, exclude: Channel | None = None
    ) -> None:
        """Send ``message`` to every channel in ``group``, on every process.

        Never waits for slow members: each gets the message queued, and one
        that cannot keep up is dropped as a slow client (docs/LIMITS.md).
        ``exclude`` (usually the sender) does not receive it. Raises
        :class:`~websocket_multiplex.fanout.BrokerUnavailable` if the broker
        cannot take it.
        """
        await self._start_broker()
        member = exclude.member_id if exclude is not None else None
        await self.broker.publish(Delivery(group, message, member))

    async def members(self, group: str) -> list[str]:
        """The member ids of ``group`` across every live server process."""
        await self._start_broker()
        return await self.broker.members(group)

    async def _join(self, channel: Channel, group: str) -> None:
        # Joins of one channel to one group run one at a time: a second one
        # waits for the first, then returns if it succeeded, or tries again.
        while (earlier := self._joins.get((channel, group))) is not None:
            await asyncio.wait([earlier])
        if channel._close_reason is not None:
            raise ChannelClosed(channel.name, channel._close_reason)
        if channel._groups is None:
            channel._groups = set()
        elif group in channel._groups:
            return
        # Three awaits (the broker's first start, its subscription, the
        # presence write) during which the channel may close or leave. The
        # membership is recorded before the first, so that a close or a
        # leave() sees it and undoes whatever was done; after each, a join
        # that was undone goes no further. A channel whose close interrupted
        # its join gets ChannelClosed, as a join after the close would.
        channel._groups.add(group)
        self._joins[channel, group] = done = asyncio.get_running_loop().create_future()
        try:
            await self._start_broker()
            if _joining(channel, group):
                self._groups.setdefault(group, set()).add(channel)
                await self._subscribed(group)
            if _joining(channel, group):
                await self.broker.set_presence(group, channel.member_id, True)
                if not _joining(channel, group):
                    # Undone during the write: its removal may have gone first.
                    await self.broker.set_presence(group, channel.member_id, False)
        except BaseException:  # failed or cancelled: undone, to be tried again
            if channel._groups is not None:
                channel._groups.discard(group)
            await self._drop_member(channel, group)
            raise
        finally:
            del self._joins[channel, group]
            done.set_result(None)
        if channel._close_reason is not None:
            raise ChannelClosed(channel.name, channel._close_reason)

    async def _subscribed(self, group: str) -> None:
        subscription = self._subscriptions.get(group)
        if subscription is None:
            subscription = asyncio.ensure_future(self.broker.subscribe(group))
            self._subscriptions[group] = subscription
        try:
            await asyncio.shield(subscription)
        except Exception:
            if self._subscriptions.get(group) is subscription:
                del self._subscriptions[group]  # the next join tries again
            raise

    async def _leave(self, channel: Channel, group: str) -> None:
        if channel._groups is None or group not in channel._groups:
            return
        channel._groups.discard(group)
        await self._drop_member(channel, group)

    async def _drop_member(self, channel: Channel, group: str) -> None:
        """Undo a join: deliveries, then the subscription if it was the last
        local member, then presence. A join still waiting for the broker to
        start has done nothing yet: it stops by itself."""
        members = self._groups.get(group)
        if members is None or channel not in members:
            return
        members.discard(channel)
        if not members:
            del self._groups[group]
            await self._unsubscribe(group)
        await self.broker.set_presence(group, channel.member_id, False)

    async def _unsubscribe(self, group: str) -> None:
        """The last local member left: drop the group's subscription. One
        still on its way is waited for, not cancelled, or it would land
        after the unsubscribe; a member that joins meanwhile shares it, and
        then it stays."""
        subscription = self._subscriptions.get(group)
        if subscription is None:
            return  # its subscribe failed: nothing to undo
        if not subscription.done():
            await asyncio.wait([subscription])  # does not cancel it
        if group in self._groups or self._subscriptions.get(group) is not subscription:
            return  # joined again meanwhile, or failed and forgotten
        del self._subscriptions[group]
        if not subscription.cancelled() and subscription.exception() is None:
            await self.broker.unsubscribe(group)

    def _forget(self, channel: Channel) -> None:
        """A closed channel leaves its groups (from a synchronous path)."""
        groups, channel._groups = channel._groups or set(), None
        for group in groups:
            task = asyncio.get_running_loop().create_task(
                self._drop_member(channel, group)
            )
            self._membership_tasks.add(task)
            task.add_done_callback(self._membership_tasks.discard)

    def _deliver(self, delivery: Delivery) -> None:
        for channel in list(self._groups.get(delivery.group, ())):
            if channel.member_id != delivery.exclude:
                channel._offer(delivery.message)

    async def _start_broker(self) -> None:
        if self._broker_started is None:
            self._broker_started = asyncio.ensure_future(
                self.broker.start(self._deliver)
            )
        await asyncio.shield(self._broker_started)

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
            connection._abort(1001, "server shutdown", CloseReason.SHUTDOWN)
        return connection

    def _retire(self, connection: Connection) -> None:
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

    async def close(self, code: int = 1001, reason: str = "server shutdown") -> None:
        """Graceful shutdown: refuse new connections, ``uns`` every channel,
        give handlers ``handler_timeout`` to finish, close every carrier."""
        self._closing = True
        connections = list(self._connections)
        if connections:
            await asyncio.gather(
                *(c.close(code, reason) for c in connections), return_exceptions=True
            )
        if self._membership_tasks:
            await asyncio.gather(*self._membership_tasks, return_exceptions=True)
        if self._broker_started is not None:
            self._broker_started = None
            await self.broker.close()
