"""Services: what a name offers, the two ways to write one, and the registry."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from ..codes import RequestCode
from ..events import CloseReason
from ..exceptions import LocalProtocolError, ServiceNotFound
from ..wire import escape, service_topic
from .authorization import Authorizer
from .channel import Channel
from .requests import NO_ANSWERER_TEXT, Request

__all__ = ["ChannelHandler", "Handler", "Service", "Services"]

Handler = Callable[[Channel], Awaitable[None]]
"""A service: an async function that owns one channel until it returns."""


class ChannelHandler:
    """Base class for services written as callbacks instead of a coroutine.

    One instance is made per channel. Override any of :meth:`on_open`,
    :meth:`on_message`, :meth:`on_request` and :meth:`on_close`. Messages
    are handled one at a time, in order; so are requests, apart from the
    messages (docs/PROTOCOL-EXTENSIONS.md, section 5).

    When all four are plain methods, the service runs without a task: each
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

    def on_request(self, request: Request) -> Awaitable[None] | None:
        """The client sent a request: answer it with
        ``request.reply_nowait(data)`` (``await request.reply(data)`` in an
        ``async def``), or ``fail``. Not overridden, every request is
        answered 501 at once, so that the client does not wait for nothing.
        An exception fails the channel, as in :meth:`on_message`."""
        request.fail_nowait(NO_ANSWERER_TEXT, RequestCode.NO_ANSWERER)
        return None

    @classmethod
    def answers_requests(cls) -> bool:
        """Whether the class overrides :meth:`on_request`."""
        return cls.on_request is not ChannelHandler.on_request

    @classmethod
    def runs_without_task(cls) -> bool:
        """Whether every callback is a plain method (see the class)."""
        return not any(
            inspect.iscoroutinefunction(getattr(cls, name))
            for name in ("on_open", "on_message", "on_close", "on_request")
        )

    @classmethod
    async def serve(cls, channel: Channel) -> None:
        """Drive one instance over ``channel``: the :data:`Handler` for a class."""
        handler = cls(channel)
        reason = CloseReason.HANDLER_FAILED
        answering: asyncio.Task[None] | None = None
        try:
            await _maybe_await(handler.on_open())
            if cls.answers_requests():
                answering = asyncio.get_running_loop().create_task(
                    _answer(handler, channel), name=f"requests of {channel.name!r}"
                )
            else:
                channel.refuse_requests()
            async for data in channel:
                await _maybe_await(handler.on_message(data))
            if answering is not None:
                await answering  # ended with the channel; re-raises a failure
            reason = channel.close_reason or CloseReason.SERVER_CLOSED
        finally:
            if answering is not None and not answering.done():
                answering.cancel()
            if reason is CloseReason.HANDLER_FAILED and not channel.closed:
                channel.connection.close_channel(channel, reason)
            await _maybe_await(handler.on_close(channel.close_reason or reason))


async def _answer(handler: ChannelHandler, channel: Channel) -> None:
    """Hand each request to ``on_request``, in order; a failure fails the
    channel (which ends the messages' loop too) and is raised from
    :meth:`ChannelHandler.serve`."""
    try:
        async for request in channel.requests():
            await _maybe_await(handler.on_request(request))
    except Exception:
        channel.connection.close_channel(channel, CloseReason.HANDLER_FAILED)
        raise


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


class Services:
    """The services of one server, by topic."""

    def __init__(self) -> None:
        self._by_topic: dict[str, Service] = {}

    @property
    def names(self) -> list[str]:
        return [service.name for service in self._by_topic.values()]

    def register(
        self,
        name: str,
        handler: Handler | type[ChannelHandler],
        authorize: Authorizer | None = None,
    ) -> Service:
        """Offer ``name``; see :meth:`MultiplexServer.register`."""
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
        if topic in self._by_topic:
            raise LocalProtocolError(
                f"a service named {name!r} is already registered; "
                "call unregister() first to replace it"
            )
        service = Service(name, topic, serve, authorize, callbacks)
        self._by_topic[topic] = service
        return service

    def unregister(self, name: str) -> None:
        try:
            del self._by_topic[escape(name)]
        except KeyError:
            raise ServiceNotFound(f"no service is registered as {name!r}") from None

    def for_topic(self, topic: str) -> Service | None:
        """The service of a topic: its own, or that of an instance topic."""
        service = self._by_topic.get(topic)
        if service is None and "#" in topic:
            base = service_topic(topic)
            if base is not None:
                service = self._by_topic.get(base)
        return service

    def is_registered(self, topic: str) -> bool:
        return self.for_topic(topic) is not None
