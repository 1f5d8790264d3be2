"""The asyncio client: channels over one carrier, reconnecting when it drops.

This module knows carriers only through :class:`Carrier`; the network
carriers (raw WebSocket, SockJS) and :func:`~websocket_multiplex.client.connect`
live in :mod:`websocket_multiplex.client`, which imports aiohttp.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import random
from collections.abc import Awaitable, Callable, Generator
from dataclasses import dataclass
from types import TracebackType
from typing import Protocol

from ..events import ChannelClosedEvent, CloseReason, MessageReceived
from ..exceptions import ChannelClosed, LocalProtocolError
from ..protocol import ClientProtocol
from .inbox import ReceivingChannel

__all__ = [
    "Backoff",
    "Carrier",
    "ClientChannel",
    "ClientState",
    "MultiplexClient",
]

logger = logging.getLogger("websocket_multiplex.client")

GOING_AWAY = "1001 "  # refusal notice of a server that is shutting down


class Carrier(Protocol):
    """One client connection that carries text messages both ways."""

    async def send(self, text: str) -> None:
        """Send one message; raise ``ConnectionError`` once closed."""
        ...

    async def receive(self) -> str | None:
        """The next message, or ``None`` once the connection is gone."""
        ...

    async def close(self) -> None: ...


CarrierFactory = Callable[[], Awaitable[Carrier]]


class ClientState(enum.Enum):
    CONNECTING = "connecting"
    OPEN = "open"
    RECONNECTING = "reconnecting"
    CLOSED = "closed"


@dataclass(frozen=True)
class Backoff:
    """Reconnection delays: exponential, capped, with full jitter.

    Attempt ``n`` (from 0) waits a random time between 0 and
    ``min(maximum, initial * factor ** n)`` seconds, so that clients cut
    off together do not all come back at the same instant. After
    ``max_attempts`` failed attempts in a row (``None``: never) the client
    gives up and closes.
    """

    initial: float = 0.5
    maximum: float = 30.0
    factor: float = 2.0
    max_attempts: int | None = None

    def delay(self, attempt: int) -> float:
        ceiling = min(self.maximum, self.initial * self.factor ** min(attempt, 64))
        return random.uniform(0, ceiling)


class ClientChannel(ReceivingChannel):
    """One channel to a service: send, receive, close; like a socket of its own.

    Across a reconnection the channel stays open and is subscribed again;
    :attr:`gaps` counts those reconnections, each a window in which
    messages in either direction may have been lost (the protocol has no
    replay). If the application leaves more than ``max_queue`` messages
    unread, the channel is closed with :attr:`CloseReason.INBOX_FULL`
    rather than letting memory grow or stalling the other channels.
    """

    def __init__(self, client: MultiplexClient, name: str, topic: str) -> None:
        super().__init__(name, topic)
        self.gaps = 0
        self._client = client
        self._close_detail = ""

    @property
    def close_detail(self) -> str:
        """The server's refusal notice, e.g. ``"404 no such service"``."""
        return self._close_detail

    async def send(self, data: str) -> None:
        """Send ``data``; while reconnecting, wait for the new connection."""
        if not isinstance(data, str):
            raise TypeError(f"channels carry text: encode {type(data).__name__} first")
        if self._close_reason is not None:
            raise ChannelClosed(self.name, self._close_reason)
        try:
            await self._client._send(self._client._protocol.send(self.topic, data))
        except ConnectionError:
            if self._close_reason is not None:  # the client gave up meanwhile
                raise ChannelClosed(self.name, self._close_reason) from None
            raise

    async def close(self) -> None:
        """Unsubscribe (``uns``); closing a closed channel does nothing."""
        await self._client._close_channel(self, CloseReason.CLIENT_CLOSED)

    async def __aenter__(self) -> ClientChannel:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    def _accept(self, payload: str) -> bool:
        """Queue a message; ``False`` if the inbox is full."""
        if len(self._inbox) >= self._client.max_queue:
            return False
        self._deliver(payload)
        return True

    def _close_with(self, reason: CloseReason, detail: str) -> None:
        self._close_detail = detail
        self._mark_closed(reason)


