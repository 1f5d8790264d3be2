"""A client that floods refusals and never reads them is dropped, not fed.

Each ``sub`` for a topic nobody serves makes the server answer two frames,
``err,<topic>,404 no such service`` and ``uns,<topic>`` (PROTOCOL.md). A
client that sends such ``sub`` frames and stops reading must not make the
server hold its answers without bound: like any client that stays behind,
it is closed with 4008 ``slow client`` (``Limits.write_limit``,
``Limits.slow_client_timeout``; docs/LIMITS.md), while the server's other
clients go on.

The flooding client is a WebSocket written by hand over a plain socket
(:class:`HandMadeWebSocket`): it reads only when the test says so, with a
small receive buffer, so that what the server writes piles up in the
server and not in a client library. Both carriers of the aiohttp adapter
are tried: the raw WebSocket endpoint and SockJS over WebSocket.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import itertools
import json
import os
import socket
import struct
import tracemalloc
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from urllib.parse import urlsplit

import pytest

from websocket_multiplex import Channel, Limits, MultiplexServer
from websocket_multiplex.sockjs.frames import encode_client_message

from .carriers import RawWebSocketCarrier, wait_until
from .drivers import Served, serving

TIMEOUT = 5.0
LIMITS = Limits(
    write_limit=64 * 1024,
    slow_client_timeout=1.0,
    # Far above the flood: the subscribe rate limit (4029) must not be
    # what ends it.
    subscribe_rate=1_000_000.0,
    subscribe_burst=1_000_000,
)
CLOSE_GRACE = 3.0
"""Seconds past ``slow_client_timeout`` the close may take: the kernel's
buffers take megabytes before the server's own queue fills, and tracing
allocations makes the server some three times slower."""

TOPIC_LENGTH = 200  # below Limits.max_topic_length: each sub is answered
BATCH = 64  # sub frames per write
REFUSAL_CHARS = len(f"err,{'t' * TOPIC_LENGTH},404 no such service") + len(
    f"uns,{'t' * TOPIC_LENGTH}"
)
"""Characters the server answers one ``sub`` with (one byte each in a str)."""

BOUND = 48 * LIMITS.write_limit
"""Bytes the process may allocate above what it held before the flood
(3 MiB): the outbox (a few times ``write_limit`` at most), the
carrier's buffers both ways (aiohttp's parser holds what the client sent
and the server has not handled yet), the flooding client's own writes,
and slack. A server that bounds the outbox peaks at some 1.5 MiB here."""

FLOOD = 8 * BOUND // REFUSAL_CHARS // BATCH * BATCH
"""Sub frames sent at most (the deadline may end the flood first): a
server that queued every answer would hold ``FLOOD * REFUSAL_CHARS``
characters, 8 times ``BOUND`` (24 MiB)."""

CARRIERS = ["websocket", "sockjs-websocket"]
WEBSOCKET_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"  # RFC 6455, 1.3
CLOSE = 0x8


# -- a WebSocket client that reads only when told to ---------------------------


class HandMadeWebSocket:
    """The client side of RFC 6455 over a non-blocking socket, by hand.

    :meth:`connect` does the opening handshake; :meth:`send_texts` writes
    masked text frames; nothing is read until :meth:`receive` is called,
    so the kernel's small receive buffer fills and the server's writes
    stay in the server.
    """

    def __init__(self, sock: socket.socket, buffered: bytes) -> None:
        self._sock = sock
        self._loop = asyncio.get_running_loop()
        self._buffer = bytearray(buffered)
        self.torn = False

    @classmethod
    async def connect(cls, url: str, receive_buffer: int = 4096) -> HandMadeWebSocket:
        parts = urlsplit(url)
        assert parts.hostname == "127.0.0.1" and parts.port is not None
        sock = socket.socket()
        # Before connecting: the window it advertises is then small too.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
        sock.setblocking(False)
        loop = asyncio.get_running_loop()
        try:
            await loop.sock_connect(sock, (parts.hostname, parts.port))
            key = base64.b64encode(os.urandom(16))
            await loop.sock_sendall(
                sock,
                b"GET %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n"
                b"Upgrade: websocket\r\nConnection: Upgrade\r\n"
                b"Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n"
                % (parts.path.encode(), parts.port, key),
            )
            head, rest = await cls._read_head(sock)
        except BaseException:
            sock.close()
            raise
        accept = base64.b64encode(hashlib.sha1(key + WEBSOCKET_GUID).digest())
        status, *lines = head.decode("latin-1").split("\r\n")
        fields = {}
        for line in lines:
            name, _, value = line.partition(":")
            fields[name.strip().lower()] = value.strip()
        if " 101 " not in status or fields.get("sec-websocket-accept") != (
            accept.decode()
        ):
            sock.close()
            raise AssertionError(f"handshake refused: {head!r}")
        return cls(sock, rest)

    @staticmethod
    async def _read_head(sock: socket.socket) -> tuple[bytes, bytes]:
        loop = asyncio.get_running_loop()
        data = b""
        async with asyncio.timeout(TIMEOUT):
            while b"\r\n\r\n" not in data:
                chunk = await loop.sock_recv(sock, 4096)
                if not chunk:
                    raise AssertionError(f"closed during the handshake: {data!r}")
                data += chunk
        head, _, rest = data.partition(b"\r\n\r\n")
        return head, rest

    async def send_texts(self, texts: list[str]) -> None:
        """One masked text frame for each of ``texts``, in one write."""
        assert not self.torn, "a write was cut off: the stream is broken"
        data = b"".join(_masked_frame(0x1, text.encode()) for text in texts)
        self.torn = True  # until the whole write went through
        await self._loop.sock_sendall(self._sock, data)
        self.torn = False

    async def receive(self) -> tuple[int, bytes] | None:
        """The next frame, as (opcode, payload); ``None`` at end of stream."""
        while (frame := self._parse()) is None:
            chunk = await self._loop.sock_recv(self._sock, 1 << 16)
            if not chunk:
                return None
            self._buffer += chunk
        return frame

    def _parse(self) -> tuple[int, bytes] | None:
        buffer = self._buffer
        if len(buffer) < 2:
            return None
        opcode, length, offset = buffer[0] & 0x0F, buffer[1] & 0x7F, 2
        if length == 126:
            if len(buffer) < 4:
                return None
            (length,), offset = struct.unpack_from("!H", buffer, 2), 4
        elif length == 127:
            if len(buffer) < 10:
                return None
            (length,), offset = struct.unpack_from("!Q", buffer, 2), 10
        assert not buffer[1] & 0x80, "a server must not mask its frames"
        if len(buffer) < offset + length:
            return None
        payload = bytes(buffer[offset : offset + length])
        del buffer[: offset + length]
        return opcode, payload

    def close(self) -> None:
        self._sock.close()


def _masked_frame(opcode: int, payload: bytes) -> bytes:
    """A final frame, masked as a client's must be (RFC 6455, 5.3)."""
    length = len(payload)
    if length < 126:
        header = struct.pack("!BB", 0x80 | opcode, 0x80 | length)
    elif length < 1 << 16:
        header = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, length)
    else:
        header = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, length)
    key = os.urandom(4)
    repeated = (key * (length // 4 + 1))[:length]
    masked = (
        int.from_bytes(payload, "big") ^ int.from_bytes(repeated, "big")
    ).to_bytes(length, "big")
    return header + key + masked


# -- the two carriers, as the flooding client sees them ------------------------


@dataclass(frozen=True)
class Carrier:
    """How a multiplex frame travels on one carrier of the endpoint."""

    name: str

    def url(self, served: Served) -> str:
        if self.name == "websocket":
            return f"{served.ws_url}/websocket"
        return f"{served.ws_url}/000/{uuid.uuid4().hex[:8]}/websocket"

    def encode(self, frames: list[str]) -> list[str]:
        """One WebSocket message per frame (SockJS: a JSON array of one)."""
        if self.name == "websocket":
            return frames
        return [encode_client_message([frame]) for frame in frames]

    def decode(self, text: str) -> list[str]:
        """The multiplex frames in one WebSocket message from the server."""
        if self.name == "websocket":
            return [text]
        if text[0] == "a":
            return list(json.loads(text[1:]))
        return []  # "o", "h"; "c[...]" is looked at by end_of

    @contextlib.asynccontextmanager
    async def open(self, served: Served) -> AsyncIterator[HandMadeWebSocket]:
        ws = await HandMadeWebSocket.connect(self.url(served))
        try:
            if self.name == "sockjs-websocket":
                async with asyncio.timeout(TIMEOUT):
                    assert await ws.receive() == (0x1, b"o")
            yield ws
        finally:
            ws.close()


def topic(n: int) -> str:
    """The ``n``-th topic of a flood: nobody serves it, ``TOPIC_LENGTH`` long."""
    return f"{n:08d}".ljust(TOPIC_LENGTH, "x")


def refusals() -> Iterator[str]:
    """What the server answers a flood with, in order."""
    for n in itertools.count():
        yield f"err,{topic(n)},404 no such service"
        yield f"uns,{topic(n)}"


async def flood(
    ws: HandMadeWebSocket,
    carrier: Carrier,
    deadline: float,
    sent: list[int],
    most: int = FLOOD,
    patience: float = 0.0,
) -> None:
    """Send ``sub`` frames in batches until ``most`` or ``deadline``, or
    until the server stops taking them; ``sent[0]`` counts them. A write
    under way may finish up to ``patience`` seconds past the deadline
    (one cut off leaves half a frame: nothing more can be sent)."""
    loop = asyncio.get_running_loop()
    while sent[0] < most and loop.time() < deadline:
        batch = carrier.encode([f"sub,{topic(sent[0] + n)}" for n in range(BATCH)])
        try:
            async with asyncio.timeout_at(deadline + patience):
                await ws.send_texts(batch)
        except (TimeoutError, OSError):  # the server no longer reads, or left
            return
        sent[0] += BATCH


SLOW_CLIENT_ENDS = [(4008, "slow client"), ("reset",), ("ended",)]
"""How a client that does not read may see its connection end once the
server dropped it as slow: the close frame (the raw WebSocket's close
code, or SockJS's ``c[4008,"slow client"]``), if it gets through; but a
server that closes a socket whose input it has not read sends a reset,
which throws away whatever the client had not read yet, the close frame
with it. The server's own count says it was a 4008."""


async def end_of(
    ws: HandMadeWebSocket, carrier: Carrier, deadline: float
) -> tuple[object, ...]:
    """Read up to the end, by ``deadline``: how the connection ended."""
    try:
        async with asyncio.timeout_at(deadline):
            while (frame := await ws.receive()) is not None:
                opcode, payload = frame
                if carrier.name == "sockjs-websocket" and payload.startswith(b"c["):
                    return tuple(json.loads(payload[1:]))
                if opcode == CLOSE:
                    code = struct.unpack_from("!H", payload)[0] if payload else None
                    return code, payload[2:].decode()
    except ConnectionResetError:
        return ("reset",)
    except TimeoutError:
        return ("still open",)
    return ("ended",)


# -- the server and a client that behaves --------------------------------------


@pytest.fixture
async def served() -> AsyncIterator[tuple[Served, MultiplexServer]]:
    server = MultiplexServer(limits=LIMITS)

    @server.channel("echo")
    async def echo(channel: Channel) -> None:
        async for data in channel:
            await channel.send(data)

    async with serving("aiohttp", server) as endpoint:
        yield endpoint, server


@pytest.fixture
async def control(
    served: tuple[Served, MultiplexServer],
) -> AsyncIterator[RawWebSocketCarrier]:
    """A client of the same server that reads, with ``echo`` open."""
    carrier = await RawWebSocketCarrier.connect(f"{served[0].ws_url}/websocket")
    try:
        await carrier.send("sub,echo")
        yield carrier
    finally:
        await carrier.close()


async def echoes(control: RawWebSocketCarrier, text: str) -> None:
    await control.send(f"msg,echo,{text}")
    async with asyncio.timeout(TIMEOUT):
        assert await control.receive() == f"msg,echo,{text}"


@dataclass
class Flood:
    """What a flood from a client that never read came to."""

    sent: int  # sub frames
    seconds: float  # from its start until the server dropped it, or gave up
    deadline: float  # the loop's time by which the connection must have ended
    peak: int  # bytes the process allocated above what it held at the start

    def __str__(self) -> str:
        unbounded = self.sent * REFUSAL_CHARS
        return (
            f"{self.sent} subs sent, {self.seconds:.2f} s; the process held up "
            f"to {self.peak // 1024} KiB more (bound {BOUND // 1024} KiB; "
            f"queuing every answer: {unbounded // 1024} KiB)"
        )


async def flood_unread(
    ws: HandMadeWebSocket,
    carrier: Carrier,
    server: MultiplexServer,
    control: RawWebSocketCarrier,
) -> Flood:
    """Flood until the server drops the client as slow, or until
    ``slow_client_timeout`` plus ``CLOSE_GRACE`` are over; the control
    client checks its echo once the flood is under way."""
    loop = asyncio.get_running_loop()
    sent = [0]
    tracing_already = tracemalloc.is_tracing()  # python -X tracemalloc
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        tracemalloc.reset_peak()
        start = loop.time()
        deadline = start + LIMITS.slow_client_timeout + CLOSE_GRACE
        flooding = asyncio.create_task(flood(ws, carrier, deadline, sent))
        try:
            await wait_until(lambda: sent[0] >= 16 * BATCH or flooding.done())
            await echoes(control, "during")
            with contextlib.suppress(TimeoutError):  # the caller asserts
                await wait_until(
                    lambda: server.stats().slow_client_closes > 0,
                    timeout=max(0.0, deadline - loop.time()),
                )
            seconds = loop.time() - start
        finally:
            flooding.cancel()
            await asyncio.gather(flooding, return_exceptions=True)
        peak = tracemalloc.get_traced_memory()[1] - before
    finally:
        if not tracing_already:
            tracemalloc.stop()
    return Flood(sent[0], seconds, deadline, peak)


ECHOED = "still here"


@dataclass
class Tally:
    """Checks what a client that reads gets: the refusals, in order, and
    then the echo of ``ECHOED`` (without keeping them)."""

    refusals: int = 0
    wrong: str | None = None  # the first frame that was not the next refusal
    echoed: bool = False

    async def read(self, ws: HandMadeWebSocket, carrier: Carrier) -> None:
        expected = refusals()
        while (frame := await ws.receive()) is not None and frame[0] != CLOSE:
            for text in carrier.decode(frame[1].decode()):
                if text == f"msg,echo,{ECHOED}":
                    self.echoed = True
                elif text == next(expected):
                    self.refusals += 1
                elif self.wrong is None:
                    self.wrong = text


# -- the tests -----------------------------------------------------------------


@pytest.mark.parametrize("carrier", [Carrier(name) for name in CARRIERS], ids=CARRIERS)
async def test_a_client_that_floods_refusals_unread_is_closed_4008(
    served: tuple[Served, MultiplexServer],
    control: RawWebSocketCarrier,
    carrier: Carrier,
) -> None:
    endpoint, server = served
    await echoes(control, "before")
    async with carrier.open(endpoint) as ws:
        flood = await flood_unread(ws, carrier, server, control)
        stats = server.stats()
        assert stats.slow_client_closes == 1, f"no 4008: {flood}; {stats}"
        assert flood.seconds <= LIMITS.slow_client_timeout + CLOSE_GRACE, flood
        assert await end_of(ws, carrier, flood.deadline) in SLOW_CLIENT_ENDS, flood
    assert flood.peak < BOUND, flood
    await echoes(control, "after")


@pytest.mark.parametrize("carrier", [Carrier(name) for name in CARRIERS], ids=CARRIERS)
async def test_the_same_flood_from_a_client_that_reads_is_answered_in_full(
    served: tuple[Served, MultiplexServer], carrier: Carrier
) -> None:
    """The control for the test above: not reading is what gets a client
    closed, not the flood itself. A client that reads its refusals gets
    every one of them, and its connection stays open through a flood that
    lasts longer than ``slow_client_timeout``."""
    endpoint, server = served
    tally = Tally()
    async with carrier.open(endpoint) as ws:
        reading = asyncio.create_task(tally.read(ws, carrier))
        sent = [0]
        try:
            loop = asyncio.get_running_loop()
            deadline = loop.time() + 1.5 * LIMITS.slow_client_timeout
            await flood(ws, carrier, deadline, sent, most=100 * FLOOD, patience=TIMEOUT)
            assert loop.time() >= deadline, f"the flood ended early: {sent[0]} subs"
            await ws.send_texts(carrier.encode(["sub,echo", f"msg,echo,{ECHOED}"]))
            await wait_until(lambda: tally.echoed or reading.done(), timeout=TIMEOUT)
        finally:
            reading.cancel()
            await asyncio.gather(reading, return_exceptions=True)
    stats = server.stats()
    assert stats.slow_client_closes == 0, stats
    assert (tally.refusals, tally.wrong, tally.echoed) == (2 * sent[0], None, True)


def test_the_flood_is_far_above_the_bound() -> None:
    """Queuing every answer to the flood would take 8 times the bound,
    which leaves a server that does bound its outbox room to spare."""
    assert FLOOD * REFUSAL_CHARS >= 7.9 * BOUND
    assert 4 * LIMITS.write_limit <= BOUND
