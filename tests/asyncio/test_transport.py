"""The carrier seam: an Inlet feeds its recipient at a bounded pace."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable

from websocket_multiplex import Limits, MultiplexServer
from websocket_multiplex.asyncio.transport import Inlet
from websocket_multiplex.pacing import FRAMES_PER_TURN
from websocket_multiplex.testing import MemoryTransport

from .helpers import TIMEOUT


class Recorder:
    """A recipient that records what it gets, and when it is told to wait."""

    def __init__(self) -> None:
        self.received: list[str] = []
        self.lost = 0
        self.waiting: asyncio.Future[None] | None = None

    def receive(self, text: str) -> None:
        self.received.append(text)

    def backlog(self) -> Awaitable[None] | None:
        return self.waiting

    async def connection_lost(self) -> None:
        self.lost += 1


async def test_feed_delivers_in_order_and_asks_no_pause_below_the_pace() -> None:
    recorder = Recorder()
    inlet = Inlet(recorder, Limits())
    assert inlet.feed(["a", "b"]) is None
    assert inlet.feed_one("c") is None
    assert recorder.received == ["a", "b", "c"]
    await inlet.end()
    assert recorder.lost == 1


async def test_a_packed_message_is_delivered_in_slices_between_loop_turns() -> None:
    recorder = Recorder()
    inlet = Inlet(recorder, Limits())
    others: list[int] = []

    async def other_client() -> None:
        while len(others) < 1000:
            others.append(len(recorder.received))
            await asyncio.sleep(0)

    watcher = asyncio.create_task(other_client())
    texts = [str(i) for i in range(FRAMES_PER_TURN * 10)]
    pause = inlet.feed(texts)
    assert pause is not None  # too many for one turn: not all delivered yet
    assert len(recorder.received) < len(texts)
    async with asyncio.timeout(TIMEOUT):
        await pause
    watcher.cancel()
    assert recorder.received == texts
    # The other task ran while the slices went in, not only before or after.
    assert any(0 < seen < len(texts) for seen in others)


async def test_the_frame_rate_makes_the_carrier_wait() -> None:
    recorder = Recorder()
    limits = Limits(frame_rate=1000.0, max_message_frames=100)
    inlet = Inlet(recorder, limits)
    loop = asyncio.get_running_loop()
    started = loop.time()
    for _ in range(3):  # 300 frames: the burst of 100, then 200 at 1000/s
        pause = inlet.feed(["x"] * 100)
        if pause is not None:
            await pause
    assert len(recorder.received) == 300
    assert loop.time() - started >= 0.15


async def test_a_backlog_holds_the_carrier_until_the_recipient_is_ready() -> None:
    recorder = Recorder()
    inlet = Inlet(recorder, Limits())
    recorder.waiting = asyncio.get_running_loop().create_future()
    pause = inlet.feed(["a"])
    assert pause is recorder.waiting
    recorder.waiting.set_result(None)
    await pause


async def test_binary_messages_count_toward_the_pace() -> None:
    recorder = Recorder()
    inlet = Inlet(recorder, Limits(frame_rate=10.0, max_message_frames=5))
    pauses = [inlet.ignored() for _ in range(5)]  # the burst: then ask
    assert pauses[:4] == [None] * 4
    assert pauses[4] is not None
    await asyncio.wait_for(pauses[4], TIMEOUT)  # type: ignore[arg-type]
    assert recorder.received == []


async def test_a_connection_is_fed_through_an_inlet() -> None:
    server = MultiplexServer()

    @server.channel("echo")
    async def echo(channel):  # type: ignore[no-untyped-def]
        async for data in channel:
            await channel.send(data)

    transport = MemoryTransport()
    inlet = Inlet(server.accept(transport), server.limits)
    await inlet.deliver(["sub,echo", "msg,echo,hi"])
    async with asyncio.timeout(TIMEOUT):
        assert await transport.to_client.get() == "msg,echo,hi"
    await inlet.end()
    assert server.connections == set()