class _ChannelOpening:
    """What ``client.channel(name)`` returns: await it or ``async with`` it."""

    def __init__(self, opening: Awaitable[ClientChannel]) -> None:
        self._opening = opening
        self._channel: ClientChannel | None = None

    def __await__(self) -> Generator[object, None, ClientChannel]:
        return self._opening.__await__()

    async def __aenter__(self) -> ClientChannel:
        self._channel = await self._opening
        return self._channel

    async def __aexit__(self, *exc_info: object) -> None:
        assert self._channel is not None
        await self._channel.close()


class MultiplexClient:
    """Channels over one carrier connection, opened by ``open_carrier``.

    Usually made by :func:`websocket_multiplex.client.connect`. With a
    :class:`Backoff` as ``reconnect``, a carrier that drops is replaced and
    every open channel subscribed again; ``on_state`` is called with each
    new :class:`ClientState` and a short reason.
    """

    def __init__(
        self,
        open_carrier: CarrierFactory,
        *,
        reconnect: Backoff | None = Backoff(),
        max_queue: int = 1024,
        on_state: Callable[[ClientState, str], None] | None = None,
    ) -> None:
        self.max_queue = max_queue
        self._open_carrier = open_carrier
        self._backoff = reconnect
        self._on_state = on_state
        self._protocol = ClientProtocol()
        self._channels: dict[str, ClientChannel] = {}
        self._carrier: Carrier | None = None
        self._state = ClientState.CONNECTING
        self._state_changed = asyncio.Event()
        self._connected = asyncio.Event()
        self._send_lock = asyncio.Lock()
        self._reader: asyncio.Task[None] | None = None
        self.reconnects = 0

    @property
    def state(self) -> ClientState:
        return self._state

    @property
    def channels(self) -> list[ClientChannel]:
        return list(self._channels.values())

    async def start(self) -> None:
        """Open the first carrier (errors propagate), then keep it running."""
        carrier = await self._open_carrier()
        try:  # channels opened before start() are subscribed now
            await self._resubscribe(carrier)
        except BaseException:
            await carrier.close()
            raise
        self._carrier = carrier
        self._set_state(ClientState.OPEN, "connected")
        self._reader = asyncio.get_running_loop().create_task(self._run())

    def channel(self, name: str) -> _ChannelOpening:
        """Open a channel to the service ``name``.

        ``channel = await client.channel("news")``, or
        ``async with client.channel("news") as channel:`` to close it on exit.
        A second channel of the same name is independent of the first.
        """
        return _ChannelOpening(self._open_channel(name))

    async def _open_channel(self, name: str) -> ClientChannel:
        if self._state is ClientState.CLOSED:
            raise LocalProtocolError("the client is closed: connect again")
        topic, frame = self._protocol.open(name)
        channel = self._channels[topic] = ClientChannel(self, name, topic)
        if self._state is ClientState.OPEN:
            await self._send(frame)
        return channel  # otherwise the reconnection subscribes it

    async def wait_for(self, state: ClientState, timeout: float | None = None) -> None:
        """Wait until the client is in ``state``.

        A state that lasts less than one event-loop turn may be missed; to
        see every change, pass ``on_state`` to the client instead.
        """
        async with asyncio.timeout(timeout):
            while self._state is not state:
                self._state_changed.clear()
                await self._state_changed.wait()

    async def close(self) -> None:
        """Close every channel and the carrier; no reconnection follows."""
        if self._state is ClientState.CLOSED:
            return
        for channel in list(self._channels.values()):
            await channel.close()
        self._set_state(ClientState.CLOSED, "closed by the application")
        reader, self._reader = self._reader, None
        if reader is not None:
            reader.cancel()
            await asyncio.gather(reader, return_exceptions=True)
        await self._drop_carrier()

    async def __aenter__(self) -> MultiplexClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()

    # -- internals -----------------------------------------------------------

    async def _send(self, frame: str) -> None:
        while True:
            if self._state is ClientState.CLOSED:
                raise ConnectionError("the client is closed")
            carrier = self._carrier
            if self._state is ClientState.OPEN and carrier is not None:
                try:
                    async with self._send_lock:
                        await carrier.send(frame)
                    return
                except ConnectionError:
                    # The carrier failed before the reader saw it end: wait
                    # for the reader to reconnect or give up, do not spin.
                    if self._carrier is carrier:
                        self._connected.clear()
            await self._connected.wait()

    async def _run(self) -> None:
        while True:
            assert self._carrier is not None
            try:
                await self._read(self._carrier)
            except Exception:  # a broken carrier is a lost one, never a dead reader
                logger.warning("the connection failed", exc_info=True)
            await self._drop_carrier()
            if self._backoff is None or not await self._reconnect(self._backoff):
                self._give_up("the connection closed")
                return

    async def _read(self, carrier: Carrier) -> None:
        while (text := await carrier.receive()) is not None:
            event = self._protocol.receive(text)
            if type(event) is MessageReceived:
                channel = self._channels[event.topic]
                if not channel._accept(event.payload):
                    logger.warning("%r: inbox full, closing the channel", channel)
                    await self._close_channel(channel, CloseReason.INBOX_FULL)
            elif type(event) is ChannelClosedEvent:
                if event.detail.startswith(GOING_AWAY) and self._backoff is not None:
                    # The server is restarting: keep the channel and
                    # subscribe it again once reconnected.
                    self._protocol.keep(event.topic)
                else:
                    channel = self._channels.pop(event.topic)
                    channel._close_with(event.reason, event.detail)

    async def _reconnect(self, backoff: Backoff) -> bool:
        attempt = 0
        while backoff.max_attempts is None or attempt < backoff.max_attempts:
            delay = backoff.delay(attempt)
            self._set_state(
                ClientState.RECONNECTING, f"attempt {attempt + 1} in {delay:.2f}s"
            )
            await asyncio.sleep(delay)
            try:
                carrier = await self._open_carrier()
            except Exception as exc:  # e.g. a 503 or a hang-up mid-handshake
                logger.info("reconnection attempt %d failed: %r", attempt + 1, exc)
                attempt += 1
                continue
            try:
                await self._resubscribe(carrier)
            except ConnectionError:
                await carrier.close()
                attempt += 1
                continue
            except BaseException:  # e.g. close() cancelled us: do not leak it
                await carrier.close()
                raise
            self._carrier = carrier
            self.reconnects += 1
            for channel in self._channels.values():
                channel.gaps += 1
            self._set_state(ClientState.OPEN, "reconnected")
            return True
        return False

    async def _resubscribe(self, carrier: Carrier) -> None:
        """Send ``sub`` for every open channel, also those opened meanwhile.

        A channel opened while these sends wait is not in the first round;
        the next round includes it. Repeating a ``sub`` for a topic that is
        open is harmless: servers ignore it (PROTOCOL.md, "Semantics").
        """
        subscribed: frozenset[str] | None = None
        while subscribed != self._protocol.open_topics:
            subscribed = self._protocol.open_topics
            for frame in self._protocol.resubscribe():
                await carrier.send(frame)

    def _give_up(self, reason: str) -> None:
        for event in self._protocol.connection_lost():
            self._channels.pop(event.topic)._mark_closed(event.reason)
        self._set_state(ClientState.CLOSED, reason)

    async def _drop_carrier(self) -> None:
        carrier, self._carrier = self._carrier, None
        if carrier is not None:
            await carrier.close()

    async def _close_channel(self, channel: ClientChannel, reason: CloseReason) -> None:
        if channel.closed:
            return
        frame = self._protocol.close(channel.topic)
        del self._channels[channel.topic]
        channel._mark_closed(reason)
        carrier = self._carrier
        if self._state is ClientState.OPEN and carrier is not None:
            try:  # a channel closed while disconnected is simply not resubscribed
                async with self._send_lock:
                    await carrier.send(frame)
            except ConnectionError:
                pass

    def _set_state(self, state: ClientState, reason: str) -> None:
        self._state = state
        if state is ClientState.OPEN:
            self._connected.set()
        else:
            self._connected.clear()
        if state is ClientState.CLOSED:
            self._connected.set()  # release waiting senders: they raise
        self._state_changed.set()
        logger.debug("client %s: %s", state.value, reason)
        if self._on_state is not None:
            self._on_state(state, reason)
