"""The outbox of one connection: order, batches, the bound on every frame,
and the frame that goes out in its sender's own turn."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from websocket_multiplex import Limits, RequestInfo
from websocket_multiplex.asyncio.outbox import Outbox
from websocket_multiplex.asyncio.stats import ConnectionStats
from websocket_multiplex.asyncio.throttle import LogThrottle
from websocket_multiplex.flow import SLOW_FACTOR

TIMEOUT = 5.0


@dataclass(eq=False)
class Carrier:
    """Records each write (a batch is one list); ``gate`` holds writes back
    while it is clear; ``now`` is what :meth:`can_write_now` says."""

    request: RequestInfo = field(default_factory=RequestInfo)
    writes: list[list[str]] = field(default_factory=list)
    gate: asyncio.Event = field(default_factory=asyncio.Event)
    now: bool = True
    fail: bool = False

    def __post_init__(self) -> None:
        self.gate.set()

    def can_write_now(self) -> bool:
        return self.now

    async def send(self, text: str) -> None:
        await self.send_many([text])

    async def send_many(self, texts: list[str]) -> None:
        if self.fail:
            raise ConnectionResetError("gone")
        if not self.gate.is_set():
            await self.gate.wait()
        self.writes.append(list(texts))

    async def close(self, code: int, reason: str) -> None:
        pass


@dataclass
class Owner:
    slow: int = 0
    lost: int = 0

    def too_slow(self) -> None:
        self.slow += 1

    def gone(self) -> None:
        self.lost += 1


DEFAULTS = Limits()


def outbox(carrier: Carrier, limits: Limits = DEFAULTS) -> tuple[Outbox, Owner]:
    owner = Owner()
    box = Outbox(
        carrier,
        limits,
        owner.too_slow,
        owner.gone,
        LogThrottle(),
        "test",
        ConnectionStats(),
    )
    return box, owner


async def test_the_first_frame_of_a_turn_goes_out_in_its_senders_turn() -> None:
    carrier = Carrier()
    box, _ = outbox(carrier)
    assert box.send("msg,a,1") is None
    assert carrier.writes == [["msg,a,1"]]  # written: no await, no writer turn
    box.send("msg,a,2")
    box.put("msg,a,3")
    assert carrier.writes == [["msg,a,1"]]  # the rest of the turn: batched
    async with asyncio.timeout(TIMEOUT):
        await box.flush()
    assert carrier.writes == [["msg,a,1"], ["msg,a,2", "msg,a,3"]]
    box.stop()


async def test_without_can_write_now_every_frame_goes_through_the_writer() -> None:
    carrier = Carrier(now=False)
    box, _ = outbox(carrier)
    box.send("msg,a,1")
    box.send("msg,a,2")
    assert carrier.writes == []
    async with asyncio.timeout(TIMEOUT):
        await box.flush()
    assert carrier.writes == [["msg,a,1", "msg,a,2"]]
    box.stop()


async def test_a_write_at_once_that_must_wait_goes_on_and_keeps_the_order() -> None:
    carrier = Carrier()
    carrier.gate.clear()
    box, _ = outbox(carrier)
    assert box.send("msg,a,1") is None  # suspended in the carrier: not the sender
    box.put("msg,a,2")
    box.put("msg,a,3")
    flushed = asyncio.ensure_future(box.flush())
    await asyncio.sleep(0)
    assert carrier.writes == [] and not flushed.done()
    carrier.gate.set()
    async with asyncio.timeout(TIMEOUT):
        await flushed
    assert carrier.writes == [["msg,a,1"], ["msg,a,2", "msg,a,3"]]
    box.stop()


async def test_frames_nobody_waits_for_count_against_the_bound() -> None:
    """Refusals, ``uns`` and fan-out are put, never awaited: a client that
    does not read is dropped once they reach SLOW_FACTOR times write_limit."""
    carrier = Carrier(now=False)
    carrier.gate.clear()  # the client reads nothing
    box, owner = outbox(carrier, Limits(write_limit=1000, slow_client_timeout=60))
    frame = "err,x,404 no such service"
    sent = 0
    while owner.slow == 0 and sent < 10_000:
        box.put(frame)
        box.put("uns,x")
        sent += 2
        if sent == 2:
            await asyncio.sleep(0)  # the writer takes the first two: stuck
    assert owner.slow >= 1  # told on every frame until it stops the outbox
    assert box.size <= SLOW_FACTOR * 1000 + 2 * len(frame)
    box.stop()


async def test_a_sender_that_can_wait_waits_above_the_write_limit() -> None:
    carrier = Carrier(now=False)
    carrier.gate.clear()
    box, owner = outbox(carrier, Limits(write_limit=30, slow_client_timeout=60))
    assert box.send("msg,a," + "x" * 20) is None  # 26 characters
    await asyncio.sleep(0)  # taken by the writer: in the carrier
    assert box.send("msg,a," + "y" * 20) is None  # 26 queued: room
    waiting = box.send("msg,a," + "z" * 20)  # 52: above the limit
    assert waiting is not None
    waiter = asyncio.ensure_future(waiting)
    await asyncio.sleep(0)
    assert not waiter.done()
    carrier.gate.set()
    async with asyncio.timeout(TIMEOUT):
        await waiter
    assert owner.slow == 0
    box.stop()


async def test_a_stopped_outbox_takes_nothing_more() -> None:
    carrier = Carrier()
    box, owner = outbox(carrier)
    box.stop()
    box.put("msg,a,1")
    assert box.send("msg,a,2") is None
    assert box.size == 0 and carrier.writes == [] and owner.slow == 0


async def test_a_failed_write_says_the_carrier_is_lost() -> None:
    carrier = Carrier(fail=True)
    box, owner = outbox(carrier)
    box.send("msg,a,1")  # at once: fails at once
    assert owner.lost == 1
    box.stop()
